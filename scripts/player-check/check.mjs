// Plays a VVTV HLS stream the way a viewer's browser does — hls.js in headless Chromium — and says whether it played.
//
//   node check.mjs URL SECONDS [--expect-restart] [--out FILE]
//
// A tiny HTTP server on 127.0.0.1:0 serves a page and hls.js from node_modules; the page fetches nothing but the
// stream (every other request is aborted and counted). The stream is played in a <video muted autoplay> for SECONDS
// of wall time while we record hls.js ERROR events, hls.js warnings, level switches, playlists and fragments loaded,
// video.currentTime (sampled every second, polled every 250 ms for stalls), the video size and the decoded/dropped
// frames. A one-screen JSON summary goes to stdout, progress to stderr, the full event log to --out FILE.
//
// Exit 0 only if: no fatal hls.js error, no non-fatal error outside BENIGN_ERRORS, currentTime advanced by at least
// SECONDS − 8 (the allowance for startup), no stall (currentTime not advancing for > 2 s while not paused) and
// videoWidth > 0. Exit 1 when the check fails, 2 when it could not run (bad arguments, browser did not start).
//
// --expect-restart: the daemon is killed and restarted during the check. Network errors (fatal or not) are then
// tolerated for up to RESTART_WINDOW_S from the first one, as are stalls (and hls.js's bufferStalledError) that begin
// inside that window; the page restarts loading after a fatal network error, as a real player would. Afterwards
// playback must resume: no network error after the window, at least RESUME_MIN_S of playback after the last one,
// and the advance requirement is lowered only by the tolerated stall time.

import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const STARTUP_ALLOWANCE_S = 8;
const STALL_S = 2;
const POLL_MS = 250;
const RESTART_WINDOW_S = 20;
const RESUME_MIN_S = 5;

// Non-fatal hls.js errors that do not mean a viewer saw anything wrong. Keep this list short: every entry hides a
// class of problems, so each needs a reason that holds for every stream VVTV serves.
const BENIGN_ERRORS = new Set([
  // (none so far: on a healthy VVTV stream hls.js reports no error at all, fatal or not)
]);

const here = dirname(fileURLToPath(import.meta.url));

function usage(msg) {
  if (msg) console.error(`check.mjs: ${msg}`);
  console.error('usage: node check.mjs URL SECONDS [--expect-restart] [--out FILE]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { expectRestart: false, out: null };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--expect-restart') opts.expectRestart = true;
    else if (a === '--out') opts.out = argv[++i] ?? usage('--out needs a FILE');
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else pos.push(a);
  }
  if (pos.length !== 2) usage('need URL and SECONDS');
  const [url, secs] = pos;
  try {
    new URL(url);
  } catch {
    usage(`not a URL: ${url}`);
  }
  const seconds = Number(secs);
  if (!Number.isFinite(seconds) || seconds <= STARTUP_ALLOWANCE_S) {
    usage(`SECONDS must be a number above ${STARTUP_ALLOWANCE_S}, got ${secs}`);
  }
  return { url, seconds, ...opts };
}

// The page: hls.js attached to a muted autoplaying <video>; every event worth keeping is handed to node through the
// exposed __vvtvReport binding as it happens, so nothing is lost if the page dies.
function pageHtml(url) {
  const params = JSON.stringify({ url }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>vvtv player check</title></head>
<body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline style="width:100%"></video>
<script id="params" type="application/json">${params}</script>
<script src="/hls.js"></script>
<script>
(() => {
  const P = JSON.parse(document.getElementById('params').textContent);
  const report = (ev) => { try { window.__vvtvReport(ev); } catch (e) {} };
  const text = (args) => args.map((a) => (typeof a === 'string' ? a : (a && a.message) || JSON.stringify(a))).join(' ');
  const v = document.getElementById('v');
  const E = Hls.Events;
  let hls = null;
  let parsed = false;
  report({ kind: 'env', hls: Hls.version, mse: Hls.isSupported(), ua: navigator.userAgent,
           avc: MediaSource.isTypeSupported('video/mp4; codecs="avc1.640028,mp4a.40.2"') });
  for (const name of ['playing', 'waiting', 'stalled', 'seeking', 'pause', 'ended']) {
    v.addEventListener(name, () => report({ kind: 'video', event: name, ct: v.currentTime }));
  }
  v.addEventListener('error', () => report({ kind: 'video', event: 'error', ct: v.currentTime,
    code: v.error && v.error.code, message: v.error && v.error.message }));

  function start() {
    hls = new Hls({
      // hls.js's own warnings are kept (they name timestamp gaps, dropped or injected frames); chatter is not.
      debug: { trace() {}, debug() {}, log() {}, info() {},
               warn: (...a) => report({ kind: 'warn', msg: text(a) }),
               error: (...a) => report({ kind: 'log', msg: text(a) }) },
    });
    hls.on(E.MANIFEST_PARSED, (_, d) => {
      parsed = true;
      report({ kind: 'manifest', levels: d.levels.map((l) => ({ width: l.width, height: l.height,
        bitrate: l.bitrate, codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(',') })) });
      v.play().catch((e) => report({ kind: 'log', msg: 'play() rejected: ' + e }));
    });
    hls.on(E.LEVEL_LOADED, (_, d) => report({ kind: 'level', level: d.level, startSN: d.details.startSN,
      endSN: d.details.endSN, live: d.details.live, target: d.details.targetduration,
      startCC: d.details.startCC, endCC: d.details.endCC }));
    hls.on(E.LEVEL_SWITCHED, (_, d) => {
      const l = hls.levels[d.level] || {};
      report({ kind: 'switch', level: d.level, height: l.height, bitrate: l.bitrate });
    });
    hls.on(E.FRAG_LOADED, (_, d) => report({ kind: 'frag', sn: d.frag.sn, level: d.frag.level, cc: d.frag.cc,
      start: d.frag.start, duration: d.frag.duration, bytes: d.frag.stats && d.frag.stats.loaded }));
    hls.on(E.ERROR, (_, d) => {
      report({ kind: 'error', type: d.type, details: d.details, fatal: !!d.fatal,
        reason: d.reason || (d.error && d.error.message) || (d.err && d.err.message) || '',
        code: d.response && d.response.code, sn: d.frag && d.frag.sn, level: d.frag ? d.frag.level : d.level,
        url: d.url || (d.frag && d.frag.url) || (d.context && d.context.url) || '' });
      if (!d.fatal) return;
      // Recover the way players do, so the check can tell whether playback comes back (--expect-restart).
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (d.type === Hls.ErrorTypes.NETWORK_ERROR) {
        setTimeout(() => (parsed ? hls.startLoad() : hls.loadSource(P.url)), 1000);
      } else {
        hls.destroy();
        parsed = false;
        setTimeout(start, 1000);
      }
    });
    hls.loadSource(P.url);
    hls.attachMedia(v);
  }
  window.__vvtvState = () => {
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
    const b = [];
    for (let i = 0; i < v.buffered.length; i++) b.push([v.buffered.start(i), v.buffered.end(i)]);
    return { ct: v.currentTime, paused: v.paused, readyState: v.readyState, width: v.videoWidth,
             height: v.videoHeight, decoded: q.totalVideoFrames || 0, dropped: q.droppedVideoFrames || 0,
             buffered: b, level: hls ? hls.currentLevel : -1, latency: hls ? hls.latency : null };
  };
  start();
})();
</script></body></html>`;
}

// Serves the page and hls.js on 127.0.0.1:0; nothing else.
async function startServer(html) {
  let hlsJs;
  try {
    hlsJs = readFileSync(join(here, 'node_modules/hls.js/dist/hls.min.js'));
  } catch (e) {
    console.error(`check.mjs: hls.js is not installed (${e.code}): run npm ci --prefix ${here}`);
    process.exit(2);
  }
  const server = createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    } else if (req.url === '/hls.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(hlsJs);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  return server;
}

const round = (x, d = 2) => (x == null || !Number.isFinite(x) ? x : Math.round(x * 10 ** d) / 10 ** d);

// Turns the recorded run into the verdict and the one-screen summary.
function summarize(opts, rec) {
  const { events, stalls, final } = rec;
  const failures = [];
  const of = (kind) => events.filter((e) => e.kind === kind);
  const errors = of('error');
  const netErrors = errors.filter((e) => e.type === 'networkError');

  // The restart window: from the first network error, RESTART_WINDOW_S long.
  let restart = null;
  let inWindow = () => false;
  if (opts.expectRestart) {
    const first = netErrors[0]?.t;
    const last = netErrors.at(-1)?.t;
    if (first != null) inWindow = (t) => t >= first && t <= first + RESTART_WINDOW_S;
    restart = { seen: first != null, network_errors: netErrors.length, first_at_s: round(first, 1),
                last_at_s: round(last, 1), window_s: RESTART_WINDOW_S };
  }

  const tolerated = (e) => {
    if (BENIGN_ERRORS.has(e.details) && !e.fatal) return true;
    if (!opts.expectRestart) return false;
    if (e.type === 'networkError') return inWindow(e.t);
    return e.details === 'bufferStalledError' && !e.fatal && inWindow(e.t);
  };
  for (const s of stalls) s.tolerated = opts.expectRestart && s.end != null && inWindow(s.start);

  const fatal = errors.filter((e) => e.fatal && !(opts.expectRestart && tolerated(e)));
  if (fatal.length) failures.push(`${fatal.length} fatal hls.js error(s): ${[...new Set(fatal.map((e) => e.details))]}`);
  const bad = errors.filter((e) => !e.fatal && !tolerated(e));
  if (bad.length) failures.push(`${bad.length} non-fatal hls.js error(s): ${[...new Set(bad.map((e) => e.details))]}`);
  const badStalls = stalls.filter((s) => !s.tolerated);
  if (badStalls.length) failures.push(`${badStalls.length} stall(s) of currentTime > ${STALL_S} s`);
  const toleratedStall = stalls.filter((s) => s.tolerated).reduce((a, s) => a + (s.end - s.start), 0);
  const required = opts.seconds - STARTUP_ALLOWANCE_S - toleratedStall;
  if (rec.startedAt == null) failures.push('playback never started');
  else if (!(rec.advanced >= required)) {
    failures.push(`currentTime advanced ${round(rec.advanced, 1)} s, needed ${round(required, 1)} s`);
  }
  if (!(final?.width > 0)) failures.push('videoWidth is 0: no picture');
  if (rec.blocked.length) failures.push(`page tried to fetch ${rec.blocked.length} URL(s) off the allowed hosts`);
  if (rec.crashed) failures.push(`page crashed: ${rec.crashed}`);
  if (restart?.seen) {
    const lastNet = restart.last_at_s;
    const after = rec.samples.filter((s) => s.t > lastNet);
    const resumed = after.length > 1 ? after.at(-1).ct - after[0].ct : 0;
    restart.played_after_last_error_s = round(resumed, 1);
    if (resumed < RESUME_MIN_S) failures.push(`playback did not resume after the restart (${round(resumed, 1)} s)`);
  }

  const countBy = (list, key) => list.reduce((m, e) => ((m[key(e)] = (m[key(e)] || 0) + 1), m), {});
  const frags = of('frag');
  const levels = of('level');
  const seqResets = [];
  const lastStart = {};
  for (const l of levels) {
    if (lastStart[l.level] != null && l.startSN < lastStart[l.level]) {
      seqResets.push({ at_s: round(l.t, 1), level: l.level, from: lastStart[l.level], to: l.startSN });
    }
    lastStart[l.level] = l.startSN;
  }
  const snGaps = [];
  for (let i = 1; i < frags.length; i++) {
    // The same sn again is hls.js reloading a fragment on a new level after a switch up, not a gap.
    const d = frags[i].sn - frags[i - 1].sn;
    if (d > 1 || d < 0) snGaps.push(`${frags[i - 1].sn}->${frags[i].sn}@${round(frags[i].t, 1)}s`);
  }
  const warnings = of('warn').concat(of('log'));
  const env = of('env')[0] || {};
  const manifest = of('manifest')[0];
  return {
    ok: failures.length === 0,
    failures,
    url: opts.url,
    seconds: opts.seconds,
    expect_restart: opts.expectRestart,
    started_at: rec.startedWall,
    browser: rec.browserVersion,
    hls_js: env.hls,
    levels: manifest?.levels.map((l) => `${l.width}x${l.height} ${Math.round(l.bitrate / 1000)}k ${l.codecs}`),
    startup_s: round(rec.startedAt, 2),
    current_time: { first: round(rec.firstCt, 2), last: round(final?.ct, 2), advanced: round(rec.advanced, 2),
                    required: round(required, 2), jumps: rec.jumps },
    // One a second up to 60 of them; longer runs keep every Nth here (all are in --out).
    samples_every_s: Math.max(1, Math.ceil(rec.samples.length / 60)),
    samples: rec.samples.filter((_, i) => i % Math.max(1, Math.ceil(rec.samples.length / 60)) === 0)
      .map((s) => round(s.ct, 1)),
    stalls: stalls.map((s) => ({ at_s: round(s.start, 1), for_s: s.end == null ? null : round(s.end - s.start, 1),
                                 ct: round(s.ct, 2), tolerated: s.tolerated })),
    video: { width: final?.width, height: final?.height, level: final?.level, decoded_frames: final?.decoded,
             dropped_frames: final?.dropped, latency_s: round(final?.latency, 1),
             buffered: final?.buffered.map(([a, b]) => [round(a, 1), round(b, 1)]) },
    level_switches: of('switch').map((s) => `${round(s.t, 1)}s:${s.level}(${s.height}p)`),
    fragments: { loaded: frags.length, by_level: countBy(frags, (f) => f.level), sn_first: frags[0]?.sn,
                 sn_last: frags.at(-1)?.sn, sn_gaps: snGaps, cc: [...new Set(frags.map((f) => f.cc))] },
    media_sequence: { first: levels[0]?.startSN, last: levels.at(-1)?.startSN, reloads: levels.length,
                      target_duration: levels[0]?.target, resets: seqResets },
    errors: { total: errors.length, by_kind: countBy(errors, (e) => `${e.type}/${e.details}${e.fatal ? '(fatal)' : ''}`),
              first: errors.slice(0, 5).map((e) => ({ at_s: round(e.t, 1), details: e.details, fatal: e.fatal,
                                                       reason: e.reason, code: e.code, sn: e.sn })) },
    warnings: { total: warnings.length,
                top: Object.entries(countBy(warnings, (w) => w.msg.replace(/https?:\/\/\S+/g, (u) => new URL(u).pathname)
                  .replace(/\b\d+(\.\d+)?\b/g, 'N').slice(0, 160)))
                  .sort((a, b) => b[1] - a[1]).slice(0, 6).map(([msg, n]) => ({ n, msg })) },
    video_events: countBy(of('video'), (e) => e.event),
    blocked_requests: rec.blocked.slice(0, 5),
    restart,
  };
}

// Top-level keys one per line, values compact: valid JSON that fits one screen.
function print(summary) {
  const lines = Object.entries(summary).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v ?? null)}`);
  console.log(`{\n${lines.join(',\n')}\n}`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const streamOrigin = new URL(opts.url).origin;
  const server = await startServer(pageHtml(opts.url));
  const pageOrigin = `http://127.0.0.1:${server.address().port}`;

  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  } catch (e) {
    server.close();
    console.error(`check.mjs: cannot start ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    process.exit(2);
  }
  const rec = { events: [], stalls: [], samples: [], jumps: [], blocked: [], advanced: 0, firstCt: null,
                startedAt: null, final: null, crashed: null, browserVersion: browser.version() };
  const t0 = Date.now();
  const now = () => (Date.now() - t0) / 1000;
  rec.startedWall = new Date(t0).toISOString();
  console.error(`[0.0s] ${rec.startedWall} playing ${opts.url} for ${opts.seconds} s in Chromium ${rec.browserVersion}`);
  const context = await browser.newContext();
  // The page may fetch only itself and the stream; anything else (the internet included) is aborted and counted.
  await context.route('**/*', (route) => {
    const u = route.request().url();
    const o = new URL(u).origin;
    if (o === pageOrigin || o === streamOrigin || u.startsWith('blob:') || u.startsWith('data:')) return route.continue();
    rec.blocked.push(u);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('crash', () => (rec.crashed = 'renderer crashed'));
  page.on('pageerror', (e) => rec.events.push({ t: now(), kind: 'log', msg: `page error: ${e.message}` }));
  await page.exposeFunction('__vvtvReport', (ev) => {
    ev.t = now();
    rec.events.push(ev);
    if (ev.kind === 'error') {
      console.error(`[${ev.t.toFixed(1)}s] hls.js ${ev.fatal ? 'FATAL ' : ''}error ${ev.type}/${ev.details} ${ev.reason} ${ev.code ?? ''}`);
    } else if (ev.kind === 'warn') {
      console.error(`[${ev.t.toFixed(1)}s] hls.js warning: ${ev.msg.slice(0, 200)}`);
    } else if (ev.kind === 'switch') {
      console.error(`[${ev.t.toFixed(1)}s] level ${ev.level} (${ev.height}p)`);
    }
  });
  await page.goto(`${pageOrigin}/`);

  // Poll the <video>: one sample a second for the summary, every POLL_MS for stalls and jumps.
  let last = null; // { t, ct } of the previous poll
  let lastAdvance = null; // wall time currentTime last moved forward
  let stall = null;
  while (now() < opts.seconds) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    let s;
    try {
      s = await page.evaluate(() => window.__vvtvState());
    } catch (e) {
      rec.crashed ??= e.message.split('\n')[0];
      break;
    }
    const t = now();
    rec.final = s;
    if (rec.samples.length < Math.floor(t)) rec.samples.push({ t, ct: s.ct });
    if (rec.startedAt == null) {
      // Started = currentTime moving at playback speed; the initial seek to the live edge is not playing.
      if (last && s.ct > last.ct && s.ct - last.ct <= t - last.t + 0.5) {
        rec.startedAt = t;
        rec.firstCt = last.ct;
        lastAdvance = t;
      }
      last = { t, ct: s.ct };
      continue;
    }
    const dct = s.ct - last.ct;
    if (dct > t - last.t + 1) {
      rec.jumps.push({ at_s: round(t, 1), from: round(last.ct, 2), to: round(s.ct, 2) }); // a seek forward, not play
    } else if (dct > 0) {
      rec.advanced += dct;
    } else if (dct < 0) {
      rec.jumps.push({ at_s: round(t, 1), from: round(last.ct, 2), to: round(s.ct, 2) });
    }
    if (dct !== 0 || s.paused) {
      if (stall) {
        stall.end = t;
        console.error(`[${t.toFixed(1)}s] playback resumed after ${(t - stall.start).toFixed(1)} s`);
        stall = null;
      }
      lastAdvance = t;
    } else if (!stall && t - lastAdvance > STALL_S) {
      stall = { start: lastAdvance, end: null, ct: s.ct };
      rec.stalls.push(stall);
      console.error(`[${t.toFixed(1)}s] STALL at currentTime ${s.ct.toFixed(2)} (readyState ${s.readyState})`);
    }
    last = { t, ct: s.ct };
  }

  await browser.close().catch(() => {});
  server.close();
  const summary = summarize(opts, rec);
  if (opts.out) writeFileSync(opts.out, JSON.stringify({ summary, events: rec.events, samples: rec.samples }, null, 1));
  print(summary);
  process.exit(summary.ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`check.mjs: ${e.stack || e}`);
  process.exit(2);
});
