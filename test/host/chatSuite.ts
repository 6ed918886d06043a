// The chat in a real extension host (issue 7): the local embedded backend trains a tiny run whose examples share a
// system prompt; "Test Checkpoint" on a checkpoint node of the runs tree opens a chat panel (its webview loads and
// asks for its snapshot) with that system prompt prefilled; a greedy answer with a fixed seed equals what
// `client.chat` gives directly; Stop ends a long generation in the panel and on the backend; Compare with the base
// model answers on both sides; Retry gives the same greedy answer again; the export is a line the dataset check
// accepts, appended as one line to a file; Clear empties the conversation. Real VS Code, backend and engine.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { FineTuningJob, FineTuningJobCheckpoint, SystemInfo } from '../../common/api';
import type { FinetuneApi } from '../../src/extension';
import type { BackendClient } from '../../src/backendClient';
import type { ChatApi, ChatPanel } from '../../src/chatPanel';
import { datasetLineErrors, defaultGenerationTexts } from '../../src/chatModel';
import type { TrainingApi } from '../../src/training';
import type { GenerationTexts } from '../../webview/chat/protocol';
import { runInHostTests, waitForEvent, type InHostTest } from './inHostRunner';

const EXTENSION_ID = 'finetune-studio.finetune-studio';
const SYSTEM_PROMPT = 'You are a calculator. Answer with the number only.';

interface State {
  training?: TrainingApi;
  chat?: ChatApi;
  backend?: string;
  client?: BackendClient;
  job?: FineTuningJob;
  checkpoints: FineTuningJobCheckpoint[];
  panel?: ChatPanel;
}

/** Twelve short conversations that all start with the same system prompt. */
function dataset(): Uint8Array {
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) {
    lines.push(JSON.stringify({ messages: [{ role: 'system', content: SYSTEM_PROMPT }, { role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `${i + i}.` }] }));
  }
  return new TextEncoder().encode(`${lines.join('\n')}\n`);
}

function need<T>(value: T | undefined, what: string): T {
  assert.ok(value !== undefined, `${what} is missing: an earlier test failed`);
  return value;
}

/** Greedy settings with a fixed seed. */
function greedy(maxTokens: number): GenerationTexts {
  return { ...defaultGenerationTexts(), temperature: '0', seed: '1234', max_tokens: String(maxTokens) };
}

/** Resolves when the panel has no answer streaming. */
async function idle(panel: ChatPanel, timeoutMs = 60_000): Promise<void> {
  await waitForEvent(panel.onDidUpdate, () => (panel.busy ? undefined : true), 'the answers to end', timeoutMs, () => JSON.stringify(panel.state.turns.at(-1)));
}

/** Polls `/v1/system` until `done` holds, with a deadline (the counters change when the engine has stopped). */
async function systemUntil(client: BackendClient, done: (s: SystemInfo) => boolean, what: string, timeoutMs = 20_000): Promise<SystemInfo> {
  const deadline = Date.now() + timeoutMs;
  let last: SystemInfo | undefined;
  while (Date.now() < deadline) {
    last = await client.system();
    if (done(last)) return last;
    await new Promise<void>((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last?.chat)}`);
}

function tests(state: State): InHostTest[] {
  return [
    {
      name: 'the local backend starts and trains a tiny run with checkpoints',
      timeoutMs: 120_000,
      async run() {
        const extension = vscode.extensions.getExtension<FinetuneApi>(EXTENSION_ID);
        assert.ok(extension);
        const api = await extension.activate();
        assert.ok(api.chat, 'FinetuneApi.chat is missing');
        state.training = api.training;
        state.chat = api.chat;
        await vscode.commands.executeCommand('finetune.startLocalBackend');
        const local = api.training.backends.entries().find((e) => e.local);
        assert.ok(local, 'no local backend entry');
        state.backend = local.name;
        await waitForEvent(api.training.tree.onDidChangeTreeData, () => (api.training.model.backend(local.name)?.connection.kind === 'connected' ? true : undefined), 'the local backend to connect', 30_000);
        const client = await api.training.backends.client(local.name);
        state.client = client;
        const file = await client.uploadFile({ name: 'calc.jsonl', bytes: dataset() });
        const job = await client.createJob({
          model: 'tiny-qwen2-1m',
          training_file: file.id,
          suffix: 'chat-run',
          seed: 7,
          method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 2, checkpoints: 3, eval_ratio: 0 } } },
        });
        const run = await waitForEvent(
          api.training.tree.onDidChangeTreeData,
          () => {
            const r = api.training.model.run(local.name, job.id);
            return r?.job.status === 'succeeded' && r.checkpoints.length >= 3 ? r : undefined;
          },
          'the run to succeed with three checkpoints',
          100_000,
          () => JSON.stringify(api.training.model.run(local.name, job.id)?.job.status),
        );
        state.job = run.job;
        state.checkpoints = (await client.listCheckpoints(job.id)).data;
        assert.ok(state.checkpoints.length >= 3);
      },
    },
    {
      name: '"Test Checkpoint" on a checkpoint node opens a chat panel with the dataset\'s system prompt, and its webview loads',
      timeoutMs: 60_000,
      async run() {
        const training = need(state.training, 'the training API');
        const chat = need(state.chat, 'the chat API');
        const backend = need(state.backend, 'the backend');
        const job = need(state.job, 'the run');
        const backendNode = (training.tree.getChildren(undefined) as { backend: string }[])[0];
        const runNode = ((await training.tree.getChildren(backendNode as never)) as { jobId?: string }[]).find((r) => r.jobId === job.id);
        assert.ok(runNode, 'the run is not in the tree');
        const nodes = (await training.tree.getChildren(runNode as never)) as { kind?: string; checkpoint?: FineTuningJobCheckpoint }[];
        // The tree lists checkpoints newest first: test the one before the last, so that the final model differs.
        const node = nodes.filter((n) => n.kind === 'checkpoint')[1];
        assert.ok(node?.checkpoint, 'no second checkpoint node');
        const opened = waitForEvent(chat.onDidOpen, () => chat.panels().at(-1), 'a chat panel to open', 30_000);
        await vscode.commands.executeCommand('finetune.testCheckpoint', node);
        const panel = await opened;
        state.panel = panel;
        assert.equal(panel.title, `Chat · chat-run-step${node.checkpoint.step_number}`);
        const target = panel.state.target;
        assert.equal(target.backend, backend);
        assert.equal(target.model, node.checkpoint.fine_tuned_model_checkpoint);
        assert.equal(target.checkpointId, node.checkpoint.id);
        assert.equal(panel.state.system, SYSTEM_PROMPT, 'the system prompt is prefilled from the dataset (or the sample)');
        assert.deepEqual(panel.state.settings, { temperature: '0.7', top_p: '0.8', top_k: '20', repetition_penalty: '1.05', max_tokens: '512', seed: '' });
        const models = panel.view.compareChoices.map((c) => c.model);
        assert.ok(models.includes('tiny-qwen2-1m'), `the base model is a compare choice: ${models.join(', ')}`);
        assert.ok(!models.includes(target.model), 'the panel\'s own model is not a compare choice');
        await waitForEvent(panel.onDidBecomeReady, () => (panel.isReady ? true : undefined), 'the webview to ask for its snapshot', 30_000);
      },
    },
    {
      name: 'a greedy answer with a fixed seed streams, and equals what client.chat gives directly',
      timeoutMs: 60_000,
      async run() {
        const panel = need(state.panel, 'the panel');
        const client = need(state.client, 'the client');
        panel.edit(SYSTEM_PROMPT, greedy(24));
        const pieces: string[] = [];
        const listening = panel.onDidStream((p) => pieces.push(p.piece));
        await panel.send('What is 3 plus 3?');
        assert.equal(panel.busy, true, 'the answer streams after send resolves');
        await idle(panel);
        listening.dispose();
        const answer = panel.state.turns[0].answers[0];
        assert.equal(answer.state, 'done', answer.error);
        assert.equal(answer.seed, 1234);
        assert.ok(pieces.length > 0, 'the answer streamed');
        assert.equal(pieces.join(''), answer.text);
        const direct = await client.chat({ model: panel.state.target.model, messages: [{ role: 'system', content: SYSTEM_PROMPT }, { role: 'user', content: 'What is 3 plus 3?' }], temperature: 0, top_p: 0.8, top_k: 20, repetition_penalty: 1.05, max_tokens: 24, seed: 1234 });
        assert.equal(answer.text, direct.text);
        assert.equal(answer.finishReason, direct.finishReason);
        assert.ok(answer.ttftMs !== null && answer.ttftMs > 0);
        assert.match(answer.stats ?? '', /first token .* tokens\/s .* seed 1234/);
      },
    },
    {
      name: 'Compare with the base model answers on both sides, each with its own history and stats',
      timeoutMs: 60_000,
      async run() {
        const panel = need(state.panel, 'the panel');
        const client = need(state.client, 'the client');
        panel.setCompare('tiny-qwen2-1m');
        assert.equal(panel.state.compare?.model, 'tiny-qwen2-1m');
        assert.equal(panel.state.compare?.label, 'tiny-qwen2-1m (base)');
        panel.edit(SYSTEM_PROMPT, greedy(16));
        await panel.send('What is 5 plus 5?');
        await idle(panel);
        const turn = panel.state.turns[1];
        assert.equal(turn.answers.length, 2);
        for (const answer of turn.answers) {
          assert.equal(answer.state, 'done', answer.error);
          assert.ok(answer.stats !== undefined && answer.stats.length > 0);
        }
        // The base model's side has no history (it joined now): its answer is the prompt's alone.
        const direct = await client.chat({ model: 'tiny-qwen2-1m', messages: [{ role: 'system', content: SYSTEM_PROMPT }, { role: 'user', content: 'What is 5 plus 5?' }], temperature: 0, top_p: 0.8, top_k: 20, repetition_penalty: 1.05, max_tokens: 16, seed: 1234 });
        assert.equal(turn.answers[1].text, direct.text);
      },
    },
    {
      name: 'Stop during a long generation: the panel shows it stopped and the backend\'s generation ends',
      timeoutMs: 60_000,
      async run() {
        const panel = need(state.panel, 'the panel');
        const client = need(state.client, 'the client');
        const before = await client.system();
        panel.edit(SYSTEM_PROMPT, { ...defaultGenerationTexts(), temperature: '1', seed: '5', max_tokens: '100000' });
        // The base model (compared) rambles on; the tiny fine-tuned one learned to stop at once.
        const streaming = waitForEvent(panel.onDidStream, () => ((panel.state.turns[2]?.answers[1]?.text.length ?? 0) > 0 ? true : undefined), 'the long answer to stream', 30_000);
        await panel.send('Count to one million.');
        await streaming;
        if (before.chat !== undefined) {
          const during = await client.system();
          assert.ok((during.chat?.active ?? 0) >= 1, `the backend reports the generation active: ${JSON.stringify(during.chat)}`);
        }
        panel.stop();
        await idle(panel, 20_000);
        const answer = panel.state.turns[2].answers[1];
        assert.equal(answer.state, 'stopped');
        assert.ok(answer.text.length > 0);
        assert.match(answer.stats ?? '', /stopped/);
        if (before.chat === undefined) {
          // A backend without the chat counters cannot say; the request was aborted, which is what stops it.
          console.warn('chatSuite: /v1/system has no chat counters; the backend side of Stop was not checked');
          return;
        }
        const stoppedBefore = before.chat.stopped;
        await systemUntil(client, (s) => s.chat !== undefined && s.chat.active === 0 && s.chat.stopped > stoppedBefore, 'chat.active 0 and chat.stopped increased');
      },
    },
    {
      name: 'Retry answers the last prompt again (greedy: the same text)',
      timeoutMs: 60_000,
      async run() {
        const panel = need(state.panel, 'the panel');
        panel.edit(SYSTEM_PROMPT, greedy(16));
        await panel.retry();
        await idle(panel);
        const first = panel.state.turns[2].answers;
        assert.deepEqual(first.map((a) => a.state), ['done', 'done'], 'the stopped answer was answered again');
        await panel.retry();
        await idle(panel);
        const again = panel.state.turns[2].answers;
        assert.equal(panel.state.turns.length, 3);
        assert.deepEqual(again.map((a) => a.state), ['done', 'done']);
        assert.deepEqual(again.map((a) => a.text), first.map((a) => a.text));
      },
    },
    {
      name: 'the export is one line the dataset check accepts, copied and appended to a .jsonl file',
      timeoutMs: 30_000,
      async run() {
        const panel = need(state.panel, 'the panel');
        const copied = await panel.export(0, 'copy');
        assert.ok(copied);
        assert.equal(await vscode.env.clipboard.readText(), copied.line);
        assert.deepEqual(datasetLineErrors(copied.line), []);
        const messages = (JSON.parse(copied.line) as { messages: { role: string; content: string }[] }).messages;
        // The fine-tuned side's turns that it answered with text (an empty answer leaves its turn out).
        const answered = panel.state.turns.filter((t) => (t.answers[0]?.text ?? '') !== '');
        assert.deepEqual(messages, [{ role: 'system', content: SYSTEM_PROMPT }, ...answered.flatMap((t) => [{ role: 'user', content: t.user }, { role: 'assistant', content: t.answers[0].text }])]);
        const base = await panel.export(1, 'copy');
        assert.ok(base, 'the base side was not exported');
        assert.deepEqual(datasetLineErrors(base.line), []);
        const baseMessages = (JSON.parse(base.line) as { messages: { role: string; content: string }[] }).messages;
        assert.deepEqual(baseMessages.map((m) => m.role), ['system', 'user', 'assistant', 'user', 'assistant'], 'the base side answered the last two prompts');
        const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        assert.ok(workspace, 'the host has no workspace folder');
        const path = join(workspace, 'chat-export.jsonl');
        const first = JSON.stringify({ messages: [{ role: 'user', content: 'kept' }, { role: 'assistant', content: 'as it was' }] });
        await writeFile(path, first); // no newline at the end: the export adds one first
        try {
          const appended = await panel.export(1, 'append', vscode.Uri.file(path));
          assert.equal(appended?.file, 'chat-export.jsonl');
          const text = await readFile(path, 'utf8');
          assert.equal(text, `${first}\n${base.line}\n`);
        } finally {
          await rm(path, { force: true });
        }
      },
    },
    {
      name: 'Clear empties the conversation; a bad setting is refused with its field named',
      async run() {
        const panel = need(state.panel, 'the panel');
        panel.clear();
        assert.deepEqual(panel.state.turns, []);
        panel.edit('', { ...defaultGenerationTexts(), top_p: '2' });
        assert.ok(panel.view.settingsErrors.top_p, 'top_p has an error');
        await assert.rejects(panel.send('hi'), (e: unknown) => (e as { code?: string }).code === 'settings');
        assert.deepEqual(panel.state.turns, []);
        panel.close();
      },
    },
  ];
}

/** Called by the extension host (extensionTestsPath). */
export async function run(): Promise<void> {
  await runInHostTests('chat', tests({ checkpoints: [] }));
}
