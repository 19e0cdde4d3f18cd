// A policy text editor: a plain <textarea> (so every browser feature and
// keyboard habit works) with line numbers, a marked error line with its
// message beside it, highlighted lines for text the helper added, and
// warnings on the lines of actions the policy engine does not know.

import {api} from './api.js';
import {h, nextId, clear} from './dom.js';
import {
  locateError, checkSyntax, lineCol, parseJson, locatePath, formatPolicy, JsonSyntaxError, unknownActions,
} from './policy.js';

// The policy engine's list of actions, fetched once (GET api/policy-actions);
// without it the editor simply does not warn.
let knownActions = null;
function loadKnownActions() {
  if (!knownActions) {
    knownActions = api.policyActions().then((r) => r.actions || []).catch(() => {
      knownActions = null;
      return [];
    });
  }
  return knownActions;
}

const LINE = 20; // px, as in app.css (.editor-input line-height)
const PAD_TOP = 8; // px, as in app.css (.editor-input padding-top)
const PAD_LEFT = 12;

export function policyEditor({label, rows, placeholder, describedBy}) {
  const id = nextId('policy');
  const msgId = `${id}-msg`;
  const posId = `${id}-pos`;
  const ta = h('textarea', {
    id, class: 'editor-input', rows: String(rows || 18), spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', wrap: 'off', placeholder: placeholder || '',
    'aria-describedby': [msgId, describedBy].filter(Boolean).join(' '),
  });
  const gutterInner = h('div', {class: 'editor-gutter-inner'});
  const gutter = h('div', {class: 'editor-gutter', 'aria-hidden': 'true'}, gutterInner);
  const bands = h('div', {class: 'editor-bands', 'aria-hidden': 'true'});
  const bubble = h('div', {class: 'editor-bubble', 'aria-hidden': 'true', hidden: true});
  const warnBubble = h('div', {class: 'editor-warning-bubble', 'aria-hidden': 'true', hidden: true});
  const body = h('div', {class: 'editor-body'}, bands, ta, bubble, warnBubble);
  const box = h('div', {class: 'editor'}, gutter, body);
  const message = h('div', {id: msgId, class: 'editor-message', role: 'alert'});
  const pos = h('span', {id: posId, class: 'editor-pos', 'aria-live': 'off'}, 'Line 1, column 1');
  const labelEl = h('label', {for: id, class: 'editor-label'}, label);
  const warningsId = `${id}-warnings`;
  const warningList = h('ul', {id: warningsId, class: 'editor-warnings', hidden: true});
  ta.setAttribute('aria-describedby', [msgId, warningsId, describedBy].filter(Boolean).join(' '));
  const el = h('div', {class: 'editor-field'}, labelEl, box, h('div', {class: 'editor-status'}, message, pos),
    h('div', {role: 'status'}, warningList));

  let error = null; // {line, start, end, detail, path, message}
  let added = null; // {from, to} lines
  let warnings = []; // [{line, action, suggestion}]: actions the policy engine does not know
  let lineCount = 0;
  let charWidth = 7.8;
  let timer = null;
  const listeners = [];

  function measure() {
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d');
    const cs = getComputedStyle(ta);
    ctx.font = `${cs.fontSize} ${cs.fontFamily}`;
    const w = ctx.measureText('0123456789').width / 10;
    if (w > 0) charWidth = w;
  }

  function renderGutter() {
    const n = ta.value.split('\n').length;
    if (n !== lineCount) {
      lineCount = n;
      clear(gutterInner);
      for (let i = 1; i <= n; i++) gutterInner.appendChild(h('div', {class: 'editor-ln', dataset: {line: String(i)}}, String(i)));
    }
    for (const ln of gutterInner.children) {
      const l = Number(ln.dataset.line);
      ln.classList.toggle('editor-ln-error', Boolean(error && error.line === l));
      ln.classList.toggle('editor-ln-added', Boolean(added && l >= added.from && l <= added.to));
      ln.classList.toggle('editor-ln-warning', warnings.some((w) => w.line === l));
    }
  }

  function lineText(line) {
    return ta.value.split('\n')[line - 1] || '';
  }

  /** Put a bubble beside line's text when there is room, else just below the line. */
  function placeBubble(el, line, top) {
    const textEnd = PAD_LEFT + (lineText(line).length + 3) * charWidth - ta.scrollLeft;
    const room = ta.clientWidth - textEnd - 12;
    el.classList.toggle('editor-bubble-below', room < 260);
    if (room >= 260) {
      el.style.left = `${Math.max(textEnd, 0)}px`;
      el.style.top = `${PAD_TOP + (line - 1) * LINE - top - 2}px`;
      el.style.maxWidth = `${room}px`;
    } else {
      el.style.left = `${Math.max(PAD_LEFT + 24, 40)}px`;
      el.style.top = `${PAD_TOP + line * LINE - top + 2}px`;
      el.style.maxWidth = `${Math.max(ta.clientWidth - 80, 200)}px`;
    }
    const bTop = parseFloat(el.style.top);
    el.classList.toggle('editor-bubble-offscreen', bTop < -LINE || bTop > ta.clientHeight);
  }

  function layout() {
    const top = ta.scrollTop;
    gutterInner.style.transform = `translateY(${-top}px)`;
    clear(bands);
    if (added) {
      const b = h('div', {class: 'editor-band editor-band-added'});
      b.style.top = `${PAD_TOP + (added.from - 1) * LINE - top}px`;
      b.style.height = `${(added.to - added.from + 1) * LINE}px`;
      bands.appendChild(b);
    }
    for (const w of warnings) {
      const b = h('div', {class: 'editor-band editor-band-warning'});
      b.style.top = `${PAD_TOP + (w.line - 1) * LINE - top}px`;
      b.style.height = `${LINE}px`;
      bands.appendChild(b);
    }
    // The first warning beside its line, unless an error has the place.
    const w0 = warnings[0];
    warnBubble.hidden = !w0 || Boolean(error && error.line && !error.bubbleHidden);
    if (!warnBubble.hidden) {
      warnBubble.textContent = warningText(w0, true);
      placeBubble(warnBubble, w0.line, top);
    }
    if (error && error.line) {
      const b = h('div', {class: 'editor-band editor-band-error'});
      b.style.top = `${PAD_TOP + (error.line - 1) * LINE - top}px`;
      b.style.height = `${LINE}px`;
      bands.appendChild(b);
      bubble.hidden = Boolean(error.bubbleHidden);
      bubble.textContent = error.bubble;
      placeBubble(bubble, error.line, top);
    } else {
      bubble.hidden = true;
    }
  }

  function warningText(w, short) {
    const guess = w.suggestion ? ` Did you mean ${w.suggestion}?` : '';
    if (short) return `${w.action} is not an action Pier knows.${guess}`;
    return `Line ${w.line}: ${w.action} is not an action Pier knows, so it allows or denies nothing.${guess}`;
  }

  /** Mark the actions the policy engine does not know, on their lines (debounced after edits). */
  async function checkActions() {
    const known = await loadKnownActions();
    const text = ta.value;
    const found = unknownActions(text, known);
    if (text !== ta.value) return; // edited meanwhile: the next check runs
    warnings = found;
    clear(warningList);
    warningList.hidden = !found.length;
    box.classList.toggle('editor-warned', found.length > 0);
    for (const w of found) warningList.appendChild(h('li', {dataset: {line: String(w.line)}}, warningText(w)));
    refresh();
  }

  function updatePos() {
    const lc = lineCol(ta.value, ta.selectionStart);
    pos.textContent = `Line ${lc.line}, column ${lc.column}`;
  }

  function refresh() {
    renderGutter();
    layout();
  }

  function scrollToLine(line) {
    const want = (line - 1) * LINE;
    if (want < ta.scrollTop || want > ta.scrollTop + ta.clientHeight - 3 * LINE) {
      ta.scrollTop = Math.max(0, want - Math.floor(ta.clientHeight / 3));
    }
  }

  function setError(loc, fullMessage) {
    if (!loc) {
      error = {line: 0, message: fullMessage};
      message.textContent = fullMessage;
      message.className = 'editor-message editor-message-error';
      box.classList.add('editor-invalid');
      ta.setAttribute('aria-invalid', 'true');
      refresh();
      return;
    }
    // Beside the text only the gist; the whole message is below the editor.
    const gist = loc.detail.length > 70 ? loc.detail.replace(/\s*\((supported|allowed|expected)\b[^)]*\)$/, '') : loc.detail;
    error = Object.assign({}, loc, {message: fullMessage,
      bubble: `${loc.path && !loc.exact ? `${loc.path}: ` : ''}${gist}`});
    message.textContent = `Line ${loc.line}, column ${loc.column}: ${fullMessage}`;
    message.className = 'editor-message editor-message-error';
    box.classList.add('editor-invalid');
    ta.setAttribute('aria-invalid', 'true');
    refresh();
  }

  /** Show an error from Pier at its place; focus the text there. */
  function showError(fullMessage, {focus} = {}) {
    const loc = locateError(ta.value, fullMessage);
    setError(loc, fullMessage);
    if (loc) {
      if (focus !== false) {
        ta.focus({preventScroll: true});
        ta.setSelectionRange(loc.start, loc.start);
      }
      scrollToLine(loc.line);
      updatePos();
      layout();
    }
    return loc;
  }

  function clearError() {
    error = null;
    message.textContent = '';
    message.className = 'editor-message';
    box.classList.remove('editor-invalid');
    ta.removeAttribute('aria-invalid');
    refresh();
  }

  /** After an edit: a syntax error that is gone is cleared; a path error follows its path. */
  function recheck() {
    if (!error) return;
    if (error.path) {
      try {
        const hit = locatePath(parseJson(ta.value), error.path);
        const lc = lineCol(ta.value, hit.start);
        Object.assign(error, {line: lc.line, column: lc.column, start: hit.start, end: hit.end});
      } catch (e) {
        if (!(e instanceof JsonSyntaxError)) throw e;
      }
      refresh();
    } else if (error.line && !checkSyntax(ta.value)) {
      clearError();
      message.textContent = 'The JSON is well-formed now. Save to check the policy.';
      message.className = 'editor-message editor-message-ok';
    }
  }

  ta.addEventListener('input', () => {
    added = null;
    if (error) error.bubbleHidden = true; // the mark stays; the message stays below the editor
    renderGutter();
    layout();
    updatePos();
    clearTimeout(timer);
    timer = setTimeout(() => {
      recheck();
      checkActions();
    }, 250);
    for (const fn of listeners) fn();
  });
  ta.addEventListener('scroll', layout);
  for (const ev of ['keyup', 'click', 'select', 'focus']) ta.addEventListener(ev, updatePos);
  window.addEventListener('resize', layout);
  // Sizes are known only once the editor is in the document.
  requestAnimationFrame(() => { measure(); refresh(); });
  const checkSoon = () => { checkActions(); };

  return {
    el,
    textarea: ta,
    get value() { return ta.value; },
    set value(v) {
      ta.value = v;
      added = null;
      clearError();
      updatePos();
      checkSoon();
    },
    onInput(fn) { listeners.push(fn); },
    showError,
    clearError,
    /** A local JSON syntax check; marks the problem and returns false when there is one. */
    checkSyntax() {
      const loc = checkSyntax(ta.value);
      if (!loc) return true;
      setError(loc, `Not valid JSON: ${loc.detail}`);
      ta.focus({preventScroll: true});
      ta.setSelectionRange(loc.start, loc.start);
      scrollToLine(loc.line);
      layout();
      return false;
    },
    /** Replace the text and highlight offsets start..end as added. */
    setWithAdded(text, start, end) {
      ta.value = text;
      clearError();
      added = {from: lineCol(text, start).line, to: lineCol(text, end).line};
      refresh();
      scrollToLine(added.to);
      scrollToLine(added.from);
      layout();
      checkSoon();
      for (const fn of listeners) fn();
    },
    format() {
      if (!ta.value.trim()) return true;
      try {
        ta.value = formatPolicy(ta.value);
        added = null;
        clearError();
        checkSoon();
        for (const fn of listeners) fn();
        return true;
      } catch (e) {
        if (!(e instanceof JsonSyntaxError)) throw e;
        return this.checkSyntax();
      }
    },
    /** Drop the highlight of added lines (after a save). */
    clearAdded() {
      added = null;
      refresh();
    },
    setStatus(text, kind) {
      if (error) return;
      message.textContent = text;
      message.className = `editor-message${kind ? ` editor-message-${kind}` : ''}`;
    },
    get error() { return error; },
    /** Actions the policy engine does not know, as last checked: [{line, action, suggestion}]. */
    get warnings() { return warnings; },
    refresh,
  };
}
