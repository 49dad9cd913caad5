// The web UI of `volga serve` in a real browser: Debian's Chromium driven by
// playwright-core (from webui/node_modules), headless, kept off the network,
// against loopback servers running the demo model.
//
//   node tests/e2e/test_webui.mjs        (ctest: e2e.webui; exit 77 = skipped)
//
// Env: VOLGA_BIN (build/bin/volga), VOLGA_ROOT (the source tree),
// VOLGA_WEBUI_ARTIFACTS (where screenshots and figures go; default $TMPDIR),
// VOLGA_WEBUI_DIST (the UI build, compared with what the server serves),
// CHROMIUM (default /usr/bin/chromium).
//
// Expected texts come from outside the UI: the server's own non-streamed
// reply to the same request, the interface strings the test names itself.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const here = path.dirname(new URL(import.meta.url).pathname);
const ROOT = process.env.VOLGA_ROOT || path.resolve(here, '..', '..');
const VOLGA = process.env.VOLGA_BIN || path.join(ROOT, 'build', 'bin', 'volga');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MODEL = path.join(ROOT, 'models', 'volga-demo-q8_0.gguf');
const OUT = process.env.VOLGA_WEBUI_ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'volga-webui-'));
fs.mkdirSync(OUT, { recursive: true });
for (const f of fs.readdirSync(OUT)) if (/^failure-\d+\.png$/.test(f)) fs.rmSync(path.join(OUT, f));
const KEY = 'sk-webui-test-key';
const SKIP = 77;

function skip(why) {
  console.log('SKIPPED: ' + why);
  process.exit(SKIP);
}

if (Number(process.versions.node.split('.')[0]) < 20) skip('playwright-core needs Node.js 20 or later');
let chromium;
try {
  chromium = createRequire(path.join(ROOT, 'webui', 'package.json'))('playwright-core').chromium;
} catch {
  skip('playwright-core is not installed (npm ci in webui/, or scripts/install-deps.sh)');
}
if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' is missing (apt-get install chromium, or scripts/install-deps.sh)');
if (!fs.existsSync(VOLGA)) skip(VOLGA + ' is not built');

// Flags that keep the browser to itself: no background services, no
// component updates, every host but loopback unresolvable.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
  '--disable-component-update', '--disable-default-apps', '--disable-sync', '--disable-extensions',
  '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--metrics-recording-only',
  '--disable-breakpad', '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function startServer(...extra) {
  const port = await freePort();
  const proc = spawn(VOLGA, ['serve', MODEL, '--port', String(port), '-t', '1', '--parallel', '2', '-q', ...extra],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(base + '/health')).ok) return { base, proc, stderr: () => stderr };
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('volga serve did not start: ' + stderr);
}

const results = { checks: [] };
const started = Date.now();
function ok(name) {
  results.checks.push(name);
  console.log(`ok - ${name} [${((Date.now() - started) / 1000).toFixed(1)} s]`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, name + '.png') });
}

// Watches the last assistant message and records every distinct text it shows.
async function watchReply(page) {
  await page.evaluate(() => {
    const w = window;
    w.__seen = [];
    const box = document.querySelector('[data-testid=messages]');
    w.__obs = new MutationObserver(() => {
      const all = box.querySelectorAll('[data-testid=message-assistant] [data-testid=content]');
      const last = all[all.length - 1];
      const text = last ? last.textContent : '';
      if (text && w.__seen[w.__seen.length - 1] !== text) w.__seen.push(text);
    });
    w.__obs.observe(box, { subtree: true, childList: true, characterData: true });
  });
}

function repliesDone(page) {
  return page.evaluate(() => Number(document.querySelector('[data-testid=messages]').dataset.repliesDone));
}

// Runs `action` (which starts a reply) and waits until that reply has ended.
async function reply(page, action) {
  const before = await repliesDone(page);
  await action();
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid=messages]').dataset.repliesDone) > n,
                             before, { timeout: 30000 });
}

async function send(page, text) {
  await page.fill('[data-testid=input]', text);
  await page.click('[data-testid=send]');
}

// Waits (up to 5 s) for the send button to read `text`: renders are asynchronous.
async function sendLabel(page, text) {
  await page.waitForFunction((t) => document.querySelector('[data-testid=send]')?.textContent === t, text, { timeout: 5000 })
    .catch(async () => assert.equal(await page.textContent('[data-testid=send]'), text));
}

async function setSampling(page, values) {
  await page.click('[data-testid=settings-toggle]');
  for (const [key, value] of Object.entries(values)) {
    await page.fill(`[data-testid=set-${key}]`, value);
    await page.locator(`[data-testid=set-${key}]`).blur();
  }
  await page.click('[data-testid=settings-toggle]');
}

async function chatDirect(server, body) {
  const res = await fetch(server.base + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return res.json();
}

function storedConversations(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('volga.conversations') || '[]'));
}

// Every file of the UI build (VOLGA_WEBUI_DIST, build/webui/dist) is served
// byte for byte, with the Content-Type its extension calls for, no API key,
// and cache headers: hashed assets for good, the page revalidated.
async function servedFilesMatchDist(server, dist) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
                  '.woff2': 'font/woff2' };
  const files = fs.readdirSync(dist, { recursive: true }).filter((f) => fs.statSync(path.join(dist, f)).isFile());
  assert.ok(files.includes('index.html') && files.some((f) => f.endsWith('.js')), 'the UI build has a page and a script');
  let bytes = 0;
  for (const rel of files) {
    const res = await fetch(`${server.base}/${rel}`, { headers: { Authorization: 'Bearer not-needed' } });
    assert.equal(res.status, 200, rel);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(fs.readFileSync(path.join(dist, rel))), `${rel} is served byte for byte`);
    assert.equal(res.headers.get('content-type'), types[path.extname(rel)], rel);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cache-control'), rel === 'index.html' ? 'no-cache' : 'public, max-age=31536000, immutable', rel);
    bytes += body.length;
  }
  const page = await fetch(server.base + '/');
  assert.ok(Buffer.from(await page.arrayBuffer()).equals(fs.readFileSync(path.join(dist, 'index.html'))));
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal((await fetch(server.base + '/assets/missing.js')).status, 404);
  ok(`all ${files.length} files of the UI build (${bytes} bytes) are served as built, with types and cache headers, without a key`);
}

async function main() {
  const plain = await startServer();
  const keyed = await startServer('--api-key', KEY);
  const stop = () => { plain.proc.kill('SIGTERM'); keyed.proc.kill('SIGTERM'); };
  if ((await (await fetch(plain.base + '/')).text()).includes('was not built')) {
    stop();
    skip('this volga was built without the web UI (see the CMake note: npm, Node.js 20.19+, webui/node_modules)');
  }
  let browser = null;
  try {
    const dist = process.env.VOLGA_WEBUI_DIST;
    if (dist && fs.existsSync(dist)) await servedFilesMatchDist(keyed, dist);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    await mainFlow(browser, plain);
    await languageFromBrowser(browser, plain);
    await markupStaysText(browser, plain);
    await apiKeyFlow(browser, keyed);
  } catch (e) {
    for (const context of browser ? browser.contexts() : [])
      for (const [i, page] of context.pages().entries()) await shot(page, 'failure-' + i).catch(() => {});
    throw e;
  } finally {
    if (browser) await browser.close();
    stop();
  }
  fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(results, null, 2));
  console.log(`figures: first contentful paint ${results.first_contentful_paint_ms} ms; artifacts in ${OUT}`);
}

async function mainFlow(browser, server) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const foreign = [];
  const errors = [];
  page.on('request', (r) => { if (!r.url().startsWith(server.base) && !r.url().startsWith('data:')) foreign.push(r.url()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  // 1. The page loads without an API key, from the binary alone.
  const res = await page.goto(server.base + '/');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);
  await page.waitForSelector('[data-testid=send]');
  await page.waitForFunction(() => document.querySelector('[data-testid=model]').textContent === 'volga-demo-q8_0');
  const fcp = await page.evaluate(() => {
    const e = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
    return e ? e.startTime : null;
  });
  assert.ok(fcp !== null && fcp > 0, 'first-contentful-paint was recorded');
  results.first_contentful_paint_ms = Math.round(fcp);
  // What crossed the wire (compressed by the server) on this first, uncached load.
  results.transferred_bytes = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((r) => r.name.includes('/assets/')).reduce((n, r) => n + r.transferSize, 0)
    + performance.getEntriesByType('navigation')[0].transferSize);
  await page.reload();
  await page.waitForSelector('[data-testid=send]');
  results.first_contentful_paint_reload_ms = Math.round(await page.evaluate(() =>
    performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint')?.startTime ?? -1));
  assert.equal(await page.textContent('[data-testid=send]'), 'Send');
  await shot(page, '01-empty');
  ok(`the UI loads from volga serve (first contentful paint ${Math.round(fcp)} ms, ${results.first_contentful_paint_reload_ms} ms on reload; ${results.transferred_bytes} bytes transferred)`);

  // 2. A message streams back token by token. The demo model (trained on
  //    fortunes) ends its replies after a line or two, faster than a browser
  //    reads; a JSON Schema that needs a long array keeps it talking. The
  //    route only adds response_format to the UI's request, which still goes
  //    to the server and streams back unchanged. Greedy sampling, so the
  //    server's own non-streamed reply to the same body is the expected text.
  let sentBody = null;
  const longReplies = (maxTokens) => page.route('**/v1/chat/completions', async (route) => {
    const body = JSON.parse(route.request().postData());
    if (maxTokens) body.max_tokens = maxTokens;
    body.response_format = { type: 'json_schema', json_schema: { name: 'long', schema: {
      type: 'array', items: { type: 'string', minLength: 10, maxLength: 40 }, minItems: 80 } } };
    sentBody = body;
    await route.continue({ postData: JSON.stringify(body) });
  });
  // The browser's network is throttled too (about 160 SSE chunks a second), so
  //    the stream spreads over a second or two even when a busy machine starves
  //    the browser while the server generates.
  await setSampling(page, { temperature: '0', max_tokens: '200' });
  await longReplies(0);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const throttle = (bytesPerSecond) => cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: bytesPerSecond, uploadThroughput: -1 });
  await throttle(40000);
  await watchReply(page);
  await reply(page, () => send(page, 'Tell me something wise'));
  await page.unroute('**/v1/chat/completions');
  const seen = await page.evaluate(() => window.__seen);
  assert.ok(seen.length >= 5, `the reply appeared in ${seen.length} steps, expected many`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].length >= seen[i - 1].length, 'the reply only grows while streaming');
  assert.equal(sentBody.temperature, 0);
  assert.equal(sentBody.max_tokens, 200);
  assert.equal(sentBody.stream, true);
  const direct = await chatDirect(server, { ...sentBody, stream: false, stream_options: undefined });
  let convs = await storedConversations(page);
  assert.equal(convs.length, 1);
  const streamed = convs[0].messages[1];
  assert.equal(streamed.content, direct.choices[0].message.content, 'the streamed reply equals the server\'s whole reply');
  assert.equal(streamed.stats.completionTokens, direct.usage.completion_tokens);
  const stats = await page.textContent('[data-testid=stats]');
  assert.match(stats, new RegExp(`^${direct.usage.completion_tokens} tokens · [0-9.]+ tok/s · first token [0-9.]+ s · context ${direct.usage.total_tokens} / 512 \\(\\d+%\\)`));
  await shot(page, '02-reply');
  ok(`the reply streamed in ${seen.length} DOM steps and equals the server's own reply; stats: ${stats}`);

  // 3. Stop mid-stream, in a new conversation.
  await page.click('[data-testid=new-chat]');
  await longReplies(400);
  const doneBefore = await repliesDone(page);
  await send(page, 'A long list, please');
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('[data-testid=message-assistant] [data-testid=content]');
    return all.length === 1 && all[0].textContent.length > 0;
  }, null, { polling: 'raf', timeout: 30000 });
  await page.click('[data-testid=stop]');
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid=messages]').dataset.repliesDone) > n, doneBefore);
  await page.unroute('**/v1/chat/completions');
  const current = async () => (await storedConversations(page)).find((c) => c.title === 'A long list, please');
  const stopped = (await current()).messages[1];
  assert.equal(stopped.stats.finish, 'stopped');
  assert.ok(stopped.content.length > 0);
  const lengthAtStop = stopped.content.length;
  await page.waitForTimeout(600);
  assert.equal((await current()).messages[1].content.length, lengthAtStop, 'nothing arrives after stop');
  assert.match(await page.textContent('[data-testid=stats]'), /stopped/);
  // The server noticed: its slots are free again.
  let busy = -1;
  for (let i = 0; i < 50 && busy !== 0; i++) {
    busy = (await (await fetch(server.base + '/health')).json()).slots.busy;
    if (busy) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(busy, 0, 'the server stopped generating');
  await shot(page, '03-stopped');
  await throttle(-1);
  ok(`stop ended the reply after ${lengthAtStop} characters (of up to 400 tokens), and the server freed its slot`);

  // 4. Regenerate replaces the last reply; edit-and-resend cuts the conversation there.
  await setSampling(page, { temperature: '0', max_tokens: '48' });
  await reply(page, () => page.click('[data-testid=regenerate]'));
  convs = await storedConversations(page);
  assert.equal((await current()).messages.length, 2);
  assert.notEqual((await current()).messages[1].stats.finish, 'stopped');
  await send(page, 'And another');
  await page.waitForFunction(() => !document.querySelector('[data-testid=stop]') && document.querySelectorAll('[data-testid=stats]').length === 2);
  await page.locator('[data-testid=edit]').first().click();
  await page.fill('[data-testid=edit-input]', 'Say something short');
  await reply(page, () => page.click('[data-testid=edit-send]'));
  const edited = (await storedConversations(page)).find((c) => c.title === 'A long list, please');
  assert.equal(edited.messages.length, 2, 'edit-and-resend drops the turns after the edited message');
  assert.equal(edited.messages[0].content, 'Say something short');
  const direct2 = await chatDirect(server, { messages: [{ role: 'user', content: 'Say something short' }], temperature: 0, max_tokens: 48 });
  assert.equal(edited.messages[1].content, direct2.choices[0].message.content);
  ok('regenerate and edit-and-resend (per-conversation sampling settings reach the server)');

  // 5. Reload: both conversations are still there.
  await page.reload();
  await page.waitForSelector('[data-testid=message-assistant]');
  assert.equal(await page.locator('[data-testid=conv-list] li').count(), 2);
  assert.equal(await page.locator('[data-testid=message-user] [data-testid=content]').first().textContent(), 'Say something short');
  assert.equal(await page.locator('[data-testid=message-assistant]').count(), 1);
  await page.locator('[data-testid=conv-list] li button', { hasText: 'Tell me something wise' }).click();
  assert.equal(await page.locator('[data-testid=message-assistant] [data-testid=content]').textContent() !== '', true);
  ok('the conversations survive a reload');

  // 6. Language switch, theme switch.
  await page.selectOption('[data-testid=lang]', 'ru');
  await sendLabel(page, 'Отправить');
  await page.waitForFunction(() => document.documentElement.lang === 'ru');
  await shot(page, '04-russian');
  await page.selectOption('[data-testid=lang]', 'zh');
  await sendLabel(page, '发送');
  await page.reload();
  await page.waitForSelector('[data-testid=send]');
  await sendLabel(page, '发送');  // the chosen language is kept
  await page.selectOption('[data-testid=lang]', 'en');
  const before = await page.getAttribute('html', 'data-theme');
  await page.click('[data-testid=theme]');
  await page.waitForFunction((b) => document.documentElement.dataset.theme !== b, before);
  const after = await page.getAttribute('html', 'data-theme');
  await shot(page, `05-theme-${after}`);
  ok('language switch (ru, zh, kept on reload) and theme switch');

  assert.deepEqual(foreign, [], 'no request left the server');
  assert.deepEqual(errors, [], 'no script errors');
  ok('no request went anywhere but the server; no script errors');
  await context.close();
}

async function languageFromBrowser(browser, server) {
  for (const [locale, sendText] of [['ru-RU', 'Отправить'], ['zh-CN', '发送']]) {
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    await page.goto(server.base + '/');
    await sendLabel(page, sendText);
    // First paint with an empty cache in a browser already running.
    results[`first_contentful_paint_fresh_context_${locale}_ms`] = Math.round(await page.evaluate(() =>
      performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint')?.startTime ?? -1));
    await context.close();
  }
  ok('the interface language follows the browser (ru-RU, zh-CN)');
}

// A reply full of markup: injected with page.route, since the demo model
// does not write HTML on request. It must show as text and run nothing.
async function markupStaysText(browser, server) {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const evil = 'Hi <img src=x onerror="window.__pwned=1;alert(1)"> and <script>window.__pwned=2</script> ' +
               '<a href="javascript:window.__pwned=3">link</a>\n\n```html\n<b onmouseover=alert(2)>code</b>\n```\n\n' +
               'Math: $$\\frac{a}{b} + \\sqrt{x}$$\n\n```python\ndef f(x):\n    return x\n```\n';
  const chunk = (delta, finish = null) => 'data: ' + JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm',
                                                                          choices: [{ index: 0, delta, finish_reason: finish }] }) + '\n\n';
  const sse = chunk({ role: 'assistant', content: '' }) + chunk({ reasoning_content: 'Thinking about <i onclick=x>markup</i>' }) +
              [...evil].map((ch) => chunk({ content: ch })).join('') +
              chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }) +
              chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city": "<svg onload=alert(3)>"}' } }] }) +
              chunk({}, 'tool_calls') +
              'data: ' + JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [],
                                          usage: { prompt_tokens: 5, completion_tokens: 30, total_tokens: 35 } }) + '\n\ndata: [DONE]\n\n';
  await page.route('**/v1/chat/completions', (route) => route.fulfill({ status: 200, contentType: 'text/event-stream', body: sse }));
  await page.goto(server.base + '/');
  await reply(page, () => send(page, 'Show me some HTML'));
  const msg = page.locator('[data-testid=message-assistant]');
  const text = await msg.locator('[data-testid=content]').textContent();
  assert.ok(text.includes('<img src=x onerror="window.__pwned=1;alert(1)">'), 'the img tag is shown as text: ' + text);
  assert.ok(text.includes('<script>window.__pwned=2</script>'), 'the script tag is shown as text');
  assert.ok(text.includes('<b onmouseover=alert(2)>code</b>'), 'the code block shows its markup');
  assert.equal(await page.locator('[data-testid=messages] img, [data-testid=messages] script').count(), 0);
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('[data-testid=messages] svg')].filter((e) => !e.closest('.katex')).length), 0,
               'no SVG but KaTeX\'s own');
  assert.equal(await page.locator('[data-testid=messages] a[href^="javascript"]').count(), 0);
  assert.equal(await msg.locator('[data-testid=content] a').count(), 0, 'the raw <a> is text, not a link');
  await page.locator('[data-testid=messages] pre').first().hover();
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected script ran');
  assert.deepEqual(dialogs, []);
  // Math is typeset by KaTeX (its chunk loads on demand, from the server); code is highlighted.
  await msg.locator('.katex .mfrac').first().waitFor({ timeout: 10000 });
  assert.equal(await msg.locator('.hljs-keyword', { hasText: 'def' }).count(), 1);
  // Reasoning is collapsed once the reply is done; tool calls are shown.
  const reasoning = msg.locator('[data-testid=reasoning]');
  assert.equal(await reasoning.getAttribute('open'), null);
  await reasoning.locator('summary').click();
  assert.match(await reasoning.textContent(), /Thinking about <i onclick=x>markup<\/i>/);
  const call = msg.locator('[data-testid=tool-call]');
  assert.match(await call.textContent(), /get_weather/);
  assert.match(await call.textContent(), /"city": "<svg onload=alert\(3\)>"/);
  assert.match(await msg.locator('[data-testid=stats]').textContent(), /^30 tokens/);
  // Copy buttons: the code block's text, and the whole reply as its Markdown source.
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await msg.locator('button[data-copy-code]').first().click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), '<b onmouseover=alert(2)>code</b>');
  await msg.locator('[data-testid=copy]').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), evil);
  await shot(page, '06-markup-as-text');
  ok('HTML and script in a reply, its reasoning and tool calls are shown as text; nothing ran; copy buttons copy');
  await context.close();
}

async function apiKeyFlow(browser, server) {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  const statuses = [];
  page.on('response', (r) => statuses.push([new URL(r.url()).pathname, r.status(), r.request().headers()['authorization'] || '']));
  await page.goto(server.base + '/');
  await page.waitForSelector('[data-testid=api-key-dialog]');
  for (const [p, status, auth] of statuses)
    if (p === '/' || p.startsWith('/assets/')) assert.ok(status === 200 && !auth, `${p} loads without a key`);
  await shot(page, '07-api-key');
  await page.fill('[data-testid=api-key-input]', 'wrong-key');
  await page.click('[data-testid=api-key-save]');
  await page.waitForSelector('[data-testid=api-key-dialog] .error');
  await page.fill('[data-testid=api-key-input]', KEY);
  await page.click('[data-testid=api-key-save]');
  await page.waitForSelector('[data-testid=api-key-dialog]', { state: 'detached' });
  await page.waitForFunction(() => document.querySelector('[data-testid=model]').textContent === 'volga-demo-q8_0');
  await reply(page, () => send(page, 'Hello'));
  const convs = await storedConversations(page);
  assert.ok(convs[0].messages[1].content.length > 0 && !convs[0].messages[1].error);
  const chat = statuses.filter(([p]) => p === '/v1/chat/completions');
  assert.deepEqual(chat.map(([, s, a]) => [s, a]), [[200, 'Bearer ' + KEY]]);
  ok('against a server with an API key: the UI loads, asks for the key, refuses a wrong one, then chats');
  await context.close();
}

main().then(() => {
  console.log(`all ${results.checks.length} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(0);
}, (e) => {
  console.error('FAILED: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
