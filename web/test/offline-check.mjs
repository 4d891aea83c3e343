// Watches one player page while tests/page.rs stops and restarts the daemon under it: prints what the page shows
// as one JSON line every 500 ms until its standard input closes, then a last line with the page's errors. A line
// `click SELECTOR` on standard input clicks that element (a viewer's tap).
//
//   node web/test/offline-check.mjs --url http://127.0.0.1:PORT/watch/main
//
// Lines: {"t": s, "ct": video clock, "badge": "Live" | "Offline" | …, "overlay": shown, "text": overlay text,
// "gate": the age gate shown, "gateText": its text, "streamRequests": {"signed": n, "unsigned": n, "refused": n}}, then
// {"done": true, "pageErrors": [...], "foreign": [...]}. Exit 2 when it could not run.

import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const args = process.argv.slice(2);
const url = args[0] === '--url' ? args[1] : null;
if (!url) {
  console.error('usage: node offline-check.mjs --url URL');
  process.exit(2);
}
const origin = new URL(url).origin;

const t0 = Date.now();
let done = false;
const clicks = [];
let pendingInput = '';
process.stdin.on('data', (chunk) => {
  pendingInput += chunk;
  const lines = pendingInput.split('\n');
  pendingInput = lines.pop();
  for (const line of lines) {
    const m = line.match(/^click (.+)$/);
    if (m) clicks.push(m[1].trim());
  }
});
process.stdin.on('end', () => {
  done = true;
});
process.stdin.on('close', () => {
  done = true;
});
process.stdin.setEncoding('utf8');
process.stdin.resume();

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }).catch((e) => {
  console.error(`offline-check: cannot start ${CHROMIUM}: ${e.message}`);
  process.exit(2);
});
const page = await browser.newPage();
const pageErrors = [];
const foreign = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
// Stream requests by path: /s/{expiry}/{token}/hls/… (signed) or /hls/… (unsigned), and those answered 4xx.
const streamRequests = { signed: 0, unsigned: 0, refused: 0 };
page.on('response', (r) => {
  const path = new URL(r.url()).pathname;
  if (path.startsWith('/s/')) streamRequests.signed++;
  else if (path.startsWith('/hls/')) streamRequests.unsigned++;
  else return;
  if (r.status() >= 400) streamRequests.refused++;
});
page.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
});
await page.goto(url);
while (!done) {
  while (clicks.length) {
    const selector = clicks.shift();
    await page.click(selector, { timeout: 5000 }).catch((e) => pageErrors.push(`click ${selector}: ${e.message}`));
  }
  const s = await page.evaluate(() => ({
    ct: document.querySelector('video').currentTime,
    badge: document.querySelector('#state').textContent,
    overlay: !document.querySelector('#overlay').hidden,
    text: document.querySelector('#overlay-text').textContent,
    gate: !document.querySelector('#age-gate').hidden,
    gateText: document.querySelector('#age-gate-text').textContent,
  })).catch((e) => ({ error: String(e) }));
  s.t = (Date.now() - t0) / 1000;
  s.streamRequests = streamRequests;
  console.log(JSON.stringify(s));
  await new Promise((ok) => setTimeout(ok, 500));
}
console.log(JSON.stringify({ done: true, pageErrors, foreign }));
await browser.close();
