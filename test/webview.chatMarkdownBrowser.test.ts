// The chat's Markdown as the panel puts it in the page (webview/chat/markdown.ts `renderMarkdown`: marked, then
// DOMPurify), in Debian's Chromium: a model's answer that tries markup, scripts, handlers and javascript: links
// ends up as inert text; code blocks keep their highlighting; tables and lists render. The module is bundled into a
// temporary folder and opened from a file: URL (no code-server needed).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as esbuild from 'esbuild';
import type { Page } from 'playwright-core';
import { launchChromium, type LaunchedChromium } from './host/session';

const ROOT = join(__dirname, '..');

interface MarkdownGlobals {
  /** Renders into a fresh <div> and returns facts about what the DOM holds. */
  render(text: string): { html: string; scripts: number; handlers: string[]; hrefs: string[]; text: string; hljs: number; tables: number; items: number };
  /** Whether anything in the page ran that should not have. */
  pwned: boolean;
}

describe('chat markdown in Chromium', { timeout: 120_000 }, () => {
  let chromium: LaunchedChromium;
  let page: Page;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'finetune-markdown-'));
    const entry = `
      import { renderMarkdown } from ${JSON.stringify(join(ROOT, 'webview', 'chat', 'markdown.ts'))};
      globalThis.pwned = false;
      globalThis.render = (text) => {
        const box = document.createElement('div');
        box.innerHTML = renderMarkdown(text);
        document.body.append(box);
        const handlers = [];
        for (const node of box.querySelectorAll('*')) for (const a of node.attributes) if (/^on/i.test(a.name)) handlers.push(a.name);
        return {
          html: box.innerHTML,
          scripts: box.querySelectorAll('script, iframe, object, embed, style, form').length,
          handlers,
          hrefs: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href') ?? ''),
          text: box.textContent ?? '',
          hljs: box.querySelectorAll('code.hljs [class^="hljs-"]').length,
          tables: box.querySelectorAll('table').length,
          items: box.querySelectorAll('li').length,
        };
      };`;
    await esbuild.build({ stdin: { contents: entry, resolveDir: ROOT, loader: 'ts' }, bundle: true, format: 'iife', platform: 'browser', outfile: join(dir, 'page.js'), logLevel: 'warning' });
    writeFileSync(join(dir, 'page.html'), '<!DOCTYPE html><html><body><script src="page.js"></script></body></html>');
    chromium = await launchChromium();
    page = await chromium.browser.newPage();
    await page.goto(`file://${join(dir, 'page.html')}`);
    await page.waitForFunction(() => typeof (globalThis as unknown as Partial<MarkdownGlobals>).render === 'function');
  });

  after(async () => {
    await chromium?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const render = (text: string): Promise<ReturnType<MarkdownGlobals['render']>> => page.evaluate((t) => (globalThis as unknown as MarkdownGlobals).render(t), text);

  it('turns an answer that tries markup into inert text: no scripts, no handlers, no javascript: links', async () => {
    const result = await render(
      [
        'Hello <script>globalThis.pwned = true</script> world',
        '<img src=x onerror="globalThis.pwned = true">',
        '[click](javascript:globalThis.pwned=true) and [docs](https://example.com/a)',
        '<a href="javascript:globalThis.pwned=true">raw link</a> <iframe src="https://example.com"></iframe>',
        '<div style="position:fixed" onmouseover="globalThis.pwned = true">over</div>',
      ].join('\n\n'),
    );
    assert.equal(result.scripts, 0, result.html);
    assert.deepEqual(result.handlers, [], result.html);
    assert.ok(result.hrefs.every((h) => !/^javascript:/i.test(h)), result.hrefs.join(' '));
    assert.ok(result.hrefs.includes('https://example.com/a'), 'an ordinary link stays');
    assert.doesNotMatch(result.html, /<[^>]*\sstyle=/, 'no element keeps a style attribute');
    // What the model wrote is still there to read, as text.
    assert.match(result.text, /<script>globalThis\.pwned = true<\/script>/);
    // Give an image error or a handler the chance to run: nothing did.
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)));
    assert.equal(await page.evaluate(() => (globalThis as unknown as MarkdownGlobals).pwned), false);
  });

  it('keeps code highlighting, tables and lists through the sanitiser', async () => {
    const result = await render(
      ['Steps:', '', '1. one', '2. two', '', '| a | b |', '| - | - |', '| 1 | 2 |', '', '```python', 'def f(x):', '    return x * 2  # double', '```'].join('\n'),
    );
    assert.ok(result.hljs >= 3, `highlighted spans: ${result.hljs}\n${result.html}`);
    assert.equal(result.tables, 1);
    assert.equal(result.items, 2);
    assert.match(result.text, /def f\(x\):\n {4}return x \* 2 {2}# double/);
  });
});
