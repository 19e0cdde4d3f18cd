// Small SVG charts drawn by hand. Each is an <svg role="img"> with a text
// description, and prints its numbers, so nothing depends on colour alone.
// Charts whose rows are links are HTML lists (barList): an image's parts are
// not reachable to assistive technology, so links must not be inside one.

import {h, s, formatBytes} from './dom.js';

const ROW = 28;

function truncate(text, max) {
  text = String(text);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A ring showing part of a whole, with the percentage in its middle. */
export function donut({part, whole, label, description}) {
  const r = 46;
  const c = 2 * Math.PI * r;
  const ratio = whole > 0 ? part / whole : 0;
  const pct = whole > 0 ? `${(ratio * 100).toFixed(ratio >= 0.995 || ratio === 0 ? 0 : 1)}%` : '—';
  return s('svg', {viewBox: '0 0 120 120', width: 120, height: 120, role: 'img', 'aria-label': description,
    class: 'chart chart-donut'},
  s('title', {}, description),
  s('circle', {cx: 60, cy: 60, r, class: 'donut-track'}),
  whole > 0 && part > 0 ? s('circle', {cx: 60, cy: 60, r, class: 'donut-value',
    'stroke-dasharray': `${(ratio * c).toFixed(2)} ${c.toFixed(2)}`, transform: 'rotate(-90 60 60)'}) : null,
  s('text', {x: 60, y: 62, 'text-anchor': 'middle', class: 'donut-pct'}, pct),
  s('text', {x: 60, y: 80, 'text-anchor': 'middle', class: 'donut-label'}, label));
}

/**
 * Horizontal bars: items [{label, value, text, title, kind}], one row each;
 * text is printed after the bar (default: the value). Rows that link: barList.
 */
export function barChart({items, width, labelWidth, description, barClass}) {
  width = width || 520;
  labelWidth = labelWidth || 180;
  const valueWidth = 90;
  const barMax = width - labelWidth - valueWidth - 8;
  const max = Math.max(1, ...items.map((i) => i.value));
  const height = items.length * ROW + 4;
  const rows = items.map((it, k) => {
    const y = k * ROW + 2;
    const w = it.value > 0 ? Math.max(2, (it.value / max) * barMax) : 0;
    return s('g', {class: 'chart-row'},
      s('title', {}, it.title || `${it.label}: ${it.text || it.value}`),
      s('text', {x: labelWidth - 8, y: y + 18, 'text-anchor': 'end', class: 'chart-label'},
        truncate(it.label, Math.floor(labelWidth / 7.2))),
      s('rect', {x: labelWidth, y: y + 5, width: barMax, height: ROW - 10, rx: 3, class: 'chart-track'}),
      w ? s('rect', {x: labelWidth, y: y + 5, width: w.toFixed(1), height: ROW - 10, rx: 3,
        class: ['chart-bar', it.kind ? `chart-bar-${it.kind}` : barClass]}) : null,
      s('text', {x: labelWidth + barMax + 8, y: y + 18, class: 'chart-value'}, it.text || String(it.value)));
  });
  return s('svg', {viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': description,
    class: 'chart chart-bars', preserveAspectRatio: 'xMinYMin meet'},
  s('title', {}, description), ...rows);
}

/**
 * Horizontal bars as an HTML list, for rows that link somewhere: items
 * [{label, value, text, title, kind, href}]; each row is the link, a bar
 * (decoration: its width is the value) and the printed value.
 */
export function barList({items, description}) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return h('ol', {class: 'bar-list', 'aria-label': description}, items.map((it) => {
    const bar = h('span', {class: ['bar-list-fill', 'chart-bar', it.kind ? `chart-bar-${it.kind}` : null]});
    bar.style.width = `${it.value > 0 ? Math.max(1, (it.value / max) * 100) : 0}%`;
    return h('li', {class: 'bar-list-row', title: it.title || null},
      h('span', {class: 'bar-list-label'}, it.href ? h('a', {href: it.href}, it.label) : it.label),
      h('span', {class: 'bar-list-track', 'aria-hidden': 'true'}, bar),
      h('span', {class: 'bar-list-value'}, it.text || String(it.value)));
  }));
}

/**
 * Two bars of bytes per row, side by side for comparison:
 * items [{label, parts: [{value, kind, name}, {value, kind, name}]}],
 * every bar scaled to the largest value.
 */
export function pairedBytes({items, width, labelWidth, description}) {
  width = width || 520;
  labelWidth = labelWidth || 130;
  const valueWidth = 80;
  const rowH = 40;
  const barMax = width - labelWidth - valueWidth - 8;
  const max = Math.max(1, ...items.flatMap((it) => it.parts.map((p) => p.value)));
  const height = items.length * rowH + 4;
  const rows = items.map((it, k) => {
    const y = k * rowH + 2;
    const bars = it.parts.map((p, j) => {
      const by = y + 4 + j * 16;
      const w = p.value > 0 ? Math.max(2, (p.value / max) * barMax) : 0;
      return s('g', {},
        s('rect', {x: labelWidth, y: by, width: barMax, height: 13, rx: 2, class: 'chart-track'}),
        w ? s('rect', {x: labelWidth, y: by, width: w.toFixed(1), height: 13, rx: 2, class: ['chart-bar', `chart-bar-${p.kind}`]}) : null,
        s('text', {x: labelWidth + barMax + 8, y: by + 11, class: 'chart-value'}, formatBytes(p.value)));
    });
    const summary = it.parts.map((p) => `${p.name} ${formatBytes(p.value)}`).join(', ');
    return s('g', {class: 'chart-row'},
      s('title', {}, `${it.label}: ${summary}`),
      s('text', {x: labelWidth - 8, y: y + 22, 'text-anchor': 'end', class: 'chart-label'},
        truncate(it.label, Math.floor(labelWidth / 7.2))),
      ...bars);
  });
  return s('svg', {viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': description,
    class: 'chart chart-bars', preserveAspectRatio: 'xMinYMin meet'},
  s('title', {}, description), ...rows);
}

/** A legend: [{kind, name}] as coloured squares with names. */
export function legend(entries) {
  const width = entries.reduce((a, e) => a + 26 + e.name.length * 7.2, 0);
  let x = 0;
  const parts = entries.map((e) => {
    const g = s('g', {},
      s('rect', {x, y: 3, width: 12, height: 12, rx: 2, class: ['chart-bar', `chart-bar-${e.kind}`]}),
      s('text', {x: x + 17, y: 13, class: 'chart-legend'}, e.name));
    x += 26 + e.name.length * 7.2;
    return g;
  });
  return s('svg', {viewBox: `0 0 ${Math.ceil(width)} 18`, width: Math.ceil(width), height: 18,
    'aria-hidden': 'true', class: 'chart chart-legend-box'}, ...parts);
}
