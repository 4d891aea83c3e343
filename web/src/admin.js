// The operator page: asks for the control API token (kept in this tab's sessionStorage, sent as the bearer token),
// then shows the station's status, queue and recent events, and live charts from the status API and /metrics.

import { Chart, parseMetrics } from './metrics.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'vvtv.token';
const STATUS_MS = 2000;
const SLOW_MS = 5000;

// Charts drawn from /metrics when the daemon serves it: each takes the families whose name matches, sums the
// samples by one label, and plots the value or (for counters) its rate per second.
const METRIC_CHARTS = [
  { title: 'Segments written per second', match: /^vvtv_.*segments.*_total$/, by: 'channel', rate: true },
  { title: 'Seconds since the last segment', match: /^vvtv_.*(since_last_segment|segment_age|freshness).*seconds$/, by: 'channel', unit: 's' },
  { title: 'HTTP requests per second', match: /^vvtv_http_requests_total$/, by: 'route', rate: true },
  { title: 'Viewers (metrics)', match: /^vvtv_.*viewers$/, by: 'channel' },
];

class Unauthorized extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path) {
  const resp = await fetch(path, { headers: { authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (resp.status === 401) {
    const body = await resp.json().catch(() => ({}));
    throw new Unauthorized(body.error || 'the token was refused');
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '-' : String(text);
  if (cls) td.className = cls;
  row.append(td);
}

function fillTable(table, rows) {
  const body = table.querySelector('tbody');
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      for (const [text, cls] of cells) cell(tr, text, cls);
      return tr;
    }),
  );
  if (!rows.length) {
    const tr = document.createElement('tr');
    cell(tr, '(none)');
    body.append(tr);
  }
}

const time = (ms) => new Date(ms).toLocaleTimeString();

function showLogin(message) {
  $('dashboard').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

class Dashboard {
  constructor() {
    this.timers = [];
    this.charts = null;
    this.metricCharts = new Map();
    this.lastCounters = new Map();
  }

  start() {
    $('login').hidden = true;
    $('dashboard').hidden = false;
    $('logout').hidden = false;
    if (!this.charts) {
      const box = $('charts');
      this.charts = { viewers: new Chart(box, 'Viewers', ''), queue: new Chart(box, 'Programme queued ahead', 'min') };
    }
    this.every(STATUS_MS, () => this.status());
    this.every(SLOW_MS, () => this.queue());
    this.every(SLOW_MS, () => this.events());
    this.every(SLOW_MS, () => this.metrics());
  }

  stop() {
    this.timers.forEach(clearInterval);
    this.timers = [];
  }

  every(ms, task) {
    const run = () =>
      task().catch((e) => {
        if (e instanceof Unauthorized) {
          this.stop();
          sessionStorage.removeItem(TOKEN_KEY);
          showLogin(`The token was refused: ${e.message}`);
        } else {
          $('status-note').textContent = `Cannot reach the station: ${e.message}`;
        }
      });
    run();
    this.timers.push(setInterval(run, ms));
  }

  async status() {
    const s = await api('/api/v1/status');
    $('summary').textContent = `VVTV ${s.version} \u00b7 up ${Math.round(s.uptime_seconds)} s`;
    const parts = [];
    if (s.factory) parts.push(`factory: ${s.factory.state}`);
    if (s.curator) parts.push(`curator: ${s.curator.state}`);
    if (s.planner) parts.push(`planner: ${s.planner.rounds} rounds, ${s.planner.scheduled_total} scheduled`);
    $('status-note').textContent = parts.join(' \u00b7 ');
    fillTable(
      $('channels-table'),
      s.channels.map((c) => [
        [`${c.name} (${c.id})`],
        [c.state],
        [c.on_air ? `${c.on_air.title} (${Math.round(c.on_air.position_seconds)}/${Math.round(c.on_air.duration_seconds)} s)` : null],
        [c.queue_minutes.toFixed(1), 'num'],
        [c.viewers, 'num'],
      ]),
    );
    const t = Date.now();
    this.charts.viewers.add(t, Object.fromEntries(s.channels.map((c) => [c.id, c.viewers])));
    this.charts.queue.add(t, Object.fromEntries(s.channels.map((c) => [c.id, c.queue_minutes])));
    this.charts.viewers.draw();
    this.charts.queue.draw();
  }

  async queue() {
    const q = await api('/api/v1/queue?limit=10');
    const box = $('queue');
    box.replaceChildren();
    for (const c of q.channels) {
      const h = document.createElement('h3');
      h.textContent = `${c.id}: ${c.queue_minutes.toFixed(1)} min queued`;
      const table = document.createElement('table');
      table.innerHTML = '<thead><tr><th>#</th><th>Status</th><th>Title</th><th class="num">Length (s)</th><th>Why</th></tr></thead><tbody></tbody>';
      fillTable(
        table,
        c.items.map((i) => [[i.id], [i.status], [i.title], [Math.round(i.duration_ms / 1000), 'num'], [i.reason]]),
      );
      box.append(h, table);
    }
  }

  async events() {
    const e = await api('/api/v1/events?limit=30');
    fillTable(
      $('events-table'),
      e.events.map((ev) => [[time(ev.at_ms)], [ev.actor], [ev.channel_id], [ev.kind], [ev.message]]),
    );
  }

  // /metrics is optional: without it the page says so and keeps the charts it draws from the status API.
  async metrics() {
    if (this.noMetrics) return;
    let resp;
    try {
      resp = await fetch('/metrics', { cache: 'no-store' });
    } catch {
      return;
    }
    if (!resp.ok) {
      // Not served (an older daemon): asked once, not every few seconds.
      this.noMetrics = resp.status === 404;
      $('metrics-note').textContent = this.noMetrics
        ? 'This station serves no /metrics: the charts below come from the status API only.'
        : `/metrics answered HTTP ${resp.status}.`;
      return;
    }
    const { samples } = parseMetrics(await resp.text());
    const t = Date.now();
    let drawn = 0;
    for (const spec of METRIC_CHARTS) {
      const sums = {};
      for (const s of samples) {
        if (!spec.match.test(s.name) || /_(bucket|sum|count|created)$/.test(s.name)) continue;
        const key = s.labels[spec.by] || s.name;
        sums[key] = (sums[key] || 0) + s.value;
      }
      if (!Object.keys(sums).length) continue;
      let values = sums;
      if (spec.rate) {
        values = {};
        for (const [key, v] of Object.entries(sums)) {
          const id = `${spec.title}|${key}`;
          const prev = this.lastCounters.get(id);
          this.lastCounters.set(id, [t, v]);
          if (prev && v >= prev[1] && t > prev[0]) values[key] = ((v - prev[1]) * 1000) / (t - prev[0]);
        }
      }
      if (!this.metricCharts.has(spec.title)) this.metricCharts.set(spec.title, new Chart($('charts'), spec.title, spec.unit || ''));
      const chart = this.metricCharts.get(spec.title);
      chart.add(t, values);
      chart.draw();
      drawn += 1;
    }
    $('metrics-note').textContent = `From /metrics (${samples.length} samples): ${drawn} chart(s), refreshed every ${SLOW_MS / 1000} s.`;
  }
}

const dashboard = new Dashboard();

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  try {
    await api('/api/v1/status');
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(err instanceof Unauthorized ? `The token was refused: ${err.message}` : `Cannot reach the station: ${err.message}`);
    return;
  }
  $('token').value = '';
  dashboard.start();
});

$('logout').addEventListener('click', () => {
  dashboard.stop();
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('');
});

if (token()) dashboard.start();
else showLogin('');
