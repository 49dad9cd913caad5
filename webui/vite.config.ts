// Builds the chat UI into one small entry bundle (Preact, marked, DOMPurify,
// highlight.js) plus a lazily loaded KaTeX chunk fetched only when a reply
// contains math. `volga serve` embeds the output (see cmake/WebUi.cmake).
import { defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';

// KaTeX's stylesheet lists every font three times (woff2, woff, ttf); every
// browser the UI supports reads woff2, so the other two are dropped to keep
// the binary small.
function katexWoff2Only(): Plugin {
  return {
    name: 'katex-woff2-only',
    enforce: 'pre',
    transform(code, id) {
      if (!/katex(\.min)?\.css$/.test(id)) return null;
      return code.replace(/,\s*url\([^)]*\.woff\)\s*format\("woff"\)/g, '')
                 .replace(/,\s*url\([^)]*\.ttf\)\s*format\("truetype"\)/g, '');
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [preact(), katexWoff2Only()],
  // `npm run dev`: live reload, with the API of a `volga serve` on port 8080.
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  build: {
    target: 'es2020',
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 400,
    reportCompressedSize: true,
  },
});
