// Reading Prometheus text (what GET /metrics serves) in the page, and the small line charts of the operator page.

// Parses the text exposition format into samples {name, labels, value}. Comments, HELP and TYPE lines give the
// families' types; anything that is not a sample line is skipped, so an unexpected line never breaks the page.
export function parseMetrics(text) {
  const types = new Map();
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = line.match(/^#\s*TYPE\s+(\S+)\s+(\S+)/);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const value = Number(m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : m[4]);
    if (Number.isNaN(value)) continue;
    samples.push({ name: m[1], labels: parseLabels(m[3] || ''), value });
  }
  return { types, samples };
}

function parseLabels(text) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text))) labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return labels;
}

const COLORS = ['#f4b942', '#4ea1ff', '#3fb97f', '#e5484d', '#b78cff', '#ff8a4c', '#5fd4d6', '#c9d1d9'];
const HISTORY_MS = 5 * 60 * 1000;

// A chart of a few series over the last minutes. `add(t, {series: value})` appends; `draw()` paints.
export class Chart {
  constructor(parent, title, unit) {
    this.unit = unit;
    this.series = new Map();
    const box = document.createElement('div');
    box.className = 'chart';
    const h = document.createElement('h3');
    h.textContent = title;
    this.canvas = document.createElement('canvas');
    this.legend = document.createElement('div');
    this.legend.className = 'legend';
    box.append(h, this.canvas, this.legend);
    parent.append(box);
    this.box = box;
  }

  add(t, values) {
    for (const [name, v] of Object.entries(values)) {
      if (!Number.isFinite(v)) continue;
      if (!this.series.has(name)) this.series.set(name, []);
      this.series.get(name).push([t, v]);
    }
    for (const points of this.series.values()) {
      while (points.length && points[0][0] < t - HISTORY_MS) points.shift();
    }
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (!w || !h) return;
    c.width = w * dpr;
    c.height = h * dpr;
    const g = c.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const all = [...this.series.values()].flat();
    const now = Date.now();
    const max = Math.max(1e-9, ...all.map((p) => p[1]));
    const top = max * 1.1;
    const pad = { l: 44, r: 8, t: 8, b: 16 };
    const x = (t) => pad.l + ((t - (now - HISTORY_MS)) / HISTORY_MS) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
    g.strokeStyle = '#263443';
    g.fillStyle = '#93a4b5';
    g.font = '11px system-ui, sans-serif';
    for (const f of [0, 0.5, 1]) {
      const v = top * f;
      g.beginPath();
      g.moveTo(pad.l, y(v));
      g.lineTo(w - pad.r, y(v));
      g.stroke();
      g.fillText(formatValue(v, this.unit), 2, y(v) + 4);
    }
    g.fillText('5 min ago', pad.l, h - 3);
    g.fillText('now', w - pad.r - 22, h - 3);
    this.legend.replaceChildren();
    let i = 0;
    for (const [name, points] of this.series) {
      const color = COLORS[i++ % COLORS.length];
      g.strokeStyle = color;
      g.lineWidth = 1.6;
      g.beginPath();
      points.forEach(([t, v], k) => (k ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
      const last = points.length ? points[points.length - 1][1] : NaN;
      const item = document.createElement('span');
      item.style.setProperty('--swatch', color);
      item.textContent = `${name}: ${formatValue(last, this.unit)}`;
      this.legend.append(item);
    }
  }
}

function formatValue(v, unit) {
  if (!Number.isFinite(v)) return '-';
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
}
