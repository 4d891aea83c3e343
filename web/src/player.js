// The player page: one channel's live stream with hls.js (or the browser's own HLS on Safari), a channel switcher,
// a quality menu, muted autoplay with an unmute button, fullscreen, an offline state, and the guide (guide.js) and
// audience beacons (beacons.js). Everything it loads comes from this origin; the stream URL comes from the daemon.

import { Guide } from './guide.js';
import { Beacons } from './beacons.js';
import { GuideGrid } from './grid.js';

const $ = (id) => document.getElementById(id);
const video = $('video');

// hls.js settings for a 24/7 live channel.
const HLS_CONFIG = {
  // Play three segments behind the live edge; if we fall further behind (ten), jump back to it.
  liveSyncDurationCount: 3,
  liveMaxLatencyDurationCount: 10,
  // Catch up on a small lag by playing slightly faster instead of jumping.
  maxLiveSyncPlaybackRate: 1.25,
  // Keep 90 s behind the playhead, no more: a page open for days must not grow without bound.
  backBufferLength: 90,
  // A rung that failed (a daemon restart, a CDN hiccup) is tried again after 10 s. hls.js's default, 0, excludes
  // it for the rest of the session.
  errorPenaltyExpireMs: 10000,
  manifestLoadPolicy: policy(10000, 20000, 6),
  playlistLoadPolicy: policy(10000, 20000, 6),
  fragLoadPolicy: policy(10000, 30000, 6),
};

function policy(firstByteMs, loadMs, retries) {
  return {
    default: {
      maxTimeToFirstByteMs: firstByteMs,
      maxLoadTimeMs: loadMs,
      timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: retries, retryDelayMs: 1000, maxRetryDelayMs: 8000 },
    },
  };
}

async function getJSON(url) {
  const resp = await fetch(url, { cache: 'no-store' });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return resp.json();
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
// The picture standing still this long after a failed load: the page says it is offline.
const STUCK_MS = 3000;

// The page's state line and the overlay that says why nothing plays.
const status = {
  offline: false,
  offAir: null,
  playing: false,
  show() {
    const overlay = $('overlay');
    if (this.offline) {
      $('overlay-title').textContent = 'Offline';
      $('overlay-text').textContent = 'The stream cannot be reached right now. Reconnecting\u2026';
      $('state').textContent = 'Offline';
      $('state').dataset.state = 'offline';
    } else if (this.offAir) {
      $('overlay-title').textContent = this.offAir.title;
      $('overlay-text').textContent = this.offAir.text;
      $('state').textContent = this.offAir.badge;
      $('state').dataset.state = 'off-air';
    } else if (this.playing) {
      $('state').textContent = 'Live';
      $('state').dataset.state = 'live';
    } else {
      $('state').textContent = 'Connecting\u2026';
      $('state').dataset.state = 'connecting';
    }
    overlay.hidden = !(this.offline || this.offAir);
  },
};

// Where the page remembers that this browser's viewer confirmed the age gate.
const AGE_OK_KEY = 'vvtv.age-confirmed';

// The station's age gate, when it has one: nothing loads until the viewer confirms it (once per browser).
async function passAgeGate(text) {
  if (!text) return;
  try {
    if (localStorage.getItem(AGE_OK_KEY) === text) return;
  } catch {
    // No storage (a private window): ask every time.
  }
  $('age-gate-text').textContent = text;
  $('age-gate').hidden = false;
  $('state').textContent = 'Waiting';
  await new Promise((ok) => $('age-ok').addEventListener('click', ok, { once: true }));
  $('age-gate').hidden = true;
  try {
    localStorage.setItem(AGE_OK_KEY, text);
  } catch {
    // Remembered for this page only.
  }
}

// The channel the URL names (/watch/{id}), else the station's first.
function chooseChannel(directory) {
  const m = location.pathname.match(/^\/watch\/([a-z0-9-]+)\/?$/);
  return directory.channels.find((c) => m && c.id === m[1]) || directory.channels[0];
}

function showChannels(directory, current) {
  document.title = `${current.name} \u2014 VVTV`;
  $('channel-name').textContent = current.name;
  const nav = $('channels');
  nav.replaceChildren();
  if (directory.channels.length < 2) return;
  for (const c of directory.channels) {
    const a = document.createElement('a');
    a.href = c.watch;
    a.textContent = c.name;
    if (c.id === current.id) a.setAttribute('aria-current', 'page');
    nav.append(a);
  }
  nav.hidden = false;
}

// Muted autoplay always works; sound needs a tap, so the unmute button stays until there is sound.
function setUpControls() {
  video.addEventListener('playing', () => {
    status.playing = true;
    status.show();
  });
  const unmute = $('unmute');
  const sync = () => {
    unmute.hidden = !video.muted;
  };
  unmute.addEventListener('click', () => {
    video.muted = false;
    video.volume = 1;
    video.play().catch(() => {});
    sync();
  });
  video.addEventListener('volumechange', sync);
  sync();
  const play = $('play');
  play.addEventListener('click', () => {
    play.hidden = true;
    video.play().catch(() => {
      play.hidden = false;
    });
  });
  const full = $('fullscreen');
  const stage = $('stage');
  if (!document.fullscreenEnabled && !video.webkitEnterFullscreen) full.hidden = true;
  full.addEventListener('click', () => {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (stage.requestFullscreen) {
      stage.requestFullscreen().catch(() => {});
    } else if (video.webkitEnterFullscreen) {
      video.webkitEnterFullscreen();
    }
  });
  document.addEventListener('fullscreenchange', () => {
    full.textContent = document.fullscreenElement ? 'Exit fullscreen' : 'Fullscreen';
  });
}

function tryPlay() {
  video.play().then(
    () => {
      $('play').hidden = true;
    },
    () => {
      // Autoplay refused (even muted, some browsers on battery saving): ask for a tap.
      $('play').hidden = false;
    },
  );
}

// The quality menu: every rung hls.js found, plus Auto (its own choice, shown in brackets).
function setUpQuality(hls) {
  const select = $('quality');
  const label = $('quality-label');
  const auto = select.options[0];
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    select.replaceChildren(auto);
    const order = data.levels.map((l, i) => [l, i]).sort((a, b) => b[0].bitrate - a[0].bitrate);
    for (const [level, index] of order) {
      const o = document.createElement('option');
      o.value = String(index);
      o.textContent = `${level.height}p \u00b7 ${Math.round(level.bitrate / 1000)} kb/s`;
      select.append(o);
    }
    label.hidden = data.levels.length < 2;
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    const level = hls.levels[data.level];
    auto.textContent = hls.autoLevelEnabled && level ? `Auto (${level.height}p)` : 'Auto';
  });
  select.addEventListener('change', () => {
    // nextLevel switches at the next fragment without flushing the buffer (no stall); -1 is Auto again.
    hls.nextLevel = Number(select.value);
  });
}

// Plays `url` with hls.js, retrying for ever: a 24/7 channel comes back after a restart, and so must the page.
function playWithHlsJs(url, beacons) {
  const hls = new Hls(HLS_CONFIG);
  setUpQuality(hls);
  let networkFailures = 0;
  hls.on(Hls.Events.MANIFEST_PARSED, () => tryPlay());
  hls.on(Hls.Events.FRAG_BUFFERED, () => {
    networkFailures = 0;
    if (status.offline) {
      status.offline = false;
      status.show();
    }
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    const level = hls.levels[data.level];
    if (level) beacons.bitrate(level.bitrate);
  });
  // hls.js retries failed loads for a while before it calls an error fatal; meanwhile the picture stands still.
  // Standing still for a few seconds right after a failed load is "offline" to the viewer.
  let lastNetworkError = 0;
  let lastCt = -1;
  let stillSince = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (video.currentTime !== lastCt || video.paused) {
      lastCt = video.currentTime;
      stillSince = now;
    }
    const stuck = now - stillSince > STUCK_MS && now - lastNetworkError < 15000;
    if (stuck && !status.offline) {
      status.offline = true;
      status.show();
    }
  }, 1000);
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) lastNetworkError = performance.now();
    if (!data.fatal) return;
    beacons.error(data.details);
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    status.offline = true;
    status.show();
    networkFailures += 1;
    const wait = Math.min(1000 * 2 ** Math.min(networkFailures, 4), 15000);
    setTimeout(() => {
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR && hls.levels.length) {
        hls.startLoad();
      } else {
        hls.loadSource(url);
      }
    }, wait);
  });
  beacons.opening();
  hls.loadSource(url);
  hls.attachMedia(video);
  return {
    hls,
    playingDate: () => hls.playingDate || null,
  };
}

// Safari (and iOS) without Media Source: the browser plays HLS itself.
function playNatively(url, beacons) {
  video.addEventListener('error', () => {
    beacons.error('mediaError');
    status.offline = true;
    status.show();
    setTimeout(() => {
      video.src = url;
      tryPlay();
    }, 3000);
  });
  video.addEventListener('playing', () => {
    status.offline = false;
    status.show();
  });
  beacons.opening();
  video.src = url;
  tryPlay();
  return {
    hls: null,
    playingDate: () => {
      const start = video.getStartDate ? video.getStartDate() : null;
      return start && !Number.isNaN(start.getTime()) ? new Date(start.getTime() + video.currentTime * 1000) : null;
    },
  };
}

async function main() {
  setUpControls();
  let directory = null;
  for (let attempt = 0; !directory; attempt++) {
    try {
      directory = await getJSON('/api/v1/channels');
    } catch {
      status.offline = true;
      status.show();
      await sleep(Math.min(1000 * 2 ** attempt, 15000));
    }
  }
  status.offline = false;
  status.show();
  await passAgeGate(directory.age_gate);
  const channel = chooseChannel(directory);
  showChannels(directory, channel);
  let player = null;
  const playingDate = () => (player ? player.playingDate() : null);
  const beacons = new Beacons(directory.beacons, channel.id, video, playingDate);
  // Media Source (hls.js) wherever there is one; Safari without it (iPhone) plays HLS natively.
  const native = video.canPlayType('application/vnd.apple.mpegurl');
  if (window.Hls && Hls.isSupported()) {
    player = playWithHlsJs(channel.playlist, beacons);
  } else if (native) {
    player = playNatively(channel.playlist, beacons);
  } else {
    status.offAir = { title: 'Cannot play here', text: 'This browser plays neither HLS nor Media Source.', badge: 'Unsupported' };
    status.show();
    return;
  }
  const guide = new Guide(channel.id, playingDate, (offAir) => {
    status.offAir = offAir;
    status.show();
  });
  guide.start();
  const grid = new GuideGrid($('grid'), channel.id);
  grid.start();
  // For people (and tests) looking at the page from the developer console.
  window.vvtv = { channel, hls: player.hls, video, guide, grid, beacons, playingDate };
}

main();
