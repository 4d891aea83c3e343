// Opens a running station's player page the way viewers do — headless Debian Chromium driven by playwright-core —
// and records what they would see; tests/page.rs starts the daemon, runs this, and judges the report.
//
//   node web/test/page-check.mjs --base http://127.0.0.1:PORT --token TOKEN --out DIR [--channel main]
//                                [--seconds 26] [--viewers 3] [--viewer-limit 30] [--gone-limit 30]
//
// 1. Opens --viewers pages of /watch/{channel} at once. The first is watched for --seconds: every 500 ms it records
//    the video's clock, the programme time at the playhead (hls.js playingDate), the guide's now and next titles,
//    whether the posters have loaded, and, fetched independently from here, what the now API says at that moment.
// 2. Meanwhile polls GET /api/v1/status until the channel has --viewers viewers (at most --viewer-limit s).
// 3. Screenshots the player (DIR/player.png) and the operator page after logging in with the token (DIR/admin.png).
// 4. Closes the pages and polls until the channel has 0 viewers (at most --gone-limit s).
// Every console error, page error and request to another origin is recorded, per page. The report goes to
// DIR/report.json (and a summary to stdout). Exit 0 when the run completed (the verdict is the test's), 2 when it
// could not run.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Several pages play at once in one headless browser: none of them is a background tab to be throttled.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
];

function parseArgs(argv) {
  const opts = { channel: 'main', seconds: 26, viewers: 3, viewerLimit: 30, goneLimit: 30 };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) fail(`${k} needs a positive number, got ${v}`);
      return n;
    };
    i++;
    if (k === '--base') opts.base = v.replace(/\/$/, '');
    else if (k === '--token') opts.token = v;
    else if (k === '--out') opts.out = v;
    else if (k === '--channel') opts.channel = v;
    else if (k === '--seconds') opts.seconds = num();
    else if (k === '--viewers') opts.viewers = num();
    else if (k === '--viewer-limit') opts.viewerLimit = num();
    else if (k === '--gone-limit') opts.goneLimit = num();
    else fail(`unknown option ${k}`);
  }
  for (const k of ['base', 'token', 'out']) if (!opts[k]) fail(`--${k} is required`);
  return opts;
}

function fail(msg) {
  console.error(`page-check: ${msg}`);
  process.exit(2);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const t0 = Date.now();
const since = () => (Date.now() - t0) / 1000;

async function viewers(opts) {
  const resp = await fetch(`${opts.base}/api/v1/status`, { headers: { authorization: `Bearer ${opts.token}` } });
  if (!resp.ok) throw new Error(`status API: HTTP ${resp.status}`);
  const s = await resp.json();
  const c = s.channels.find((x) => x.id === opts.channel);
  return c ? c.viewers : -1;
}

// Polls the viewer count until `want` (or the limit); returns when it got there (s since start) or null.
async function waitViewers(opts, want, limitS, log) {
  const start = Date.now();
  while ((Date.now() - start) / 1000 < limitS) {
    const n = await viewers(opts).catch(() => -1);
    log.push({ t: since(), viewers: n });
    if (n === want) return (Date.now() - start) / 1000;
    await sleep(500);
  }
  return null;
}

// Records what a page logs and fetches that a viewer should never see.
function watchPage(page, base, name) {
  const rec = { name, console: [], pageErrors: [], foreign: [], failed: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      rec.console.push({ type: m.type(), text: m.text(), url: m.location().url || '' });
    }
  });
  page.on('pageerror', (e) => rec.pageErrors.push(String(e)));
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${base}/`) && !url.startsWith('blob:') && !url.startsWith('data:')) rec.foreign.push(url);
  });
  page.on('requestfailed', (r) => rec.failed.push({ url: r.url(), error: r.failure()?.errorText || '' }));
  return rec;
}

// What the page shows now.
function pageState() {
  const v = document.querySelector('video');
  const now = document.querySelector('#now');
  const poster = now.querySelector('.poster');
  const d = window.vvtv && window.vvtv.playingDate ? window.vvtv.playingDate() : null;
  const hls = window.vvtv && window.vvtv.hls;
  return {
    ct: v.currentTime,
    paused: v.paused,
    readyState: v.readyState,
    width: v.videoWidth,
    muted: v.muted,
    playhead: d ? d.getTime() : null,
    now: now.querySelector('.title').textContent,
    nowStart: Number(now.dataset.start || 0),
    next: [...document.querySelectorAll('#next .title')].map((e) => e.textContent),
    poster: !poster.hidden && poster.complete && poster.naturalWidth > 0,
    thumbs: [...document.querySelectorAll('#next img')].filter((i) => !i.hidden && i.naturalWidth > 0).length,
    badge: document.querySelector('#state').textContent,
    switcher: [...document.querySelectorAll('#channels a')].map((a) => `${a.textContent}${a.getAttribute('aria-current') ? '*' : ''}`),
    unmuteShown: !document.querySelector('#unmute').hidden,
    levels: hls ? hls.levels.length : 0,
    qualityOptions: document.querySelectorAll('#quality option').length,
  };
}

// The item the now API places at programme time `t`.
function apiItemAt(now, t) {
  const items = [...now.recent, ...(now.on_air ? [now.on_air] : []), ...now.next];
  let found = null;
  for (const p of items) if (p.start_ms <= t) found = p;
  return found;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  mkdirSync(opts.out, { recursive: true });
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  } catch (e) {
    fail(`cannot start ${CHROMIUM}: ${e.message}`);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const report = { opts: { ...opts, token: '(hidden)' }, pages: [], samples: [], viewersLog: [] };
  const pages = [];
  for (let i = 0; i < opts.viewers; i++) {
    const page = await context.newPage();
    report.pages.push(watchPage(page, opts.base, `viewer ${i + 1}`));
    pages.push(page);
  }
  const openedAt = since();
  await Promise.all(pages.map((p) => p.goto(`${opts.base}/watch/${opts.channel}`)));
  report.opened_at_s = openedAt;
  const viewersUp = waitViewers(opts, opts.viewers, opts.viewerLimit, report.viewersLog);

  // Watch the first page.
  const main = pages[0];
  await main.waitForFunction(() => document.querySelector('video').currentTime > 0, null, { timeout: 30000 })
    .catch(() => {});
  report.playing_at_s = since();
  const end = Date.now() + opts.seconds * 1000;
  while (Date.now() < end) {
    const s = await main.evaluate(pageState);
    s.t = since();
    try {
      const resp = await fetch(`${opts.base}/api/v1/channels/${opts.channel}/now`);
      const now = await resp.json();
      const item = s.playhead ? apiItemAt(now, s.playhead) : null;
      s.api = item ? { title: item.title, start: item.start_ms, end: item.end_ms } : null;
      s.apiOnAir = now.on_air ? now.on_air.title : null;
    } catch (e) {
      s.apiError = String(e);
    }
    report.samples.push(s);
    await sleep(500);
  }
  report.viewers_up_after_s = await viewersUp;
  // The guide grid: every channel's row, its titles, what it marks on air, which row is this page's channel.
  report.grid = await main.evaluate(() => [...document.querySelectorAll('#grid .grid-row[data-channel]')].map((r) => ({
    channel: r.dataset.channel,
    titles: [...r.querySelectorAll('.grid-title')].map((t) => t.textContent),
    onAir: r.querySelector('.on-air .grid-title')?.textContent ?? null,
    current: r.querySelector('.grid-channel').getAttribute('aria-current'),
  })));
  await main.screenshot({ path: join(opts.out, 'player.png'), fullPage: true });

  // The operator page: log in with the token, wait for the status table.
  const admin = await context.newPage();
  const adminRec = watchPage(admin, opts.base, 'admin');
  await admin.goto(`${opts.base}/admin`);
  await admin.fill('#token', opts.token);
  await admin.click('#login button[type=submit]');
  await admin.waitForFunction(() => document.querySelectorAll('#channels-table tbody tr td').length > 1, null,
    { timeout: 15000 }).catch(() => {});
  await sleep(2500);
  report.admin = await admin.evaluate(() => ({
    loggedIn: !document.querySelector('#dashboard').hidden,
    channels: [...document.querySelectorAll('#channels-table tbody tr')].map((r) => r.textContent),
    events: document.querySelectorAll('#events-table tbody tr').length,
    queue: document.querySelectorAll('#queue table tbody tr').length,
    charts: document.querySelectorAll('#charts canvas').length,
    metricsNote: document.querySelector('#metrics-note').textContent,
    tokenKept: sessionStorage.getItem('vvtv.token') !== null,
  }));
  await admin.screenshot({ path: join(opts.out, 'admin.png'), fullPage: true });
  await admin.close();
  report.pages.push(adminRec);

  // The viewers leave.
  const closedAt = since();
  for (const p of pages) await p.close({ runBeforeUnload: true });
  report.closed_at_s = closedAt;
  report.viewers_gone_after_s = await waitViewers(opts, 0, opts.goneLimit, report.viewersLog);
  await browser.close();

  writeFileSync(join(opts.out, 'report.json'), JSON.stringify(report, null, 2));
  const first = report.samples.find((s) => s.ct > 0);
  const last = report.samples.at(-1);
  console.log(JSON.stringify({
    played_s: first && last ? +(last.ct - first.ct).toFixed(2) : 0,
    titles: [...new Set(report.samples.map((s) => s.now))],
    viewers_up_after_s: report.viewers_up_after_s,
    viewers_gone_after_s: report.viewers_gone_after_s,
    console: report.pages.map((p) => [p.name, p.console.length, p.pageErrors.length, p.foreign.length]),
    admin: report.admin,
  }));
}

main().catch((e) => fail(e.stack || String(e)));
