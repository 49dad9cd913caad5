// Model output -> safe HTML. Markdown is rendered by marked with raw HTML
// turned into visible text (a model that writes <img onerror=…> shows those
// characters, nothing more), code highlighted by highlight.js, math by KaTeX
// (loaded on first use), and the result passed through DOMPurify before it
// reaches the DOM.
import { Marked, type Tokens, type TokenizerAndRendererExtension } from 'marked';
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const languages = { bash, c, cpp, css, diff, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(languages)) hljs.registerLanguage(name, lang);

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

// KaTeX is a separate chunk: fetched the first time a reply holds math, then
// `onMathReady` re-renders the messages.
type Katex = typeof import('katex').default;
let katex: Katex | null = null;
let katexLoading = false;
let onMathReady: () => void = () => {};
export function setMathReadyListener(fn: () => void): void { onMathReady = fn; }
// Changes once KaTeX has loaded: rendered Markdown that depends on it is stale.
export function mathReady(): boolean { return katex !== null; }

function renderMath(tex: string, display: boolean): string {
  if (!katex) {
    if (!katexLoading) {
      katexLoading = true;
      import('./katex').then((m) => { katex = m.default; onMathReady(); }, () => { katexLoading = false; });
    }
    return `<code class="math-pending">${escapeHtml(tex)}</code>`;
  }
  return katex.renderToString(tex, { displayMode: display, throwOnError: false, output: 'htmlAndMathml', trust: false });
}

interface MathToken extends Tokens.Generic { text: string; display: boolean }

const blockMath: TokenizerAndRendererExtension = {
  name: 'blockMath',
  level: 'block',
  start: (src: string) => src.match(/\$\$|\\\[/)?.index,
  tokenizer(src: string) {
    const m = /^\$\$([\s\S]+?)\$\$[^\S\n]*(?:\n|$)/.exec(src) || /^\\\[([\s\S]+?)\\\][^\S\n]*(?:\n|$)/.exec(src);
    if (m) return { type: 'blockMath', raw: m[0], text: m[1].trim(), display: true } as MathToken;
    return undefined;
  },
  renderer: (t) => `<div class="math-block">${renderMath((t as MathToken).text, true)}</div>`,
};

const inlineMath: TokenizerAndRendererExtension = {
  name: 'inlineMath',
  level: 'inline',
  start: (src: string) => src.match(/\$|\\\(/)?.index,
  tokenizer(src: string) {
    // $…$ needs non-space inside its edges and no digit after it (so "$5 and $6" stays text).
    const m = /^\$\$([^$]+?)\$\$/.exec(src) || /^\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)/.exec(src) || /^\\\(([\s\S]+?)\\\)/.exec(src);
    if (m) return { type: 'inlineMath', raw: m[0], text: m[1], display: m[0].startsWith('$$') } as MathToken;
    return undefined;
  },
  renderer: (t) => renderMath((t as MathToken).text, (t as MathToken).display),
};

const md = new Marked({ gfm: true, breaks: false });
md.use({
  extensions: [blockMath, inlineMath],
  renderer: {
    // Raw HTML in model output is shown as text, never interpreted.
    html: ({ text }) => escapeHtml(text),
    code({ text, lang }) {
      const name = (lang || '').trim().split(/\s+/)[0].toLowerCase();
      let body: string;
      if (name && hljs.getLanguage(name)) body = hljs.highlight(text, { language: name, ignoreIllegals: true }).value;
      else body = escapeHtml(text);
      const label = name ? `<span class="code-lang">${escapeHtml(name)}</span>` : '';
      return `<div class="code-block"><div class="code-head">${label}<button type="button" class="copy-code" data-copy-code="1"></button></div>` +
             `<pre><code class="hljs">${body}</code></pre></div>`;
    },
    // Images would fetch from wherever the model points: shown as links instead.
    image: ({ href, text }) => `<a href="${escapeHtml(href)}" rel="noopener noreferrer" target="_blank">${escapeHtml(text || href)}</a>`,
  },
});

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

const PURIFY = { FORBID_TAGS: ['style', 'img', 'form', 'input', 'iframe', 'video', 'audio', 'source'], FORBID_ATTR: ['srcset'] };

export function renderMarkdown(text: string): string {
  const html = md.parse(text, { async: false }) as string;
  return DOMPurify.sanitize(html, PURIFY) as string;
}

export function sanitizeHtml(html: string): string {
  return DOMPurify.sanitize(html, PURIFY) as string;
}
