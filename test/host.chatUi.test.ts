// Issue 7's chat UI test: "Finetune: Test Checkpoint" as a user drives it in the real workbench (code-server),
// through Debian's Chromium with playwright-core. A backend started by this process trains a tiny run (its URL and
// key reach the extension through the environment, as `npm start` does); the palette's quick picks are answered by
// typing and Enter; a prompt is typed and sent with Enter; the answer streams into the DOM; Stop stops it; Compare
// with the base model shows two answers; a window reload brings the chat back; the chat is photographed in the light
// and dark themes, in English and, in a second window, in Chinese (openHostSession's `locale`), checked through the
// webview's `lang`, which the host sets from `vscode.env.language`. Screenshots: test-artifacts/chat-ui/ (the Chinese
// window's in test-artifacts/chat-ui-zh-cn/, copied to chat-ui/zh-cn/).
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import type { FrameLocator, Page } from 'playwright-core';
import { ownerOf } from '../backend/http/auth';
import { BackendClient } from '../src/backendClient';
import { startTestBackend, waitForFinal, type TestBackend } from './backend.harness';
import { ARTIFACTS_DIR, openHostSession, type HostSession } from './host/session';
import { uiSteps } from './host/uiSteps';
import { palette } from './host/workbench';

const STEP_TIMEOUT_MS = 60_000;
const RUN = 'chat-ui-run';
const SYSTEM_PROMPT = 'You are a calculator.';
const ADAPTER = 'kept-adapter';

/** Answers long enough that the tiny model keeps talking at temperature 1 (a long answer to stop). */
function dataset(): string {
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) {
    const answer = `${i} plus ${i} is ${i + i}. Adding a number to itself doubles it, so the answer is ${i + i}.`;
    lines.push(JSON.stringify({ messages: [{ role: 'system', content: SYSTEM_PROMPT }, { role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: answer }] }));
  }
  return `${lines.join('\n')}\n`;
}

/** The chat's page: VS Code nests the extension's HTML in an inner frame of its webview iframe. */
function chatFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').first().frameLocator('iframe#active-frame');
}

let backend: TestBackend;
let lastStep = 0;

before(async () => {
  backend = await startTestBackend();
  const client = new BackendClient({ url: backend.url, apiKey: backend.key });
  const file = await client.uploadFile({ name: 'calc.jsonl', bytes: new TextEncoder().encode(dataset()) });
  const job = await client.createJob({
    model: 'tiny-qwen2-1m',
    training_file: file.id,
    suffix: RUN,
    seed: 7,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, batch_size: 2, checkpoints: 3, eval_ratio: 0 } } },
  });
  const final = await waitForFinal(backend, ownerOf(backend.key), job.id, 120_000);
  assert.equal(final.status, 'succeeded');
  lastStep = final.progress?.total_steps ?? 0;
  assert.ok(lastStep > 0);
  // A kept adapter of the run: the checkpoint step lists it after the final model.
  const middle = (await client.listCheckpoints(job.id)).data.find((c) => c.step_number !== lastStep);
  assert.ok(middle, 'the run has one checkpoint only');
  await client.saveAdapter({ model: middle.fine_tuned_model_checkpoint, name: ADAPTER });
});

after(async () => {
  await backend?.close();
});

/** The chat walk-through in one window; `zh` for the Chinese one. */
function chatWalkthrough(name: string, language: 'en' | 'zh-cn'): void {
  const zh = language === 'zh-cn';
  const t = {
    command: zh ? 'Finetune: 测试检查点' : 'Finetune: Test Checkpoint',
    finalModel: zh ? '最终模型' : 'Final model',
    step: (n: number) => (zh ? `第 ${n} 步` : `step ${n}`),
    title: zh ? '对话 · ' : 'Chat · ',
    stopped: zh ? '已停止' : 'stopped',
    base: zh ? 'tiny-qwen2-1m（基础模型）' : 'tiny-qwen2-1m (base)',
  };

  describe(`chat UI in code-server (Chromium, ${language})`, { timeout: 420_000 }, () => {
    let session: HostSession;
    let page: Page;

    before(async () => {
      session = await openHostSession(name, {
        env: { FINETUNE_BACKEND_URL: backend.url, FINETUNE_BACKEND_KEY: backend.key },
        settings: { 'workbench.colorTheme': 'Default Light Modern', 'finetune.backends': [] },
        ...(zh ? { locale: 'zh-cn' } : {}),
      });
      page = session.page;
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
    });

    after(async () => {
      await session?.close();
    });

    const step = uiSteps(() => session, STEP_TIMEOUT_MS * 2);

    function rows(): ReturnType<Page['locator']> {
      // Only the shown list: the palette's own rows may linger, hidden, in the widget.
      return page.locator('.quick-input-widget .quick-input-list .monaco-list-row >> visible=true');
    }

    step('the workbench opens', async () => {
      await page.goto(session.workbenchUrl());
      await page.locator('.monaco-workbench.vs').waitFor();
      // The extension's contributions are known once its view container shows (before, the palette lacks them).
      await page.locator('.activitybar .action-item[aria-label^="Finetune"], .activitybar .action-label[aria-label^="Finetune"]').first().waitFor();
    });

    step('"Test Checkpoint" from the palette: runs, then checkpoints newest first, answered by typing and Enter', async (snap) => {
      await palette(page, t.command);
      const input = page.locator('.quick-input-widget input.input');
      // One backend: no backend step. The run step lists the run with its base model and status.
      await rows().filter({ hasText: RUN }).first().waitFor();
      assert.match(await rows().first().innerText(), /tiny-qwen2-1m/);
      await input.fill(RUN);
      await input.press('Enter');
      // The checkpoint step: the final model first, the run's saved adapters, then the checkpoints by step, highest first.
      await rows().filter({ hasText: t.finalModel }).first().waitFor();
      const labels = (await rows().locator('.label-name >> visible=true').allInnerTexts()).map((s) => s.trim());
      assert.equal(labels[0], t.finalModel, labels.join(' | '));
      assert.equal(labels[1], ADAPTER, labels.join(' | '));
      assert.equal(labels[2], t.step(lastStep), labels.join(' | '));
      await snap('checkpoint pick');
      await input.fill(t.step(lastStep));
      await rows().filter({ hasText: t.finalModel }).waitFor({ state: 'detached' });
      await rows().filter({ hasText: ADAPTER }).waitFor({ state: 'detached' });
      await input.press('Enter');
      await page.locator('.tabs-container .tab.active', { hasText: `${t.title}${RUN}-step${lastStep}` }).waitFor();
      const frame = chatFrame(page);
      await frame.locator('#composer').waitFor();
      // The webview's lang is the host's vscode.env.language.
      assert.equal(await frame.locator('html').getAttribute('lang'), language);
      assert.equal(await frame.locator('#system').inputValue(), SYSTEM_PROMPT, 'the dataset\'s system prompt is prefilled');
      assert.equal(await frame.locator('#f-temperature').inputValue(), '0.7');
      assert.equal(await frame.locator('#f-max_tokens').inputValue(), '512');
    });

    step('a typed prompt is sent with Enter and its answer streams in; Stop stops it', async (snap) => {
      const frame = chatFrame(page);
      await frame.locator('#f-temperature').fill('1');
      await frame.locator('#f-seed').fill('5');
      await frame.locator('#f-max_tokens').fill('100000');
      await frame.locator('#composer').fill('What is 3 plus 3?');
      await frame.locator('#composer').press('Enter');
      const answer = frame.locator('.answer[data-turn="0"][data-side="0"]');
      await answer.and(frame.locator('[data-state="streaming"]')).waitFor();
      // Pieces arrive: the answer's text grows while it streams.
      await answer.locator('.answer-body').filter({ hasText: /\S{3}/ }).waitFor();
      const early = (await answer.locator('.answer-body').innerText()).length;
      await frame.locator('#conversation').evaluate(
        (box, length) =>
          new Promise<void>((resolve) => {
            const { MutationObserver: Observer } = globalThis as unknown as { MutationObserver: new (callback: () => void) => { observe(target: unknown, options: Record<string, boolean>): void; disconnect(): void } };
            // No named functions in here: the test's TypeScript loader would wrap them in a helper the page lacks.
            const observer = new Observer(() => {
              if ((box.querySelector('.answer[data-turn="0"][data-side="0"] .answer-body')?.textContent ?? '').length > length + 5) {
                observer.disconnect();
                resolve();
              }
            });
            observer.observe(box, { childList: true, subtree: true, characterData: true });
          }),
        early,
      );
      assert.equal(await frame.locator('#stop').isEnabled(), true);
      assert.equal(await frame.locator('#send').isEnabled(), false);
      await snap('streaming', page.locator('.editor-group-container.active'));
      await frame.locator('#stop').click();
      await answer.and(frame.locator('[data-state="stopped"]')).waitFor();
      await answer.locator('.answer-stats', { hasText: new RegExp(`${t.stopped}.*5$`) }).waitFor();
      await frame.locator('#send:not([disabled])').waitFor();
      assert.equal(await frame.locator('#composer').inputValue(), '', 'the composer is emptied once sent');
    });

    step('Compare with the base model: one prompt, two answers side by side, each with its stats', async (snap) => {
      const frame = chatFrame(page);
      await frame.locator('#compare').selectOption('tiny-qwen2-1m');
      await frame.locator('#compare option:checked', { hasText: t.base }).waitFor({ state: 'attached' });
      await frame.locator('#f-max_tokens').fill('40');
      await frame.locator('#composer').fill('Write it as code:\nprint(3 + 3)');
      await frame.locator('#composer').press('Enter');
      const turn = frame.locator('.turn[data-turn="1"]');
      await turn.locator('.answers.two').waitFor();
      for (const side of ['0', '1']) {
        const answer = turn.locator(`.answer[data-side="${side}"]`);
        await answer.and(frame.locator('[data-state="done"]')).waitFor();
        assert.match(await answer.locator('.answer-stats').innerText(), /\d/);
      }
      assert.equal(await turn.locator('.answer').count(), 2);
      assert.match(await turn.locator('.answer[data-side="1"] .who').innerText(), new RegExp(t.base.replace(/[()（）]/g, '.')));
      await snap('compare-light', page.locator('.editor-group-container.active'));
    });

    step('the dark theme', async (snap) => {
      // By the command's id: the workbench's own titles may be translated.
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input.input');
      await input.fill('>workbench.action.selectTheme');
      await page.keyboard.press('Enter');
      await input.fill('Dark Modern');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: /Dark Modern/ }).first().click();
      await page.locator('.monaco-workbench.vs-dark').waitFor();
      const frame = chatFrame(page);
      await frame.locator('body.vscode-dark').waitFor();
      await frame.locator('.turn[data-turn="1"] .answers.two').waitFor();
      await snap('compare-dark', page.locator('.editor-group-container.active'));
    });

    step('"Developer: Reload Window" brings the chat back with its conversation and settings', async () => {
      const reloaded = page.waitForEvent('load');
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input.input');
      await input.fill('>workbench.action.reloadWindow');
      await page.keyboard.press('Enter');
      await reloaded;
      await page.locator('.tabs-container .tab', { hasText: `${t.title}${RUN}-step${lastStep}` }).first().click();
      const frame = chatFrame(page);
      await frame.locator('.turn[data-turn="1"] .answers.two').waitFor();
      await frame.locator('.answer[data-turn="0"][data-side="0"][data-state="stopped"]').waitFor();
      assert.equal(await frame.locator('#f-max_tokens').inputValue(), '40');
      assert.equal(await frame.locator('#compare').inputValue(), 'tiny-qwen2-1m');
      assert.equal(await frame.locator('#system').inputValue(), SYSTEM_PROMPT);
    });
  });
}

chatWalkthrough('chat-ui', 'en');
chatWalkthrough('chat-ui-zh-cn', 'zh-cn');

after(() => {
  // The Chinese window's pictures beside the English ones (each session has its own artefact folder).
  const from = join(ARTIFACTS_DIR, 'chat-ui-zh-cn');
  if (!existsSync(from)) return;
  for (const file of readdirSync(from).filter((f) => f.endsWith('.png'))) cpSync(join(from, file), join(ARTIFACTS_DIR, 'chat-ui', 'zh-cn', file));
});
