// Watches one player page while tests/page.rs stops and restarts the daemon under it: prints what the page shows
// as one JSON line every 500 ms until its standard input closes, then a last line with the page's errors.
//
//   node web/test/offline-check.mjs --url http://127.0.0.1:PORT/watch/main
//
// Lines: {"t": s, "ct": video clock, "badge": "Live" | "Offline" | …, "overlay": shown, "text": overlay text}, then
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
process.stdin.on('end', () => {
  done = true;
});
process.stdin.on('close', () => {
  done = true;
});
process.stdin.resume();

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }).catch((e) => {
  console.error(`offline-check: cannot start ${CHROMIUM}: ${e.message}`);
  process.exit(2);
});
const page = await browser.newPage();
const pageErrors = [];
const foreign = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
});
await page.goto(url);
while (!done) {
  const s = await page.evaluate(() => ({
    ct: document.querySelector('video').currentTime,
    badge: document.querySelector('#state').textContent,
    overlay: !document.querySelector('#overlay').hidden,
    text: document.querySelector('#overlay-text').textContent,
  })).catch((e) => ({ error: String(e) }));
  s.t = (Date.now() - t0) / 1000;
  console.log(JSON.stringify(s));
  await new Promise((ok) => setTimeout(ok, 500));
}
console.log(JSON.stringify({ done: true, pageErrors, foreign }));
await browser.close();
