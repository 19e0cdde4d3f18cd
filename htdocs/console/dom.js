// DOM helpers. Every value from the server reaches the page as a text node or
// an attribute value set through the DOM: nothing here parses HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
    return;
  }
  if (child instanceof Node) {
    el.appendChild(child);
    return;
  }
  el.appendChild(document.createTextNode(String(child)));
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    } else if (k === 'value' && 'value' in el && el.tagName !== 'DATA') {
      el.value = v;
    } else if (k === 'checked' || k === 'selected') {
      el[k] = Boolean(v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
}

/** h('p', {class: 'x'}, 'text', child, [more]) — an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** s('rect', {x: 1}) — an SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix || 'id'}-${uid}`;
}

// ---- formatting ----------------------------------------------------------

export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  n = Number(n);
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatCount(n) {
  return Number(n || 0).toLocaleString('en-US');
}

/** An element showing a byte count, the exact number in its value. */
export function bytes(n) {
  return h('data', {value: String(n), title: `${formatCount(n)} bytes`, class: 'bytes'}, formatBytes(n));
}

export function formatDuration(seconds) {
  seconds = Number(seconds);
  if (!seconds) return 'never (every pull checks)';
  if (seconds % 86400 === 0) return seconds === 86400 ? '24 hours' : `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? '1 hour' : `${seconds / 3600} hours`;
  if (seconds % 60 === 0) return seconds === 60 ? '1 minute' : `${seconds / 60} minutes`;
  return `${seconds} seconds`;
}

export function relativeTime(epoch, now) {
  const secs = Math.round((now || Date.now() / 1000) - epoch);
  const abs = Math.abs(secs);
  const fmt = (v, unit) => `${v} ${unit}${v === 1 ? '' : 's'}`;
  let text;
  if (abs < 45) text = 'just now';
  else if (abs < 3600) text = fmt(Math.round(abs / 60), 'minute');
  else if (abs < 86400) text = fmt(Math.round(abs / 3600), 'hour');
  else if (abs < 86400 * 45) text = fmt(Math.round(abs / 86400), 'day');
  else return new Date(epoch * 1000).toISOString().slice(0, 10);
  if (text === 'just now') return text;
  return secs >= 0 ? `${text} ago` : `in ${text}`;
}

/** <time> with a relative text and the exact UTC time as its title; 0 means never. */
export function time(epoch, never) {
  if (!epoch) return h('span', {class: 'muted'}, never || 'never');
  const iso = new Date(Math.floor(epoch) * 1000).toISOString().replace('.000Z', 'Z'); // API times have ms
  return h('time', {datetime: iso, title: iso.replace('T', ' ').replace('Z', ' UTC')}, relativeTime(epoch));
}

export function shortDigest(d) {
  if (!d) return '';
  const [alg, hex] = d.split(':');
  return hex && hex.length > 12 ? `${alg}:${hex.slice(0, 12)}…` : d;
}

// ---- small components ----------------------------------------------------

export function copyButton(text, label) {
  const b = h('button', {type: 'button', class: 'button button-small button-quiet copy',
    'aria-label': label || `Copy ${text}`}, 'Copy');
  b.addEventListener('click', async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) {
      ok = false;
    }
    b.textContent = ok ? 'Copied' : 'Select and copy';
    setTimeout(() => { b.textContent = 'Copy'; }, 1600);
  });
  return b;
}

export function badge(text, kind, title) {
  return h('span', {class: ['badge', kind ? `badge-${kind}` : ''], title}, text);
}

/** A notice box: kind is info, success, error or warning. */
export function notice(kind, ...children) {
  return h('div', {class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : null}, ...children);
}

export function errorNotice(err, what) {
  const msg = err && err.message ? err.message : String(err);
  const type = err && err.type && !['HTTP', 'NetworkError'].includes(err.type) ? err.type : null;
  return notice('error',
    h('strong', what ? `${what}: ` : 'Error: '), msg,
    type ? h('span', {class: 'error-type'}, ` (${type})`) : null);
}

/** Page heading with an optional description and actions on the right. */
export function pageHeader(title, description, actions) {
  return h('div', {class: 'page-header'},
    h('div', {class: 'page-title'},
      h('h1', {tabindex: '-1'}, title),
      description ? h('p', {class: 'page-description'}, description) : null),
    actions ? h('div', {class: 'page-actions'}, actions) : null);
}

export function field(label, input, help, opts) {
  opts = opts || {};
  const id = input.id || nextId('f');
  input.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) input.setAttribute('aria-describedby', helpId);
  return h('div', {class: ['field', opts.class]},
    h('label', {for: id}, label, opts.optional ? h('span', {class: 'optional'}, ' – optional') : null),
    input,
    help ? h('p', {class: 'help', id: helpId}, help) : null);
}

/**
 * A modal confirmation (native <dialog>: focus stays inside, Escape cancels).
 * Resolves true when the action button was pressed.
 */
export function confirmDialog({title, body, action, danger}) {
  return new Promise((resolve) => {
    const cancel = h('button', {type: 'button', class: 'button', value: 'cancel'}, 'Cancel');
    const ok = h('button', {type: 'button', class: ['button', danger ? 'button-danger' : 'button-primary'],
      value: 'ok'}, action);
    const titleId = nextId('dlg');
    const dlg = h('dialog', {class: 'dialog', 'aria-labelledby': titleId},
      h('h2', {id: titleId}, title),
      h('div', {class: 'dialog-body'}, body),
      h('div', {class: 'dialog-actions'}, cancel, ok));
    let result = false;
    cancel.addEventListener('click', () => dlg.close());
    ok.addEventListener('click', () => { result = true; dlg.close(); });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** Disable a button while an async action runs; its label shows progress. */
export async function busy(button, label, fn) {
  const old = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = old;
  }
}
