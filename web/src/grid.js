// The guide grid under the player: every channel's programme from half an hour ago to three hours ahead, read from
// GET /api/v1/epg (the same guide as /epg.xml), with a line at the current time. Refreshed every minute; each
// channel's name opens its page.

const REFRESH_MS = 60000;
const PAST_MS = 30 * 60 * 1000;
const AHEAD_MS = 3 * 60 * 60 * 1000;
const TICK_MS = 30 * 60 * 1000;

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export class GuideGrid {
  constructor(root, currentChannel) {
    this.root = root;
    this.current = currentChannel;
    this.error = null;
  }

  start() {
    this.load();
    setInterval(() => this.load(), REFRESH_MS);
  }

  async load() {
    const now = Date.now();
    const from = now - PAST_MS;
    const to = now + AHEAD_MS;
    try {
      const resp = await fetch(`/api/v1/epg?from=${from}&to=${to}`, { cache: 'no-store' });
      if (!resp.ok) throw new Error(`/api/v1/epg: HTTP ${resp.status}`);
      this.render(await resp.json(), from, to, now);
      this.error = null;
    } catch (e) {
      // The last grid stays; the player's own state line says when the station is offline.
      this.error = String(e);
    }
  }

  render(epg, from, to, now) {
    const span = to - from;
    const pct = (ms) => `${(((Math.min(Math.max(ms, from), to) - from) / span) * 100).toFixed(3)}%`;
    const rows = document.createElement('div');
    rows.className = 'grid-rows';
    const head = document.createElement('div');
    head.className = 'grid-row grid-times';
    head.append(document.createElement('span'));
    const scale = document.createElement('div');
    scale.className = 'grid-track';
    for (let t = Math.ceil(from / TICK_MS) * TICK_MS; t < to; t += TICK_MS) {
      const tick = document.createElement('span');
      tick.className = 'grid-tick';
      tick.style.left = pct(t);
      tick.textContent = clock(t);
      scale.append(tick);
    }
    head.append(scale);
    rows.append(head);
    for (const channel of epg.channels) {
      const row = document.createElement('div');
      row.className = 'grid-row';
      row.dataset.channel = channel.id;
      const name = document.createElement('a');
      name.className = 'grid-channel';
      name.href = `/watch/${channel.id}`;
      name.textContent = `${channel.number} ${channel.name}`;
      if (channel.id === this.current) name.setAttribute('aria-current', 'page');
      const track = document.createElement('div');
      track.className = 'grid-track';
      for (const p of channel.programmes) {
        if (p.stop_ms <= from || p.start_ms >= to) continue;
        const block = document.createElement('div');
        block.className = `grid-programme ${p.kind}`;
        if (p.start_ms <= now && now < p.stop_ms) block.classList.add('on-air');
        block.style.left = pct(p.start_ms);
        block.style.width = `calc(${pct(p.stop_ms)} - ${pct(p.start_ms)})`;
        block.title = `${clock(p.start_ms)}\u2013${clock(p.stop_ms)} ${p.title}${p.description ? `\n${p.description}` : ''}`;
        const title = document.createElement('span');
        title.className = 'grid-title';
        title.textContent = p.title;
        block.append(title);
        track.append(block);
      }
      const line = document.createElement('div');
      line.className = 'grid-now';
      line.style.left = pct(now);
      track.append(line);
      row.append(name, track);
      rows.append(row);
    }
    this.root.replaceChildren(rows);
    this.root.hidden = false;
  }
}
