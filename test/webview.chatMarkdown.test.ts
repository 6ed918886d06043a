// The chat's Markdown (webview/chat/markdown.ts) under Node, for what needs no DOM: code blocks highlighted with
// the registered languages (and escaped for others), raw HTML shown as text, an unfinished fence mid-stream. The
// sanitised DOM is checked in Chromium by test/webview.chatMarkdownBrowser.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { highlightedLanguages, markdownToHtml } from '../webview/chat/markdown';

describe('chat markdown', () => {
  it('highlights a fenced block of a registered language, with its language shown', () => {
    const html = markdownToHtml('Try:\n\n```python\ndef add(a, b):\n    return a + b  # sum\n```\n');
    assert.match(html, /<div class="code-block"><div class="code-head"><span class="code-lang">python<\/span><\/div><pre><code class="hljs language-python">/);
    assert.match(html, /<span class="hljs-keyword">def<\/span>/);
    assert.match(html, /<span class="hljs-comment"># sum<\/span>/);
    for (const language of ['javascript', 'typescript', 'python', 'json', 'bash', 'xml', 'css', 'sql', 'yaml', 'cpp', 'java']) {
      assert.ok(highlightedLanguages().includes(language), language);
    }
    // Aliases work through highlight.js's own table.
    assert.match(markdownToHtml('```ts\nconst x: number = 1;\n```'), /language-ts">.*hljs-keyword">const/s);
  });

  it('escapes a block of an unknown language instead of guessing', () => {
    const html = markdownToHtml('```brainfuck\n<+>[-]\n```');
    assert.match(html, /<code class="hljs">&lt;\+&gt;\[-\]<\/code>/);
  });

  it('shows raw HTML as text: a model\'s output is never markup', () => {
    const html = markdownToHtml('Hi <script>alert(1)</script> and <img src=x onerror=alert(1)>\n\n<div onclick="x()">block</div>');
    assert.doesNotMatch(html, /<script|<img|<div onclick/);
    assert.match(html, /&lt;script&gt;/);
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  });

  it('renders an unfinished fence (mid-stream) as a code block, and ordinary Markdown as usual', () => {
    const streaming = markdownToHtml('Here:\n\n```json\n{"a": 1,');
    assert.match(streaming, /<pre><code class="hljs language-json">.*hljs-attr/s);
    const rich = markdownToHtml('# Title\n\n- **bold** and `code`\n- [link](https://example.com)\n\n| a | b |\n|---|---|\n| 1 | 2 |');
    assert.match(rich, /<h1>Title<\/h1>/);
    assert.match(rich, /<strong>bold<\/strong> and <code>code<\/code>/);
    assert.match(rich, /<a href="https:\/\/example.com">link<\/a>/);
    assert.match(rich, /<table>/);
  });
});
