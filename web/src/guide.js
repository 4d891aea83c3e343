// The guide under the player: what is on screen now and what follows, with posters and times, read from
// GET /api/v1/channels/{channel}/now every few seconds.
//
// "Now" is the item the playhead is in — the stream's programme time (EXT-X-PROGRAM-DATE-TIME) at the playhead,
// compared with the items' start times — not the item at the live edge: a viewer 10-20 s behind the edge sees the
// guide change when the picture does.

const REFRESH_MS = 5000;
const RENDER_MS = 250;
const NEXT_SHOWN = 3;

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function times(p) {
  return p.end_ms ? `${clock(p.start_ms)} \u2013 ${clock(p.end_ms)}` : `since ${clock(p.start_ms)}`;
}

function setPoster(img, url) {
  if (img.dataset.src === url) return;
  img.dataset.src = url;
  img.hidden = true;
  img.onload = () => {
    img.hidden = false;
  };
  img.onerror = () => {
    img.hidden = true;
  };
  img.src = url;
}

export class Guide {
  // `playingDate()` gives the programme time at the playhead (a Date) or null; `onOffAir(state)` is told when the
  // channel is off air ({title, text, badge}) or back on (null).
  constructor(channel, playingDate, onOffAir) {
    this.channel = channel;
    this.playingDate = playingDate;
    this.onOffAir = onOffAir;
    this.data = null;
    this.skew = 0;
    this.offAirKey = '';
    this.shownNext = '';
    this.refreshSoon = false;
    this.timer = null;
  }

  start() {
    this.refresh();
    setInterval(() => this.render(), RENDER_MS);
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const sent = Date.now();
      const resp = await fetch(`/api/v1/channels/${encodeURIComponent(this.channel)}/now`, { cache: 'no-store' });
      if (resp.ok) {
        this.data = await resp.json();
        this.skew = this.data.server_time_ms - (sent + Date.now()) / 2;
      }
    } catch {
      // Offline: the player says so; the guide keeps what it had and tries again.
    }
    this.render();
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  // The programme time on screen: the playhead's, else (not playing yet) the daemon's clock.
  at() {
    const d = this.playingDate();
    return d ? d.getTime() : Date.now() + this.skew;
  }

  // Everything known, in order, and the index of the item on screen.
  current() {
    if (!this.data) return null;
    const items = [...this.data.recent, ...(this.data.on_air ? [this.data.on_air] : []), ...this.data.next];
    const t = this.at();
    let index = -1;
    for (let i = 0; i < items.length; i++) if (items[i].start_ms <= t) index = i;
    return { items, index: Math.max(index, 0), t };
  }

  render() {
    const cur = this.current();
    if (!cur || !cur.items.length) {
      this.setOffAir(this.data && this.data.state !== 'on-air' ? this.data.state : null, null);
      return;
    }
    const { items, index, t } = cur;
    const now = items[index];
    const next = items.slice(index + 1, index + 1 + NEXT_SHOWN);
    const el = document.getElementById('now');
    el.querySelector('.title').textContent = now.title;
    el.dataset.start = String(now.start_ms);
    el.querySelector('.time').textContent = times(now);
    setPoster(el.querySelector('.poster'), now.poster);
    const done = now.end_ms ? Math.min(1, Math.max(0, (t - now.start_ms) / (now.end_ms - now.start_ms))) : 0;
    el.querySelector('.elapsed').style.width = `${(done * 100).toFixed(1)}%`;
    const key = next.map((p) => `${p.start_ms}|${p.title}`).join(',');
    if (key !== this.shownNext) {
      this.shownNext = key;
      const list = document.getElementById('next');
      list.replaceChildren(
        ...next.map((p) => {
          const li = document.createElement('li');
          li.className = 'programme';
          const img = document.createElement('img');
          img.className = 'thumb';
          img.alt = '';
          img.hidden = true;
          setPoster(img, p.thumb);
          const about = document.createElement('div');
          const title = document.createElement('p');
          title.className = 'title';
          title.textContent = p.title;
          const time = document.createElement('p');
          time.className = 'time';
          time.textContent = `from ${clock(p.start_ms)}`;
          about.append(title, time);
          li.append(img, about);
          return li;
        }),
      );
    }
    // The item on screen has run out and nothing after it is known yet: ask again soon.
    if (now.end_ms && t >= now.end_ms - 1000 && index === items.length - 1 && !this.refreshSoon) {
      this.refreshSoon = true;
      setTimeout(() => {
        this.refreshSoon = false;
        this.refresh();
      }, 1000);
    }
    this.setOffAir(this.data.state, now);
  }

  setOffAir(state, now) {
    let offAir = null;
    if (state && state !== 'on-air') {
      const text =
        state === 'starting'
          ? 'The channel is starting; the programme begins in a moment.'
          : 'The channel is not broadcasting right now.';
      offAir = { title: 'Off air', text, badge: 'Off air' };
    } else if (now && now.kind === 'slate') {
      offAir = {
        title: 'Off air',
        text: 'Nothing is scheduled just now: the channel shows its slate until the programme resumes.',
        badge: 'Slate',
      };
    }
    const key = offAir ? `${offAir.badge}|${offAir.text}` : '';
    if (key !== this.offAirKey) {
      this.offAirKey = key;
      this.onOffAir(offAir);
    }
  }
}
