// Answers as Markdown: marked turns the text into HTML, highlight.js colours code blocks (its core with a handful
// of common languages, to keep the bundle small), and DOMPurify sanitises the result before it reaches the DOM.
// Raw HTML in an answer is shown as text, never interpreted: a model's output is untrusted, and the CSP forbids
// inline styles and scripts anyway. `markdownToHtml` needs no DOM (the unit test runs it under Node).
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { Marked, type Tokens } from 'marked';

hljs.registerLanguage('bash', bash);
hljs.registerLanguage('cpp', cpp);
hljs.registerLanguage('css', css);
hljs.registerLanguage('java', java);
hljs.registerLanguage('javascript', javascript);
hljs.registerLanguage('json', json);
hljs.registerLanguage('python', python);
hljs.registerLanguage('sql', sql);
hljs.registerLanguage('typescript', typescript);
hljs.registerLanguage('xml', xml);
hljs.registerLanguage('yaml', yaml);

/** The languages code blocks are highlighted in (aliases included: `js`, `ts`, `py`, `sh`, `html`, …). */
export function highlightedLanguages(): string[] {
  return hljs.listLanguages();
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A code block's language from its fence info (`ts title="x"` → `ts`), lower-case; empty when none. */
function fenceLanguage(info: string | undefined): string {
  return (info ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }: Tokens.Code): string {
      const language = fenceLanguage(lang);
      const known = language !== '' && hljs.getLanguage(language) !== undefined;
      const body = known ? hljs.highlight(text, { language, ignoreIllegals: true }).value : escapeHtml(text);
      const label = language === '' ? '' : `<span class="code-lang">${escapeHtml(language)}</span>`;
      return `<div class="code-block"><div class="code-head">${label}</div><pre><code class="hljs${known ? ` language-${escapeHtml(language)}` : ''}">${body}</code></pre></div>\n`;
    },
    // Raw HTML (a block or inline tag the model wrote) is text.
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(text);
    },
  },
});

/** The answer's Markdown as HTML (not yet sanitised); an unfinished code fence (mid-stream) is a code block. */
export function markdownToHtml(text: string): string {
  return marked.parse(text, { async: false });
}

/** The answer's Markdown as sanitised HTML, ready for `innerHTML` (needs a DOM: the webview). */
export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(markdownToHtml(text), { USE_PROFILES: { html: true }, FORBID_ATTR: ['style'], FORBID_TAGS: ['style', 'form', 'input', 'textarea', 'select', 'button'] });
}
