// Audience beacons: the page tells the daemon (POST /api/v1/playback, see the README) that someone is watching,
// because behind a CDN the origin cannot count viewers from segment requests.
//
// One random session id per viewing (made here, never stored by the browser), and nothing personal: the channel,
// the kind of beacon, how much was played since the last one, the programme time at the playhead, and for some
// kinds the startup time, a stall's length, the new bitrate or the player's error code. Beacons: `start` at the
// first frame, `heartbeat` every few seconds (the daemon says how often), `stall` when playback resumes after
// standing still, `bitrate` on each rung switch, `error` on a fatal player error, `end` when the page goes away
// (pagehide, with navigator.sendBeacon so it is delivered while the page unloads).

const TICK_MS = 250;
// A pause shorter than this is the element seeking or switching, not a stall a viewer would notice.
const MIN_STALL_MS = 200;
const MAX_STALL_MS = 600000;
const MAX_WATCHED_MS = 60000;

function randomId() {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Beacons {
  // `settings` is the daemon's {url, heartbeat_seconds}; `playingDate()` gives the programme time at the playhead.
  constructor(settings, channel, video, playingDate) {
    this.url = settings.url;
    this.heartbeatMs = settings.heartbeat_seconds * 1000;
    this.channel = channel;
    this.video = video;
    this.playingDate = playingDate;
    this.session = randomId();
    this.started = false;
    this.ended = false;
    this.openedAt = null;
    this.watchedMs = 0;
    this.lastTick = performance.now();
    this.stallStart = null;
    this.pendingBitrate = null;
    this.sent = { start: 0, heartbeat: 0, stall: 0, bitrate: 0, error: 0, end: 0 };
    video.addEventListener('playing', () => this.onPlaying());
    video.addEventListener('waiting', () => {
      if (this.started && this.stallStart === null) this.stallStart = performance.now();
    });
    setInterval(() => this.tick(), TICK_MS);
    // pagehide, not unload: it also fires when the page goes into the back/forward cache, and beacons sent from it
    // are delivered.
    addEventListener('pagehide', () => this.end('closed'));
    addEventListener('pageshow', (e) => {
      if (e.persisted) this.restart();
    });
  }

  // The player is about to open the stream (the startup time counts from here).
  opening() {
    if (this.openedAt === null) this.openedAt = performance.now();
  }

  // Counts playback time: wall time while the video plays and is not stalled.
  tick() {
    const now = performance.now();
    const v = this.video;
    if (this.started && !this.ended && !v.paused && v.readyState >= 3 && this.stallStart === null) {
      this.watchedMs += now - this.lastTick;
    }
    this.lastTick = now;
  }

  onPlaying() {
    const now = performance.now();
    if (!this.started) {
      this.started = true;
      this.lastTick = now;
      const startup = this.openedAt === null ? undefined : Math.round(Math.min(now - this.openedAt, 120000));
      this.send('start', { startup_ms: startup });
      // The rung it started on, a moment later: beacons sent together may arrive in any order.
      setTimeout(() => {
        if (this.pendingBitrate !== null) this.bitrate(this.pendingBitrate);
      }, 1000);
      this.heartbeat = setInterval(() => this.send('heartbeat'), this.heartbeatMs);
      return;
    }
    if (this.stallStart !== null) {
      const ms = Math.round(now - this.stallStart);
      this.stallStart = null;
      if (ms >= MIN_STALL_MS) this.send('stall', { stall_ms: Math.min(ms, MAX_STALL_MS) });
    }
  }

  bitrate(bitsPerSecond) {
    if (!(bitsPerSecond > 0)) return;
    if (!this.started) {
      this.pendingBitrate = bitsPerSecond;
      return;
    }
    this.pendingBitrate = null;
    this.send('bitrate', { bitrate: Math.round(bitsPerSecond) });
  }

  error(code) {
    if (!this.started) return;
    const clean = String(code || 'unknown').replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 64) || 'unknown';
    this.send('error', { error: clean });
  }

  end(reason) {
    if (!this.started || this.ended) return;
    this.tick();
    this.send('end', { reason });
    this.ended = true;
    clearInterval(this.heartbeat);
  }

  // Back from the back/forward cache: a new viewing, with a new id.
  restart() {
    this.session = randomId();
    this.started = false;
    this.ended = false;
    this.watchedMs = 0;
    this.openedAt = performance.now();
    if (!this.video.paused) this.onPlaying();
  }

  send(kind, extra = {}) {
    if (this.ended) return;
    const watched = Math.min(Math.round(this.watchedMs), MAX_WATCHED_MS);
    this.watchedMs = 0;
    const body = { session: this.session, channel: this.channel, kind, watched_ms: watched };
    const d = this.playingDate();
    if (d) body.playhead_ms = d.getTime();
    for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) body[k] = v;
    const blob = new Blob([JSON.stringify(body)], { type: 'application/json' });
    this.sent[kind] += 1;
    // sendBeacon queues it even while the page unloads; if the queue is full, a keepalive fetch does the same.
    if (!navigator.sendBeacon || !navigator.sendBeacon(this.url, blob)) {
      fetch(this.url, { method: 'POST', body: blob, keepalive: true, headers: { 'content-type': 'application/json' } })
        .catch(() => {});
    }
  }
}
