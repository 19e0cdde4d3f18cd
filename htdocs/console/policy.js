// Policy documents as text: a JSON parser that remembers where every value
// is, the mapping of Pier's policy errors (a JSON path, or a line and column)
// to a place in the text, and the pull-through-cache statement helper.

export const PTC_ACTIONS = ['ecr:CreateRepository', 'ecr:BatchImportUpstreamImage'];

// ---- a JSON parser with locations ------------------------------------------

export class JsonSyntaxError extends Error {
  constructor(message, offset) {
    super(message);
    this.offset = offset;
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Parse JSON text into a tree of nodes {type, start, end, props|items|value}.
 * Object nodes have props [{key, keyStart, keyEnd, node}]; array nodes items.
 * Throws JsonSyntaxError with the offset of the problem. Duplicate keys are
 * errors, as they are for Pier.
 */
export function parseJson(text) {
  let i = 0;
  const n = text.length;
  const fail = (msg, at) => { throw new JsonSyntaxError(msg, at === undefined ? i : at); };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i += 1;
      else break;
    }
  };
  const describe = () => (i >= n ? 'the end of the text' : `'${text[i]}'`);

  function string() {
    const start = i;
    i += 1;
    let out = '';
    while (i < n) {
      const c = text[i];
      if (c === '"') {
        i += 1;
        return {type: 'string', value: out, start, end: i};
      }
      if (c === '\\') {
        const e = text[i + 1];
        const map = {'"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t'};
        if (e in map) {
          out += map[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          fail('invalid escape in a string', i);
        }
      } else if (text.charCodeAt(i) < 0x20) {
        fail(c === '\n' ? 'a string must end on the line it starts (missing closing ")' : 'control character in a string', i);
      } else {
        out += c;
        i += 1;
      }
    }
    return fail('a string is not closed (missing ")', start);
  }

  function value() {
    ws();
    if (i >= n) fail('a value is missing at the end of the text');
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) fail('invalid number');
      const start = i;
      i += m[0].length;
      return {type: 'number', value: Number(m[0]), start, end: i};
    }
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(lit, i)) {
        const start = i;
        i += lit.length;
        return {type: 'literal', value: v, start, end: i};
      }
    }
    if (c === "'") fail('strings need double quotes (")');
    return fail(`unexpected ${describe()}: a value was expected`);
  }

  function object() {
    const start = i;
    i += 1;
    const props = [];
    const seen = new Set();
    ws();
    if (text[i] === '}') {
      i += 1;
      return {type: 'object', props, start, end: i};
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        if (text[i] === '}' && props.length) fail("a ',' before '}' leaves an empty member: remove the last ','", i);
        fail(`expected a property name in double quotes, found ${describe()}`);
      }
      const k = string();
      ws();
      if (text[i] !== ':') fail(`expected ':' after "${k.value}", found ${describe()}`);
      i += 1;
      const v = value();
      if (seen.has(k.value)) fail(`"${k.value}" appears twice in this object`, k.start);
      seen.add(k.value);
      props.push({key: k.value, keyStart: k.start, keyEnd: k.end, node: v});
      ws();
      if (text[i] === ',') {
        i += 1;
        continue;
      }
      if (text[i] === '}') {
        i += 1;
        return {type: 'object', props, start, end: i};
      }
      fail(`expected ',' or '}' after a member, found ${describe()}`);
    }
  }

  function array() {
    const start = i;
    i += 1;
    const items = [];
    ws();
    if (text[i] === ']') {
      i += 1;
      return {type: 'array', items, start, end: i};
    }
    for (;;) {
      ws();
      if (text[i] === ']' && items.length) fail("a ',' before ']' leaves an empty element: remove the last ','", i);
      items.push(value());
      ws();
      if (text[i] === ',') {
        i += 1;
        continue;
      }
      if (text[i] === ']') {
        i += 1;
        return {type: 'array', items, start, end: i};
      }
      fail(`expected ',' or ']' after an element, found ${describe()}`);
    }
  }

  const root = value();
  ws();
  if (i < n) fail(`unexpected ${describe()} after the end of the document`);
  return root;
}

// ---- offsets, lines and columns ------------------------------------------

/** 1-based line and column of an offset. */
export function lineCol(text, offset) {
  offset = Math.max(0, Math.min(offset, text.length));
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset; k++) {
    if (text.charCodeAt(k) === 10) {
      line += 1;
      lineStart = k + 1;
    }
  }
  return {line, column: offset - lineStart + 1};
}

/** Offset of a 1-based line and column (clamped to the text). */
export function offsetOf(text, line, column) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  const end = text.indexOf('\n', off);
  const lineEnd = end < 0 ? text.length : end;
  return Math.min(off + Math.max(0, column - 1), lineEnd);
}

// ---- JSON paths (Statement[0].Condition.StringLik) ---------------------------

/**
 * Find the node a path names. Keys may hold dots or colons (condition keys):
 * at each object the longest key that fits the rest of the path wins.
 * Returns {start, end, exact} — the key of the last property found (or the
 * element for an index); exact is false when only a parent was found.
 */
export function locatePath(root, path) {
  let node = root;
  let rest = path;
  let hit = {start: root.start, end: root.start + 1};
  while (rest) {
    if (rest[0] === '[') {
      const m = /^\[(\d+)\]/.exec(rest);
      if (!m || node.type !== 'array' || !node.items[Number(m[1])]) return Object.assign(hit, {exact: false});
      node = node.items[Number(m[1])];
      hit = {start: node.start, end: node.start + 1};
      rest = rest.slice(m[0].length);
    } else {
      if (rest[0] === '.') rest = rest.slice(1);
      if (node.type !== 'object') return Object.assign(hit, {exact: false});
      let best = null;
      for (const p of node.props) {
        const k = p.key;
        if (rest === k || rest.startsWith(`${k}.`) || rest.startsWith(`${k}[`)) {
          if (!best || k.length > best.key.length) best = p;
        }
      }
      if (!best) return Object.assign(hit, {exact: false});
      node = best.node;
      hit = {start: best.keyStart, end: best.keyEnd};
      rest = rest.slice(best.key.length);
    }
  }
  return Object.assign(hit, {exact: true});
}

/**
 * Where in `text` a policy error from Pier points. Returns
 * {start, end, line, column, detail, path} or null when the message names no
 * place (then the message is shown without a mark).
 */
export function locateError(text, message) {
  let msg = String(message || '').replace(/^(repositoryPolicy|policyText): /, '');
  const syntax = /^policy is not valid JSON: ([\s\S]*) \(line (\d+), column (\d+)\)$/.exec(msg);
  if (syntax) {
    const line = Number(syntax[2]);
    const column = Number(syntax[3]);
    let end = offsetOf(text, line, column);
    let start = end;
    const near = /near '([\s\S]*)'$/.exec(syntax[1]);
    // Jansson's column is the last character of the token it names.
    if (near && near[1] && text.slice(end - near[1].length + 1, end + 1) === near[1]) {
      start = end - near[1].length + 1;
      end += 1;
    } else {
      end = Math.min(text.length, start + 1);
    }
    const lc = lineCol(text, start);
    return {start, end, line: lc.line, column: lc.column, detail: `not valid JSON: ${syntax[1]}`, path: null};
  }
  const colon = msg.indexOf(': ');
  const path = colon > 0 ? msg.slice(0, colon) : '';
  if (!path || !/^[A-Za-z][^\s]*$/.test(path)) return null;
  let root;
  try {
    root = parseJson(text);
  } catch (e) {
    return null;
  }
  const hit = locatePath(root, path);
  const lc = lineCol(text, hit.start);
  return {start: hit.start, end: hit.end, line: lc.line, column: lc.column, detail: msg.slice(colon + 2), path,
    exact: hit.exact};
}

/** A local syntax check: null when the text parses, else {start, end, line, column, detail}. */
export function checkSyntax(text) {
  try {
    parseJson(text);
    return null;
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const lc = lineCol(text, e.offset);
    return {start: e.offset, end: Math.min(text.length, e.offset + 1), line: lc.line, column: lc.column,
      detail: e.message, path: null};
  }
}

// ---- actions the policy engine does not know ---------------------------------

/** IAM's wildcard match ('*' any run, '?' one character), case-insensitive as IAM compares actions. */
export function actionMatches(pattern, action) {
  const re = String(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(action);
}

function distance(a, b) {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({length: b.length + 1}, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The Action and NotAction strings of a policy text that name no action of
 * `known` (the policy engine's list, GET api/policy-actions): [{start, end,
 * line, column, action, suggestion}]; [] when the text is not JSON (the syntax
 * check speaks then). A policy naming them is accepted, as IAM accepts it, but
 * they grant (or deny) nothing.
 */
export function unknownActions(text, known) {
  if (!known || !known.length || !text.trim()) return [];
  let root;
  try {
    root = parseJson(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) return [];
    throw e;
  }
  const prop = (node, key) => (node && node.type === 'object' ? (node.props.find((p) => p.key === key) || {}).node : null);
  const list = (node) => (!node ? [] : node.type === 'array' ? node.items : [node]);
  const out = [];
  for (const st of list(prop(root, 'Statement'))) {
    for (const key of ['Action', 'NotAction']) {
      for (const a of list(prop(st, key))) {
        if (a.type !== 'string' || a.value === '*' || known.some((k) => actionMatches(a.value, k))) continue;
        let suggestion = null;
        if (!/[*?]/.test(a.value)) {
          let best = 4;
          for (const k of known) {
            const d = distance(a.value, k);
            if (d < best) {
              best = d;
              suggestion = k;
            }
          }
        }
        const lc = lineCol(text, a.start);
        out.push({start: a.start, end: a.end, line: lc.line, column: lc.column, action: a.value, suggestion});
      }
    }
  }
  return out;
}

// ---- the pull-through-cache statement helper -------------------------------

/** Parse principals typed one per line (or separated by commas or spaces). */
export function splitPrincipals(text) {
  return String(text || '').split(/[\s,]+/).map((p) => p.trim()).filter(Boolean);
}

/** A reason the principal is not usable in the helper, or null. */
export function principalProblem(p) {
  if (p === '*') return "'*' would let every principal create repositories and import images; name IAM principals";
  if (/^[0-9]{12}$/.test(p)) return null;
  if (/^arn:aws:iam::[0-9]{12}:(root|(user|role)\/[\w+=,.@/-]+)$/.test(p)) return null;
  return `'${p}' is not an IAM principal (arn:aws:iam::<account>:user/<name>, a role ARN, or a 12-digit account ID)`;
}

export function sidProblem(sid) {
  if (!sid) return 'enter a statement ID';
  if (sid.length > 128) return 'the statement ID is longer than 128 characters';
  const bad = /[^A-Za-z0-9 ._-]/.exec(sid);
  return bad ? `character '${bad[0]}' is not allowed in a statement ID (letters, digits, space, '.', '_', '-')` : null;
}

export function patternProblem(pattern) {
  if (!pattern) return "enter a repository pattern, e.g. docker/* or * for every repository under the prefix";
  const bad = /[^a-z0-9._/*?-]/.exec(pattern);
  return bad ? `character '${bad[0]}' is not allowed in a repository pattern (a-z, 0-9, '.', '_', '-', '/', '*', '?')` : null;
}

export function repositoryArn(region, account, prefix, pattern) {
  const name = !prefix || prefix === 'ROOT' ? pattern : `${prefix}/${pattern}`;
  return `arn:aws:ecr:${region}:${account}:repository/${name}`;
}

/** The statement ECR's pull-through-cache helper writes into the registry policy. */
export function ptcStatement({sid, principals, prefix, pattern, region, account}) {
  return {
    Sid: sid,
    Effect: 'Allow',
    Principal: {AWS: principals.slice()},
    Action: PTC_ACTIONS.slice(),
    Resource: repositoryArn(region, account, prefix, pattern),
  };
}

/**
 * Add (or, with the same Sid, replace) a statement in the policy text.
 * Returns {text, start, end, replaced}: the new text, pretty-printed, and
 * the offsets of the statement in it. Throws JsonSyntaxError when the text is
 * not JSON, or Error when it is not a policy object.
 */
export function addStatement(text, statement) {
  let doc;
  if (!text.trim()) {
    doc = {Version: '2012-10-17', Statement: []};
  } else {
    parseJson(text); // syntax errors with their place
    doc = JSON.parse(text);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error('The policy must be a JSON object ({"Version": …, "Statement": […]}).');
  }
  if (!('Version' in doc)) doc = Object.assign({Version: '2012-10-17'}, doc);
  let list;
  if (doc.Statement === undefined || doc.Statement === null) list = [];
  else if (Array.isArray(doc.Statement)) list = doc.Statement;
  else list = [doc.Statement];
  let index = list.findIndex((st) => st && typeof st === 'object' && st.Sid === statement.Sid);
  const replaced = index >= 0;
  if (replaced) list[index] = statement;
  else {
    list.push(statement);
    index = list.length - 1;
  }
  doc.Statement = list;
  const out = `${JSON.stringify(doc, null, 2)}\n`;
  const node = parseJson(out).props.find((p) => p.key === 'Statement').node.items[index];
  return {text: out, start: node.start, end: node.end, replaced};
}

/** Pretty-print policy text (2 spaces); throws JsonSyntaxError. */
export function formatPolicy(text) {
  parseJson(text);
  return `${JSON.stringify(JSON.parse(text), null, 2)}\n`;
}
