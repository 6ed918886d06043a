// The torch engine's pure-Python parts (issue 8, what CI can check without a GPU): its tokenizer.json reader
// gives the same ids as the TypeScript one on Qwen2.5's shipped tokenizer and on the tiny models' byte-level one;
// its chat rendering, labels, truncation, label check, eval split, data order, schedule and checkpoint steps equal
// the embedded engine's, so that both engines train on the same batches; packing keeps examples apart; the
// process's command line and protocol speak common/engineProtocol.ts. Needs python3 (installed by
// scripts/host/install.mjs); no torch.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BpeTokenizer } from '../common/tokenizer/bpe';
import type { ChatMessage } from '../common/tokenizer/chat';
import { ENGINE_PROTOCOL_VERSION } from '../common/engineProtocol';
import { IGNORE, buildExample, loadDataset, promptIds, type EngineLog } from '../backend/engines/embedded/data';
import { batchOf, epochOrder, learningRate, permutation, planRun } from '../backend/engines/embedded/schedule';
import { chatTokenIds, tinyTokenizerJson } from '../backend/engines/embedded/tokenizer';
import { loadQwenTokenizer, defaultTokenizerPath } from '../server/tokenizerFile';
import { RENDERING_CONVERSATIONS } from './engine.harness';

const ROOT = join(__dirname, '..');
const ENGINE_DIR = join(ROOT, 'backend', 'engines', 'torch');
const PROBE = join(ROOT, 'test', 'fixtures', 'torch', 'probe.py');
const PYTHON = process.env.FINETUNE_PYTHON ?? 'python3';

/** Runs the probe with one request; its JSON answer. */
function probe<T>(request: Record<string, unknown>): T {
  const result = spawnSync(PYTHON, [PROBE], { input: JSON.stringify(request), env: { ...process.env, PYTHONPATH: ENGINE_DIR }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `probe ${String(request.op)} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Runs the engine's command line; its exit status and output. */
function engine(args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'finetune_torch', ...args], { env: { ...process.env, PYTHONPATH: ENGINE_DIR }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

// The embedded engine's rendering cases, and one for the pre-tokenizer's whitespace and contraction rules.
const conversations: ChatMessage[][] = [
  ...RENDERING_CONVERSATIONS,
  [
    { role: 'user', content: "It's   spaced\t\tout  \r\n\r\n and ends with spaces   " },
    { role: 'assistant', content: '\nStarts with a newline; I\'LL see, we\'ve 12345 ½ Ⅻ.' },
  ],
];

interface BuildAnswer {
  examples: { ids: number[]; labels: number[]; trained_tokens: number; truncated: boolean }[];
  trained_text: string[];
  checks: (string | null)[];
  prompt_ids: number[][];
}

const tinyJson = tinyTokenizerJson();
const tiny = new BpeTokenizer(tinyJson);

describe('torch engine: data path equal to the embedded engine', () => {
  let qwen: BpeTokenizer;
  let dir: string;

  before(async () => {
    const version = spawnSync(PYTHON, ['--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0, `${PYTHON} is needed (scripts/host/install.mjs installs python3)`);
    qwen = await loadQwenTokenizer();
    dir = mkdtempSync(join(tmpdir(), 'finetune-torch-data-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('tokenizes as the TypeScript tokenizer on Qwen2.5\'s tokenizer.json, and decodes back', () => {
    const texts = [
      ...conversations.flat().map((m) => m.content),
      '<|im_start|>system\nYou are Qwen<|im_end|>\n<|im_start|>user\n你好，世界！<|im_end|>\n<|endoftext|>',
      'Ünïcödé café — “quotes” … 👨‍👩‍👧 \u00a0nbsp\u3000ideographic\u2003em',
      'a'.repeat(300) + ' ' + '1234567890'.repeat(5),
      'x = {"k": [1, 2.5e-3, null]}  // trailing\n\n\n   \n',
    ];
    // Pseudo-random mixes of the classes the pre-tokenizer tells apart.
    const alphabet = [' ', '\n', '\r', '\t', 'a', 'Z', '7', "'", '.', 'é', '中', '😀', '\u00a0', '-', 's'];
    for (let i = 0; i < 60; i++) {
      let s = '';
      for (let j = 0; j < 50; j++) s += alphabet[(i * 31 + j * j * 7 + j) % alphabet.length];
      texts.push(s);
    }
    const answer = probe<{ ids: number[][]; decoded: string[] }>({ op: 'encode', tokenizer_file: defaultTokenizerPath(), texts });
    texts.forEach((text, i) => {
      assert.deepEqual(answer.ids[i], qwen.encode(text), `ids of ${JSON.stringify(text).slice(0, 80)}`);
      assert.equal(answer.decoded[i], qwen.decode(qwen.encode(text)));
    });
  });

  it('renders conversations with the same ids and labels as the embedded engine, on both tokenizers', () => {
    for (const [name, tok, request] of [
      ['qwen', () => qwen, { tokenizer_file: defaultTokenizerPath() }],
      ['tiny', () => tiny, { tokenizer_json: tinyJson }],
    ] as const) {
      const t = tok();
      const special = chatTokenIds(t);
      for (const maxSeqLength of [100000, 40]) {
        const answer = probe<BuildAnswer>({ op: 'build', ...request, conversations, max_seq_length: maxSeqLength });
        conversations.forEach((messages, i) => {
          const ours = buildExample(t, special, messages, maxSeqLength);
          const theirs = answer.examples[i];
          const what = `${name}, max ${maxSeqLength}, conversation ${i}`;
          assert.deepEqual(theirs.ids, [...ours.ids], `ids: ${what}`);
          assert.deepEqual(theirs.labels, [...ours.labels], `labels: ${what}`);
          assert.equal(theirs.trained_tokens, ours.trainedTokens, what);
          assert.equal(theirs.truncated, ours.truncated, what);
          assert.deepEqual(answer.prompt_ids[i], promptIds(t, special, messages), `prompt: ${what}`);
          if (!ours.truncated && ours.trainedTokens > 0) {
            // The label check of TRAINING.md holds: the trained tokens decode to exactly the assistant turns.
            assert.equal(answer.checks[i], null, what);
            const turns = messages.filter((m) => m.role === 'assistant' && m.weight !== 0).map((m) => `${m.content}<|im_end|>\n`).join('');
            assert.equal(answer.trained_text[i], turns, what);
          }
        });
      }
    }
  });

  it('the label check names the line when a trained token went missing', () => {
    const answer = probe<{ error: string | null }>({ op: 'check_labels', tokenizer_json: tinyJson, conversation: conversations[0], corrupt_at: buildExample(tiny, chatTokenIds(tiny), conversations[0], 1000).labels.findIndex((l) => l !== IGNORE) });
    assert.match(answer.error ?? '', /^line 7: the trained tokens decode to/);
  });

  it('holds out the same examples, skips the same lines and picks the same sample as the embedded engine', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 23; i++) lines.push(JSON.stringify({ messages: [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: `a${i}`.repeat(i) || 'x' }] }));
    lines.splice(4, 0, '{"no": "messages"}', 'not json', JSON.stringify({ messages: [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'w', weight: 0 }] }));
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const logs: string[] = [];
    const log: EngineLog = (_level, message) => logs.push(message);
    const ours = await loadDataset({ trainingFile: file, validationFile: null, evalRatio: 0.2, seed: 11, maxSeqLength: 130, tokenizer: tiny, special: chatTokenIds(tiny) }, log);
    const theirs = probe<{ train_lines: number[]; eval_lines: number[]; truncated: number; tokens_per_epoch: number; trained_tokens_per_epoch: number; sample: unknown; logs: [string, string][] }>({
      op: 'dataset',
      tokenizer_json: tinyJson,
      training_file: file,
      eval_ratio: 0.2,
      seed: 11,
      max_seq_length: 130,
    });
    assert.deepEqual(theirs.train_lines, ours.train.map((e) => e.line));
    assert.deepEqual(theirs.eval_lines, ours.eval.map((e) => e.line));
    assert.equal(theirs.truncated, ours.truncated);
    assert.ok(ours.truncated > 0 && ours.eval.length > 0, "the case covers truncation and a held-out split");
    assert.equal(theirs.tokens_per_epoch, ours.tokensPerEpoch);
    assert.equal(theirs.trained_tokens_per_epoch, ours.trainedTokensPerEpoch);
    assert.deepEqual(theirs.sample, ours.sample);
    // The same lines skipped for the same reasons (JSON error wording is each language's own).
    assert.deepEqual(
      theirs.logs.map(([, m]) => m.replace(/\(.*$/, '')),
      logs.map((m) => m.replace(/\(.*$/, '')),
    );
  });

  it('plans steps, learning rates, checkpoints and the data order of every epoch bit for bit as the embedded engine', () => {
    for (const c of [
      { examples: 30, batch_size: 8, epochs: 3, warmup_ratio: 0.1, checkpoints: 4, seed: 42, epoch: 0, peak: 2e-4, scheduler: 'cosine', step: 3 },
      { examples: 1000, batch_size: 7, epochs: 2, warmup_ratio: 0.03, checkpoints: 7, seed: 0xdeadbeef, epoch: 1, peak: 1e-4, scheduler: 'linear', step: 200 },
      { examples: 5, batch_size: 16, epochs: 1, warmup_ratio: 0, checkpoints: 3, seed: 2147483647, epoch: 5, peak: 1, scheduler: 'constant', step: 1 },
      { examples: 10, batch_size: 4, epochs: 5, warmup_ratio: 0.5, checkpoints: 2, seed: 7, epoch: 2, peak: 3e-4, scheduler: 'cosine', step: 10 },
    ] as const) {
      const plan = planRun(c.examples, c.batch_size, c.epochs, c.warmup_ratio, c.checkpoints);
      const order = epochOrder(c.examples, c.seed, c.epoch);
      const theirs = probe<{ plan: unknown; lr: number[]; order: number[]; permutation: number[]; batch: number[] }>({ op: 'schedule', ...c });
      assert.deepEqual(theirs.plan, plan);
      assert.deepEqual(theirs.order, order);
      assert.deepEqual(theirs.permutation, permutation(c.examples, c.seed));
      assert.deepEqual(theirs.batch, batchOf(c.step, plan, order, c.batch_size));
      const lr = Array.from({ length: plan.totalSteps }, (_, i) => learningRate(i + 1, plan, c.peak, c.scheduler));
      theirs.lr.forEach((v, i) => assert.ok(Math.abs(v - lr[i]) <= 1e-15 * Math.max(1, Math.abs(lr[i])), `lr of step ${i + 1}: ${v} vs ${lr[i]}`));
    }
  });

  it('packs a step\'s examples into rows within the budget, positions restarting per example, no label across a boundary', () => {
    const many = [...conversations, ...conversations, ...conversations];
    const answer = probe<{
      examples: { ids: number[]; labels: number[]; trained_tokens: number }[];
      rows: { input_ids: number[]; labels: number[]; position_ids: number[]; cu_seqlens: number[]; max_seqlen: number; examples: number[]; trained_tokens: number }[];
    }>({ op: 'pack', tokenizer_json: tinyJson, conversations: many, max_seq_length: 200, budget: 400 });
    const seen = answer.rows.flatMap((r) => r.examples).sort((a, b) => a - b);
    assert.deepEqual(seen, many.map((_, i) => i), 'every example in exactly one row');
    let trained = 0;
    for (const row of answer.rows) {
      assert.ok(row.input_ids.length <= 400 || row.examples.length === 1, 'a row holds more than the budget');
      assert.equal(row.cu_seqlens.at(-1), row.input_ids.length);
      row.examples.forEach((index, k) => {
        const e = answer.examples[index];
        const start = row.cu_seqlens[k];
        assert.deepEqual(row.input_ids.slice(start, start + e.ids.length), e.ids);
        assert.deepEqual(row.position_ids.slice(start, start + e.ids.length), e.ids.map((_, p) => p));
        assert.equal(row.labels[start], IGNORE, 'the first label of each example is masked');
        assert.deepEqual(row.labels.slice(start + 1, start + e.ids.length), e.labels.slice(1));
        assert.equal(row.max_seqlen >= e.ids.length, true);
      });
      trained += row.trained_tokens;
    }
    assert.equal(trained, answer.examples.reduce((s, e) => s + e.trained_tokens, 0), 'the step trains the same tokens packed as unpacked');
    assert.ok(answer.rows.length < many.length, 'packing put several examples in a row');
  });
});

describe('torch engine: command line and protocol', () => {
  it('speaks the protocol version of common/engineProtocol.ts', () => {
    const source = readFileSync(join(ENGINE_DIR, 'finetune_torch', 'protocol.py'), 'utf8');
    assert.equal(Number(/^PROTOCOL_VERSION = (\d+)$/m.exec(source)?.[1]), ENGINE_PROTOCOL_VERSION);
  });

  it('`check` says whether it can run here, and why not', async () => {
    const { status, stdout } = await engine(['check']);
    assert.equal(status, 0);
    const report = JSON.parse(stdout) as { available: boolean; reason?: string; protocol: number; modules: Record<string, string | null> };
    assert.equal(report.protocol, ENGINE_PROTOCOL_VERSION);
    assert.deepEqual(Object.keys(report.modules).sort(), ['peft', 'safetensors', 'torch', 'transformers']);
    if (!report.available) assert.match(report.reason ?? '', /missing Python packages|no NVIDIA GPU|Python 3\.10/);
  });

  it('refuses an unknown mode with its usage, on stderr', async () => {
    const { status, stdout, stderr } = await engine(['bake']);
    assert.equal(status, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /invalid choice: 'bake'/);
  });

  it('checks a train message before trusting it: each problem named by its path', () => {
    const good = {
      type: 'train',
      protocol: ENGINE_PROTOCOL_VERSION,
      spec: {
        job_id: 'ftjob-1',
        model: { id: 'tiny-qwen2-1m', path: '/m' },
        training_file: '/t.jsonl',
        validation_file: null,
        hyperparameters: {
          n_epochs: 2, batch_size: 4, learning_rate: 2e-4, learning_rate_multiplier: 1, max_seq_length: 512, warmup_ratio: 0.1,
          lr_scheduler: 'cosine', training_type: 'lora', lora_r: 8, lora_alpha: 16, lora_dropout: 0, lora_target_modules: ['q_proj', 'v_proj'], checkpoints: 2, eval_ratio: 0.1,
        },
        seed: 3,
        output_dir: '/o',
        resume_from: null,
        gpus: 1,
      },
    };
    assert.equal(parseRequest(JSON.stringify(good)), 'TrainSpec ftjob-1');
    const bad = structuredClone(good) as typeof good & { spec: { hyperparameters: Record<string, unknown> } };
    bad.spec.hyperparameters.lr_scheduler = 'exponential';
    assert.match(parseRequest(JSON.stringify(bad)), /train\.spec\.hyperparameters\.lr_scheduler must be one of cosine, linear, constant/);
    assert.match(parseRequest(JSON.stringify({ ...good, protocol: 99 })), /speaks version 99, this engine 1/);
    assert.match(parseRequest('{"type": "chat", "id": "c1"}'), /chat\.model must be an object/);
    assert.match(parseRequest('not json'), /a line is not JSON/);
  });
});

/** A Python with torch (the chat sampler's test needs it), or undefined: Debian's python3-torch is at /usr/bin. */
function pythonWithTorch(): string | undefined {
  for (const candidate of [PYTHON, '/usr/bin/python3']) {
    if (spawnSync(candidate, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

describe('torch engine: the chat sampler (where torch is installed)', () => {
  const python = pythonWithTorch();
  const base = { temperature: 1, top_p: 1, top_k: 0, repetition_penalty: 1, seed: 1 };
  const sample = (cases: Record<string, unknown>[]): number[][] => {
    const result = spawnSync(python ?? PYTHON, [PROBE], { input: JSON.stringify({ op: 'sample', cases }), env: { ...process.env, PYTHONPATH: ENGINE_DIR }, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return (JSON.parse(result.stdout) as { picks: number[][] }).picks;
  };

  it('greedy at temperature 0, penalised repeats, top-k, top-p, and the seed', { skip: python === undefined ? 'no Python with torch here' : false }, () => {
    const logits = [1, 3, 2.9, -1];
    const [greedy, penalised, topK, topP, seeded, seededAgain, spread] = sample([
      { ...base, logits, temperature: 0 },
      // 3 / 1.5 = 2 < 2.9: the seen token loses its lead.
      { ...base, logits, temperature: 0, repetition_penalty: 1.5, seen: [1] },
      { ...base, logits, top_k: 1, draws: 20 },
      { ...base, logits: [0, 8, 0, 0], top_p: 0.5, draws: 20 },
      { ...base, logits: [0, 0, 0, 0], seed: 99, draws: 30 },
      { ...base, logits: [0, 0, 0, 0], seed: 99, draws: 30 },
      { ...base, logits: [0, 0, 0, 0], seed: 5, draws: 200 },
    ]);
    assert.deepEqual(greedy, [1]);
    assert.deepEqual(penalised, [2]);
    assert.ok(topK.every((t) => t === 1));
    assert.ok(topP.every((t) => t === 1));
    assert.deepEqual(seeded, seededAgain, 'the same seed draws the same tokens');
    assert.deepEqual([...new Set(spread)].sort(), [0, 1, 2, 3], 'uniform logits reach every token');
  });
});

/** Parses one line with the engine's parse_request; the dataclass name and id, or the error. */
function parseRequest(line: string): string {
  const script = [
    'import sys',
    'from finetune_torch.protocol import parse_request, EngineError',
    'try:',
    '    r = parse_request(sys.stdin.read())',
    '    print(type(r).__name__, getattr(r, "job_id", getattr(r, "id", "")))',
    'except EngineError as e:',
    '    print("error", e.code, e)',
  ].join('\n');
  const result = spawnSync(PYTHON, ['-c', script], { input: line, env: { ...process.env, PYTHONPATH: ENGINE_DIR }, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}
