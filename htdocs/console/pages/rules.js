// Pull through cache rules: list, validate, create, edit, delete.

import {api, ApiError, ecrAll} from '../api.js';
import {
  h, clear, pageHeader, field, notice, errorNotice, badge, bytes, time, formatBytes, formatDuration, formatCount,
  confirmDialog, busy, nextId,
} from '../dom.js';

export const UPSTREAMS = [
  {id: 'docker-hub', name: 'Docker Hub', url: 'registry-1.docker.io', prefix: 'docker-hub', example: 'library/nginx',
    note: 'Docker Hub limits anonymous pulls: add a Docker Hub username and access token.'},
  {id: 'ecr-public', name: 'Amazon ECR Public', url: 'public.ecr.aws', prefix: 'ecr-public', example: 'docker/library/nginx'},
  {id: 'quay', name: 'Quay', url: 'quay.io', prefix: 'quay', example: 'prometheus/prometheus'},
  {id: 'github-container-registry', name: 'GitHub Container Registry', url: 'ghcr.io', prefix: 'github',
    example: 'owner/image', note: 'GitHub needs a username and a personal access token with read:packages.'},
  {id: 'k8s', name: 'Kubernetes (registry.k8s.io)', url: 'registry.k8s.io', prefix: 'k8s', example: 'pause'},
  {id: 'azure-container-registry', name: 'Azure Container Registry', url: '.azurecr.io', prefix: 'azure',
    example: 'samples/hello-world', editable: true,
    note: 'Type your registry name in front of .azurecr.io; Azure needs a username and an access token.'},
  {id: 'gitlab-container-registry', name: 'GitLab Container Registry', url: 'registry.gitlab.com', prefix: 'gitlab',
    example: 'group/project/image', note: 'GitLab needs a username and an access token with read_registry.'},
  {id: 'chainguard', name: 'Chainguard', url: 'cgr.dev', prefix: 'chainguard', example: 'chainguard/static'},
  {id: 'oci', name: 'Other OCI registry (any URL)', url: '', prefix: '', example: 'team/app', editable: true,
    note: 'https:// is assumed; http:// is accepted for registries on this host (loopback).'},
];

export function upstreamName(id) {
  const u = UPSTREAMS.find((x) => x.id === id);
  if (id === 'oci') return 'OCI registry';
  if (u) return u.name.replace(/ \(.*\)$/, '');
  return id === 'ecr' ? 'Amazon ECR (private)' : id || 'OCI registry';
}

const PREFIX_RE = /^(ROOT|[a-z0-9._/-]{2,30})$/;

function prefixProblem(p) {
  if (!p) return 'Enter a repository prefix.';
  if (p === 'ROOT') return null;
  if (p.length < 2 || p.length > 30) return `The prefix must be 2 to 30 characters (it has ${p.length}), or ROOT.`;
  const bad = /[^a-z0-9._/-]/.exec(p);
  if (bad) return `Character '${bad[0]}' is not allowed: use a-z, 0-9, '.', '_', '-' and '/'.`;
  if (/^[._/-]|[._/-]$/.test(p)) return 'The prefix must start and end with a letter or a digit.';
  return PREFIX_RE.test(p) ? null : 'This is not a valid prefix.';
}

// ---- mirror mode ----------------------------------------------------------------

const MIRROR_LABEL = /^(?=.{1,63}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/**
 * The registries typed into the mirrors field ("docker.io, quay.io") as a list, or
 * {problem} when one is not a host name with an optional :port (the server checks too).
 */
export function parseMirrors(text) {
  const out = [];
  for (const raw of text.split(/[\s,]+/)) {
    const m = raw.toLowerCase();
    if (!m) continue;
    const [host, port, extra] = m.split(':');
    const portOk = port === undefined || (/^[1-9]\d{0,4}$/.test(port) && Number(port) <= 65535);
    if (extra !== undefined || !portOk || host.length > 253 || !host.split('.').every((l) => MIRROR_LABEL.test(l))) {
      return {problem: `'${raw}' is not a registry host name: write it as docker.io or registry.example.com:5000, without https:// or a path.`};
    }
    if (!out.includes(m)) out.push(m);
  }
  return {list: out};
}

/** What a rule mirrors, for the list: registry names and a badge for the default mirror. */
function mirrorCell(rule) {
  const list = rule.mirrorRegistries || [];
  if (!list.length && !rule.defaultMirror) return null;
  return h('div', {class: 'mirror-cell small'},
    list.length ? h('span', {class: 'muted'}, 'mirror of ') : null,
    list.map((m, i) => [i ? ', ' : '', h('code', {class: 'nowrap mirror-registry'}, m)]),
    rule.defaultMirror ? h('div', {}, badge('Default mirror', 'ok')) : null);
}

// ---- byte budgets ----------------------------------------------------------------

// A rule's budget is at least 1 MiB and at most 1 EiB (the server checks it too).
const BUDGET_MIN = 2 ** 20;
const BUDGET_MAX = 2 ** 60;
const UNITS = {'': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60};

/**
 * A size typed by a person ("50G", "512 MiB", "1.5 GiB", "1073741824") in bytes,
 * binary units as pierctl and the configuration file read them; null when it is not one.
 */
export function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]);
  return Number.isFinite(n) ? n : null;
}

/** A budget as the form shows it: exact, in the largest binary unit that divides it. */
export function sizeText(n) {
  for (const [u, f] of [['EiB', 2 ** 60], ['PiB', 2 ** 50], ['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (n >= f && n % f === 0) return `${n / f} ${u}`;
  }
  return String(n);
}

/**
 * What a rule's images take on disk against its budget (a <meter>: no inline style under the
 * CSP), and what the budget gave back. label: say "budget" (where no column header does).
 */
export function budgetCell(rule, label) {
  const max = Number(rule.maxBytes || 0);
  const cached = Number(rule.bytesCached || 0);
  const reclaimed = h('div', {class: 'small muted nowrap budget-reclaimed'}, 'reclaimed ', bytes(rule.bytesReclaimed || 0));
  if (!max) {
    return h('div', {class: 'budget'}, h('div', {class: 'small muted budget-none'}, label ? 'no budget' : 'None'), reclaimed);
  }
  const over = cached > max;
  return h('div', {class: ['budget', over ? 'budget-over' : '']},
    h('div', {class: ['nowrap budget-limit', label ? 'small' : '']}, label ? 'budget ' : null, bytes(max)),
    h('meter', {min: '0', max: String(max), value: String(Math.min(cached, max)), low: String(max * 0.8),
      high: String(max * 0.95), optimum: '0', class: 'budget-meter',
      'aria-label': `${formatBytes(cached)} of ${formatBytes(max)} used${over ? ', over budget' : ''}`,
      title: `${formatBytes(cached)} of ${formatBytes(max)}`}),
    over ? h('div', {class: 'small error-text'}, 'over budget') : null,
    reclaimed);
}

// ---- durations ------------------------------------------------------------------

const DURATION_UNITS = {s: 1, m: 60, h: 3600, d: 86400};

/** A duration typed by a person ("24h", "30 min", "600", "7d") in seconds; null when it is not one. */
export function parseDuration(text) {
  const m = /^\s*(\d+)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)?\s*$/i.exec(text);
  if (!m) return null;
  return Number(m[1]) * DURATION_UNITS[(m[2] || 's')[0].toLowerCase()];
}

/** Seconds as the form shows them: exact, in the largest unit that divides them. */
export function durationText(n) {
  n = Number(n) || 0;
  for (const [u, f] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (n >= f && n % f === 0) return `${n / f}${u}`;
  }
  return `${n}s`;
}

function prefixLabel(prefix) {
  return prefix === 'ROOT' ? h('span', {}, h('code', 'ROOT'), h('span', {class: 'muted'}, ' (no prefix)')) : h('code', {class: 'nowrap'}, prefix);
}

// ---- credentials: a Secrets Manager secret per rule ---------------------------

/**
 * A new secret ecr-pullthroughcache/<prefix> (or <prefix>-<time> when that name
 * is taken: an existing secret is never overwritten here); returns its ARN.
 */
async function createSecret(prefix, username, accessToken) {
  const SecretString = JSON.stringify({username, accessToken});
  const base = `ecr-pullthroughcache/${prefix}`;
  for (const name of [base, `${base}-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`]) {
    try {
      const r = await api.secrets('CreateSecret', {Name: name, SecretString});
      return r.ARN;
    } catch (e) {
      if (!(e instanceof ApiError && e.type === 'ResourceExistsException')) throw e;
    }
  }
  throw new ApiError(400, 'ResourceExistsException', `The secrets ${base} and ${base}-<time> exist already; try again in a second.`);
}

async function deleteSecret(arn) {
  try {
    await api.secrets('DeleteSecret', {SecretId: arn, ForceDeleteWithoutRecovery: true});
  } catch (e) { /* best effort: an unused secret is harmless */ }
}

/**
 * New credentials for an existing rule: its own secret is updated in place
 * when no other rule uses it; otherwise the rule gets a new secret.
 * Returns the ARN the rule should point at.
 */
async function replaceCredentials(prefix, currentArn, username, accessToken) {
  if (currentArn) {
    const all = await ecrAll('DescribePullThroughCacheRules', {}, 'pullThroughCacheRules');
    const shared = all.some((r) => r.credentialArn === currentArn && r.ecrRepositoryPrefix !== prefix);
    if (!shared) {
      await api.secrets('PutSecretValue', {SecretId: currentArn, SecretString: JSON.stringify({username, accessToken})});
      return currentArn;
    }
  }
  return createSecret(prefix, username, accessToken);
}

// ---- upstream health ---------------------------------------------------------

/** What a failure class (pierFailureClass, lastFailureClass) means, in words. */
export const FAILURE_CLASSES = {
  'ok': 'OK',
  'unreachable': 'Unreachable (DNS, connection or timeout)',
  'tls': 'TLS failed (certificate or handshake)',
  'auth-refused': 'Credentials refused',
  'not-a-registry': 'Not a registry',
  'rate-limited': 'Rate-limited',
  'server-error': 'Upstream server error',
  'protocol-error': 'Unexpected answer',
  'refused-by-pier': 'Refused by Pier',
};

export function classWords(c) {
  return FAILURE_CLASSES[c] || c || 'Unknown';
}

/** The heading of a failure: the sentence's own first words ("Credentials needed") when it has them. */
function failureTitle(cls, text) {
  const lead = /^([A-Z][A-Za-z -]{2,30}): /.exec(text || '');
  return lead ? lead[1] : classWords(cls);
}

/** A time in the future as a clock time and how far away it is (time() says "just now" near now). */
function until(epoch) {
  const iso = new Date(epoch * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const left = Math.max(0, Math.round(epoch - Date.now() / 1000));
  const text = left < 120 ? `${left} s` : left < 7200 ? `${Math.round(left / 60)} min` : `${Math.round(left / 3600)} h`;
  return h('time', {datetime: iso, title: iso.replace('T', ' ').replace('Z', ' UTC')}, `${iso.slice(11, 19)} UTC (in ${text})`);
}

/**
 * The upstream's health now: the state (healthy, failing since, rate-limited until, not
 * contacted yet), the last success, the last failure with its class, the recent error rate.
 */
export function healthView(health, compact) {
  const hl = health || {state: 'unknown', recentAttempts: 0, recentErrors: 0, recentWindowSeconds: 900};
  const state = hl.state;
  const head = state === 'healthy' ? [badge('Healthy', 'ok')]
    : state === 'failing' ? [badge('Failing', 'danger'), ' since ', time(hl.failingSince)]
      : state === 'rate-limited' ? [badge('Rate-limited', 'warning'), ' until ', until(hl.rateLimitedUntil)]
        : [badge('Not contacted yet', 'neutral')];
  const minutes = Math.round((hl.recentWindowSeconds || 900) / 60);
  const rate = hl.recentAttempts
    ? `${formatCount(hl.recentErrors)} of ${formatCount(hl.recentAttempts)} requests failed in the last ${minutes} min`
    : `no requests in the last ${minutes} min`;
  return h('div', {class: 'health', dataset: {state}},
    h('div', {class: 'health-state'}, ...head),
    h('div', {class: 'small muted health-success'}, 'last success ', time(hl.lastSuccessAt)),
    hl.lastFailureClass ? h('div', {class: 'small health-failure'},
      h('span', {class: 'health-class'}, failureTitle(hl.lastFailureClass, hl.lastFailure)), ' ', time(hl.lastFailureAt),
      h('div', {class: ['error-text', compact ? 'clamp' : ''], title: hl.lastFailure}, hl.lastFailure)) : null,
    h('div', {class: 'small muted health-rate'}, rate));
}

// ---- the list ----------------------------------------------------------------

function validationText(rule, r) {
  if (r.isValid) {
    return rule.hasCredentials
      ? `Pier reached ${rule.upstreamUrl} with these credentials.`
      : `Pier reached ${rule.upstreamUrl} (without credentials).`;
  }
  // "Could not reach" only for what Pier did not reach: a refused password was reached.
  if (r.pierFailureClass === 'unreachable') return `Pier could not reach ${rule.upstreamUrl}: ${r.failure || 'no reason given'}`;
  return `${rule.upstreamUrl}: ${r.failure || classWords(r.pierFailureClass)}`;
}

export async function rulesPage(container, {ctx, query}) {
  const data = await api.overview();
  const rules = data.rules || [];
  const host = ctx.registryHost();
  container.appendChild(pageHeader('Pull through cache',
    ['A rule maps a repository prefix in Pier onto an upstream registry: pulling ',
      h('code', `${host}/<prefix>/<repository>:<tag>`),
      ' fetches the image from the upstream once and serves it from Pier afterwards.'],
    h('a', {class: 'button button-primary', href: '#/rules/new'}, 'Create rule')));

  if (!rules.length) {
    container.appendChild(h('div', {class: 'empty'},
      h('p', {}, 'There are no pull through cache rules yet.'),
      h('p', {}, h('a', {class: 'button button-primary', href: '#/rules/new'}, 'Create the first rule'))));
    return;
  }

  const highlight = query.get('rule');
  const table = h('table', {class: 'table rules-table'},
    h('caption', {class: 'visually-hidden'}, 'Pull through cache rules'),
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, 'Prefix'),
      h('th', {scope: 'col'}, 'Upstream'),
      h('th', {scope: 'col'}, 'Credentials'),
      h('th', {scope: 'col'}, 'Refresh'),
      h('th', {scope: 'col'}, 'Cached'),
      h('th', {scope: 'col'}, 'Upstream health'),
      h('th', {scope: 'col', class: 'actions-col'}, h('span', {class: 'visually-hidden'}, 'Actions')))));
  const tbody = h('tbody');
  table.appendChild(tbody);

  for (const rule of rules) {
    const resultRow = h('tr', {class: 'result-row', hidden: true});
    const resultCell = h('td', {colspan: '7'});
    resultRow.appendChild(resultCell);
    // The upstream now (shared by every node), refreshed after a validation.
    const errorCell = h('td', {class: 'error-cell health-cell'});
    const showHealth = (health) => clear(errorCell).appendChild(healthView(health, true));
    showHealth(rule.health);

    const validate = h('button', {type: 'button', class: 'button button-small', 'aria-label': `Validate rule ${rule.prefix}`,
      dataset: {action: 'validate', prefix: rule.prefix}}, 'Validate');
    const edit = h('a', {class: 'button button-small', href: `#/rules/edit/${encodeURIComponent(rule.prefix)}`,
      'aria-label': `Edit rule ${rule.prefix}`}, 'Edit');
    const del = h('button', {type: 'button', class: 'button button-small button-danger-quiet',
      'aria-label': `Delete rule ${rule.prefix}`, dataset: {action: 'delete', prefix: rule.prefix}}, 'Delete');

    validate.addEventListener('click', () => busy(validate, 'Validating…', async () => {
      resultRow.hidden = false;
      clear(resultCell).appendChild(notice('info', `Pier is contacting ${rule.upstreamUrl}…`));
      try {
        const r = await api.ecr('ValidatePullThroughCacheRule', {ecrRepositoryPrefix: rule.prefix});
        const box = notice(r.isValid ? 'success' : 'error', validationText(rule, r));
        box.setAttribute('role', 'status');
        box.classList.add('validate-result');
        box.dataset.valid = String(Boolean(r.isValid));
        box.dataset.failureClass = r.pierFailureClass || '';
        clear(resultCell).appendChild(box);
        const now = await api.overview().catch(() => null);
        const mine = now && (now.rules || []).find((x) => x.prefix === rule.prefix);
        if (mine) showHealth(mine.health);
      } catch (e) {
        clear(resultCell).appendChild(errorNotice(e, `Validating ${rule.prefix} failed`));
      }
    }));

    del.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: `Delete the rule ${rule.prefix}?`,
        body: [
          h('p', {}, 'Pulls under ', h('code', rule.prefix === 'ROOT' ? '<any name>' : `${rule.prefix}/`),
            ' will no longer reach ', h('code', rule.upstreamUrl), '.'),
          h('p', {}, `The ${formatCount(rule.repositories)} ${rule.repositories === 1 ? 'repository' : 'repositories'} it created stay, with their cached images; delete them on the Repositories page.`),
        ],
        action: 'Delete rule',
        danger: true,
      });
      if (!ok) {
        del.focus();
        return;
      }
      try {
        await api.ecr('DeletePullThroughCacheRule', {ecrRepositoryPrefix: rule.prefix});
        ctx.flash('success', `The rule ${rule.prefix} was deleted.`);
        ctx.reload();
      } catch (e) {
        resultRow.hidden = false;
        clear(resultCell).appendChild(errorNotice(e, `Deleting ${rule.prefix} failed`));
      }
    });

    const upstream = h('div', {},
      h('div', {}, upstreamName(rule.upstreamRegistry)),
      h('code', {class: ['small', rule.upstreamUrl.length > 34 ? 'url-long' : 'nowrap']}, rule.upstreamUrl),
      rule.upstreamPrefix && rule.upstreamPrefix !== 'ROOT'
        ? h('div', {class: 'small muted'}, 'under ', h('code', `${rule.upstreamPrefix}/`)) : null,
      // Mirror mode: the registries the rule mirrors, and the default mirror.
      mirrorCell(rule));
    const creds = rule.hasCredentials
      ? h('div', {}, badge('Set', 'ok'), rule.credentialArn
        ? h('div', {class: 'small muted nowrap', title: rule.credentialArn}, 'in Secrets Manager')
        : h('div', {class: 'small muted nowrap'}, 'stored with the rule'))
      : h('span', {class: 'muted'}, 'None');
    const row = h('tr', {class: ['rule-row', highlight === rule.prefix ? 'row-highlight' : ''], dataset: {prefix: rule.prefix}},
      h('th', {scope: 'row'}, prefixLabel(rule.prefix)),
      h('td', {}, upstream),
      h('td', {}, creds),
      h('td', {class: 'nowrap'}, formatDuration(rule.refreshSeconds),
        h('div', {class: 'small muted'}, 'not found: ', formatDuration(rule.negativeSeconds || 0).replace('never (every pull checks)', 'not kept')),
        rule.hasCaBundle ? h('div', {class: 'small muted'}, 'own CA bundle') : null),
      // What is cached, against the rule's byte budget, and how far back its last pulls go.
      h('td', {class: 'cached-cell'}, h('div', {class: 'nowrap'}, `${formatCount(rule.repositories)} ${rule.repositories === 1 ? 'repository' : 'repositories'}`),
        h('div', {class: 'small muted nowrap bytes-cached'}, bytes(rule.bytesCached)),
        budgetCell(rule, true),
        h('div', {class: 'small muted oldest-pull'}, 'oldest pull ', time(rule.oldestLastPull, 'none'))),
      errorCell,
      h('td', {class: 'actions'}, h('div', {class: 'button-row'}, validate, edit, del)));
    tbody.append(row, resultRow);
  }
  container.appendChild(h('div', {class: 'table-wrap'}, table));
  container.appendChild(h('p', {class: 'help after-table'},
    'Principals other than administrators also need the registry policy to allow ',
    h('code', 'ecr:CreateRepository'), ' and ', h('code', 'ecr:BatchImportUpstreamImage'),
    ' under the prefix: add that statement on ', h('a', {href: '#/permissions'}, 'Registry permissions'), '.'));
  container.appendChild(h('p', {class: 'help'},
    'A rule that mirrors a registry also serves nodes whose container runtime uses Pier as a mirror of it: ',
    h('code', 'docker.io/library/nginx'), ' is pulled through the rule without renaming the image.'));
}

// ---- create and edit -----------------------------------------------------------

export async function ruleFormPage(container, {params, ctx}) {
  const editing = params.length ? params[0] : null;
  let rule = null;
  let stats = null;
  if (editing) {
    const [d, o] = await Promise.all([
      api.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [editing]}),
      api.overview().catch(() => ({rules: []})),
    ]);
    rule = (d.pullThroughCacheRules || [])[0];
    stats = (o.rules || []).find((r) => r.prefix === editing) || null;
    if (!rule) throw new ApiError(404, 'PullThroughCacheRuleNotFoundException', `There is no rule with the prefix ${editing}.`);
  }
  const host = ctx.registryHost();
  container.appendChild(h('nav', {class: 'breadcrumbs', 'aria-label': 'Breadcrumbs'},
    h('a', {href: '#/rules'}, 'Pull through cache'), ' / ', editing ? `Edit ${editing}` : 'Create rule'));
  container.appendChild(pageHeader(editing ? `Edit rule ${editing}` : 'Create a pull through cache rule',
    editing ? 'Every setting of the rule can change here except its prefix; to change that, create a new rule. Test the connection before saving.'
      : 'Choose the upstream, the prefix its repositories get in Pier, and — if the upstream needs them — credentials.'));

  const status = h('div', {class: 'form-status', role: 'alert'});
  const form = h('form', {class: 'form', novalidate: true});
  const errors = new Map(); // input → message element

  const typeSelect = h('select', {name: 'upstreamRegistry'},
    UPSTREAMS.map((u) => h('option', {value: u.id}, u.name)));
  const url = h('input', {type: 'text', name: 'upstreamRegistryUrl', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off'});
  const prefix = h('input', {type: 'text', name: 'ecrRepositoryPrefix', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', maxlength: '30'});
  const upPrefix = h('input', {type: 'text', name: 'upstreamRepositoryPrefix', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', placeholder: 'ROOT'});
  const budget = h('input', {type: 'text', name: 'maxBytes', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', inputmode: 'text', placeholder: 'e.g. 50 GiB'});
  const refresh = h('input', {type: 'text', name: 'refreshInterval', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', placeholder: '24h'});
  const negative = h('input', {type: 'text', name: 'negativeCache', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', placeholder: '5m'});
  const caBundle = h('textarea', {name: 'caBundle', rows: '4', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', class: 'ca-bundle', placeholder: '-----BEGIN CERTIFICATE-----'});
  const removeCreds = h('input', {type: 'checkbox', name: 'removeCredentials'});
  const mirrors = h('input', {type: 'text', name: 'mirrorRegistries', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', placeholder: 'e.g. docker.io'});
  const defaultMirror = h('input', {type: 'checkbox', name: 'defaultMirror', id: nextId('defmirror')});
  const username = h('input', {type: 'text', name: 'username', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off'});
  const token = h('input', {type: 'password', name: 'accessToken', autocomplete: 'new-password'});
  const typeNote = h('p', {class: 'help', id: nextId('note')});
  const preview = h('div', {class: 'preview', 'aria-live': 'polite'});
  let prefixTouched = Boolean(editing);

  function fieldError(input, text) {
    let el = errors.get(input);
    if (!el) {
      const f = input.closest('.field');
      if (!text || !f) return;
      el = h('p', {class: 'field-error', id: `${input.id}-error`});
      errors.set(input, el);
      f.appendChild(el);
    }
    el.textContent = text || '';
    el.hidden = !text;
    if (text) {
      input.setAttribute('aria-invalid', 'true');
      const ids = new Set((input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean));
      ids.add(el.id);
      input.setAttribute('aria-describedby', [...ids].join(' '));
    } else {
      input.removeAttribute('aria-invalid');
    }
  }

  function current() {
    return UPSTREAMS.find((u) => u.id === typeSelect.value) || UPSTREAMS[UPSTREAMS.length - 1];
  }

  function updatePreview() {
    clear(preview);
    const u = current();
    const p = prefix.value.trim();
    const up = upPrefix.value.trim();
    const example = u.example;
    const local = p && p !== 'ROOT' ? `${p}/${example}` : example;
    const upstreamRepo = up && up !== 'ROOT' ? `${up}/${example}` : example;
    const upstreamUrl = (url.value.trim() || '<registry URL>').replace(/^https?:\/\//, '');
    preview.append(h('p', {class: 'preview-title'}, 'Pulling through this rule'),
      h('code', {class: 'block'}, `docker pull ${host}/${local}:latest`),
      h('p', {class: 'small muted'}, 'fetches ', h('code', `${upstreamUrl}/${upstreamRepo}:latest`), ' the first time.'));
  }

  function applyType() {
    const u = current();
    typeNote.textContent = u.note || '';
    typeNote.hidden = !u.note;
    if (!editing) {
      url.value = u.url;
      url.readOnly = !u.editable;
      url.placeholder = u.id === 'oci' ? 'https://registry.example.com' : '';
      if (!prefixTouched) prefix.value = u.prefix;
    }
    updatePreview();
  }

  typeSelect.addEventListener('change', () => {
    applyType();
    if (current().editable) {
      url.focus();
      if (current().id === 'azure-container-registry') url.setSelectionRange(0, 0);
    }
  });
  prefix.addEventListener('input', () => {
    prefixTouched = true;
    fieldError(prefix, null);
    updatePreview();
  });
  for (const i of [url, upPrefix]) i.addEventListener('input', () => { fieldError(i, null); updatePreview(); });
  for (const i of [budget, refresh, negative, caBundle, mirrors]) i.addEventListener('input', () => fieldError(i, null));
  defaultMirror.addEventListener('change', () => fieldError(defaultMirror, null));
  removeCreds.addEventListener('change', () => {
    username.disabled = token.disabled = removeCreds.checked;
    if (removeCreds.checked) username.value = token.value = '';
  });

  const credsHelpText = editing
    ? (stats && stats.hasCredentials
      ? 'The rule has credentials. They are never shown; enter both fields to replace them, leave them empty to keep them, or remove them.'
      : 'The rule has no credentials. Enter both fields to add them.')
    : 'Written once to a Secrets Manager secret named ecr-pullthroughcache/<prefix>; Pier never shows them again.';

  if (editing) {
    typeSelect.value = UPSTREAMS.some((u) => u.id === rule.upstreamRegistry) ? rule.upstreamRegistry : 'oci';
    url.value = rule.upstreamRegistryUrl;
    prefix.value = rule.ecrRepositoryPrefix;
    upPrefix.value = rule.upstreamRepositoryPrefix || 'ROOT';
    budget.value = rule.pierMaxBytes ? sizeText(rule.pierMaxBytes) : '';
    refresh.value = durationText(rule.pierRefreshSeconds ?? 86400);
    negative.value = durationText(rule.pierNegativeSeconds ?? 300);
    caBundle.value = rule.pierCaBundle || '';
    mirrors.value = (rule.mirrorRegistries || []).join(', ');
    defaultMirror.checked = Boolean(rule.defaultMirror);
    form.append(h('dl', {class: 'facts'},
      h('dt', 'Prefix'), h('dd', prefixLabel(rule.ecrRepositoryPrefix)),
      h('dt', 'Upstream'), h('dd', upstreamName(rule.upstreamRegistry), ' ', h('code', rule.upstreamRegistryUrl)),
      h('dt', 'Credentials'), h('dd', stats && stats.hasCredentials
        ? [badge('Set', 'ok'), rule.credentialArn ? [' ', h('code', {class: 'small'}, rule.credentialArn)] : ' (stored with the rule)']
        : h('span', {class: 'muted'}, 'None')),
      h('dt', 'Created'), h('dd', time(rule.createdAt)),
      h('dt', 'Upstream health'), h('dd', {class: 'rule-health'}, healthView(rule.pierUpstreamHealth, false))));
    form.append(field('Registry URL', url,
      'A new URL points the rule at another upstream: tags are asked from it on their next pull, and the old upstream\'s tokens are forgotten.'));
  } else {
    form.append(
      field('Upstream registry', typeSelect, null),
      typeNote,
      field('Registry URL', url, 'The address Pier pulls from.'),
      field('Repository prefix', prefix,
        ['Repositories in Pier named ', h('code', '<prefix>/…'), ' come from this upstream. 2–30 characters: a-z, 0-9, ',
          h('code', '. _ - /'), '; or ', h('code', 'ROOT'), ' for names without a prefix.']));
  }
  form.append(field('Upstream repository prefix', upPrefix,
    ['Only upstream repositories under this path are reachable; ', h('code', 'ROOT'), ' (or empty) means all.'],
    {optional: true}));
  form.append(field('Cache budget', budget,
    ['The most this rule\'s images may take on the blob root (a layer they share counted once), e.g. ',
      h('code', '50 GiB'), ' or ', h('code', '512M'), '. Above it, the least recently pulled images are removed and fetched ',
      'again on their next pull; images pulled within the last minute stay. Empty: no budget.',
      stats ? [' Now cached: ', bytes(stats.bytesCached), '.'] : null],
    {optional: true}));
  form.append(h('div', {class: 'field-pair'},
    field('Refresh interval', refresh,
      ['How long a cached tag is served before Pier asks the upstream again, e.g. ', h('code', '24h'), ', ',
        h('code', '30m'), '; ', h('code', '0'), ': ask on every pull.']),
    field('Not-found cache time', negative,
      ['How long "not found upstream" is remembered, e.g. ', h('code', '5m'), '; ', h('code', '0'), ': not at all (at most 7 days).'])));
  form.append(field('CA bundle', caBundle,
    ['PEM certificates Pier trusts for this upstream\'s TLS (a private CA) instead of the system\'s. ',
      'Empty: the system\'s only', editing && rule.pierCaBundle ? ' — emptying it removes the rule\'s bundle' : '', '.'],
    {optional: true}));
  form.append(h('fieldset', {class: 'fieldset mirror-fieldset'},
    h('legend', {}, 'Mirror mode', h('span', {class: 'optional'}, ' – optional')),
    field('Mirror of registries', mirrors,
      ['Registries whose images this rule serves to nodes that use Pier as their mirror (containerd, dockerd, ',
        'podman), comma-separated, e.g. ', h('code', 'docker.io'), '. A registry is mirrored by one rule at most.']),
    h('div', {class: 'field'}, h('div', {class: 'check-field'}, defaultMirror,
      h('label', {for: defaultMirror.id}, 'Default mirror',
        h('span', {class: 'muted'}, ' — also answer names without a prefix and without a registry (dockerd\'s registry-mirrors); one rule at most'))))));
  const credsFields = h('div', {class: 'field-pair'},
    field('Username', username),
    field('Access token or password', token));
  form.append(h('fieldset', {class: 'fieldset'},
    h('legend', {}, editing ? 'Replace credentials' : 'Upstream credentials', h('span', {class: 'optional'}, ' – optional')),
    h('p', {class: 'help'}, credsHelpText),
    credsFields,
    editing && stats && stats.hasCredentials
      ? h('label', {class: 'checkbox'}, removeCreds, ' Remove the credentials: the rule pulls anonymously') : null));
  form.append(preview);
  const submit = h('button', {type: 'submit', class: 'button button-primary'}, editing ? 'Save changes' : 'Create rule');
  const testButton = h('button', {type: 'button', class: 'button', name: 'testConnection'}, 'Test connection');
  const testResult = h('div', {class: 'test-result', 'aria-live': 'polite'});
  form.append(testResult);
  form.append(h('div', {class: 'form-actions'}, submit, testButton, h('a', {class: 'button', href: '#/rules'}, 'Cancel')));
  container.append(status, form);
  applyType();

  // Try what the form holds, saving nothing: the URL, the credentials typed (or the rule's own
  // when editing), the CA bundle.
  testButton.addEventListener('click', () => busy(testButton, 'Testing…', async () => {
    clear(testResult);
    const u = url.value.trim();
    if (!u) {
      fieldError(url, 'Enter the registry URL.');
      url.focus();
      return;
    }
    const user = username.value.trim();
    if (Boolean(user) !== Boolean(token.value)) {
      fieldError(user ? token : username, 'Enter both the username and the access token, or neither.');
      return;
    }
    const input = {upstreamRegistryUrl: u};
    if (editing) input.ecrRepositoryPrefix = editing;
    if (user) Object.assign(input, {username: user, accessToken: token.value});
    if (removeCreds.checked) input.pierRemoveCredentials = true;
    input.pierCaBundle = caBundle.value.trim();
    testResult.appendChild(notice('info', `Pier is contacting ${u}…`));
    try {
      const r = await api.test(input);
      const shown = {upstreamUrl: u, hasCredentials: Boolean(user) || (editing && stats && stats.hasCredentials && !removeCreds.checked)};
      const box = notice(r.isValid ? 'success' : 'error',
        r.isValid ? null : h('strong', {}, `${failureTitle(r.pierFailureClass, r.failure)}. `), validationText(shown, r));
      box.setAttribute('role', 'status');
      box.classList.add('test-connection-result');
      box.dataset.valid = String(Boolean(r.isValid));
      box.dataset.failureClass = r.pierFailureClass || '';
      clear(testResult).appendChild(box);
    } catch (e) {
      clear(testResult).appendChild(errorNotice(e, 'Testing the connection failed'));
    }
  }));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    for (const i of [url, prefix, upPrefix, budget, refresh, negative, caBundle, mirrors, defaultMirror, username, token]) fieldError(i, null);
    const p = prefix.value.trim();
    const up = upPrefix.value.trim() || 'ROOT';
    const user = username.value.trim();
    const secret = token.value;
    let bad = null;
    const problem = (input, text) => {
      fieldError(input, text);
      if (!bad) bad = input;
    };
    {
      const pp = editing ? null : prefixProblem(p);
      if (pp) problem(prefix, pp);
      const u = url.value.trim();
      if (!u) problem(url, 'Enter the registry URL.');
      else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(u) && !/^https?:\/\//i.test(u)) problem(url, 'Use https:// (the default when left out), or http:// for a registry on this host.');
      else if (current().id === 'azure-container-registry' && /^\.azurecr\.io$/.test(u)) problem(url, 'Type your registry name in front of .azurecr.io.');
    }
    if (up !== 'ROOT' && !/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(up)) {
      problem(upPrefix, 'Use ROOT or a repository path such as library or team/images (a-z, 0-9, . _ - /).');
    }
    const budgetText = budget.value.trim();
    const maxBytes = budgetText ? parseSize(budgetText) : 0;
    if (maxBytes === null) problem(budget, 'Enter a size such as 50 GiB, 512 MiB or 1073741824 (bytes), or leave it empty for no budget.');
    else if (maxBytes && (maxBytes < BUDGET_MIN || maxBytes > BUDGET_MAX)) problem(budget, 'A budget must be at least 1 MiB and at most 1 EiB.');
    const refreshSecs = refresh.value.trim() ? parseDuration(refresh.value) : 86400;
    if (refreshSecs === null || refreshSecs > 365 * 86400) problem(refresh, 'Enter a duration such as 24h, 30m, 600 (seconds) or 0, at most 365d.');
    const negativeSecs = negative.value.trim() ? parseDuration(negative.value) : 300;
    if (negativeSecs === null || negativeSecs > 7 * 86400) problem(negative, 'Enter a duration such as 5m, 30s or 0, at most 7d.');
    const pem = caBundle.value.trim();
    if (pem && !pem.includes('-----BEGIN CERTIFICATE-----')) problem(caBundle, 'Paste PEM certificates (-----BEGIN CERTIFICATE----- …), or leave it empty.');
    const mirrorList = parseMirrors(mirrors.value);
    if (mirrorList.problem) problem(mirrors, mirrorList.problem);
    if (Boolean(user) !== Boolean(secret)) problem(user ? token : username, 'Enter both the username and the access token, or neither.');
    if (bad) {
      bad.focus();
      return;
    }
    await busy(submit, editing ? 'Saving…' : 'Creating…', async () => {
      try {
        if (editing) {
          const input = {ecrRepositoryPrefix: editing};
          let changed = false;
          if (up !== (rule.upstreamRepositoryPrefix || 'ROOT')) {
            input.upstreamRepositoryPrefix = up;
            changed = true;
          }
          if (maxBytes !== (rule.pierMaxBytes || 0)) {
            input.pierMaxBytes = maxBytes; // 0 removes the budget
            changed = true;
          }
          if (refreshSecs !== (rule.pierRefreshSeconds ?? 86400)) {
            input.pierRefreshSeconds = refreshSecs;
            changed = true;
          }
          if (negativeSecs !== (rule.pierNegativeSeconds ?? 300)) {
            input.pierNegativeSeconds = negativeSecs;
            changed = true;
          }
          if (pem !== (rule.pierCaBundle || '').trim()) {
            input.pierCaBundle = pem; // '' removes the bundle
            changed = true;
          }
          if (url.value.trim() !== rule.upstreamRegistryUrl) {
            input.pierUpstreamRegistryUrl = url.value.trim();
            changed = true;
          }
          const had = rule.mirrorRegistries || [];
          if (mirrorList.list.join(',') !== had.join(',')) {
            input.mirrorRegistries = mirrorList.list; // [] clears them
            changed = true;
          }
          if (defaultMirror.checked !== Boolean(rule.defaultMirror)) {
            input.defaultMirror = defaultMirror.checked;
            changed = true;
          }
          if (removeCreds.checked) {
            input.pierRemoveCredentials = true;
            changed = true;
          } else if (user) {
            input.credentialArn = await replaceCredentials(editing, rule.credentialArn, user, secret);
            changed = true;
          }
          if (!changed) {
            status.appendChild(notice('info', 'Nothing changed.'));
            return;
          }
          await api.ecr('UpdatePullThroughCacheRule', input);
          token.value = '';
          ctx.flash('success', `The rule ${editing} was saved.`);
          ctx.navigate(`#/rules?rule=${encodeURIComponent(editing)}`);
        } else {
          const input = {ecrRepositoryPrefix: p, upstreamRegistryUrl: url.value.trim()};
          // ECR's upstreamRegistry has no value for "any other registry": left out, Pier infers it.
          if (current().id !== 'oci') input.upstreamRegistry = current().id;
          if (up !== 'ROOT') input.upstreamRepositoryPrefix = up;
          if (maxBytes) input.pierMaxBytes = maxBytes;
          if (refreshSecs !== 86400) input.pierRefreshSeconds = refreshSecs;
          if (negativeSecs !== 300) input.pierNegativeSeconds = negativeSecs;
          if (pem) input.pierCaBundle = pem;
          if (mirrorList.list.length) input.mirrorRegistries = mirrorList.list;
          if (defaultMirror.checked) input.defaultMirror = true;
          // A taken prefix is refused before any secret is written.
          let taken = false;
          try {
            const existing = await ecrAll('DescribePullThroughCacheRules', {}, 'pullThroughCacheRules');
            taken = existing.some((r) => r.ecrRepositoryPrefix === p);
          } catch (e) {
            if (e instanceof ApiError && e.type === 'SessionExpired') throw e;
            // Not allowed to list rules: CreatePullThroughCacheRule will say it.
          }
          if (taken) {
            throw new ApiError(400, 'PullThroughCacheRuleAlreadyExistsException', `A rule with the prefix ${p} exists already.`);
          }
          if (user) input.credentialArn = await createSecret(p, user, secret);
          try {
            await api.ecr('CreatePullThroughCacheRule', input);
          } catch (e) {
            if (input.credentialArn) await deleteSecret(input.credentialArn);
            throw e;
          }
          token.value = '';
          ctx.flash('success', `The rule ${p} was created. Use Validate to check that Pier reaches the upstream.`);
          ctx.navigate(`#/rules?rule=${encodeURIComponent(p)}`);
        }
      } catch (e) {
        const msg = e.message || '';
        const target = /^ecrRepositoryPrefix|prefix \S+ already exists/.test(msg) || e.type === 'PullThroughCacheRuleAlreadyExistsException' ? prefix
          : /^upstreamRegistryUrl|^pierUpstreamRegistryUrl|upstream URL/i.test(msg) ? url
            : /^upstreamRepositoryPrefix/.test(msg) ? upPrefix
              : /^pierMaxBytes|byte budget/.test(msg) ? budget
                : /^pierRefreshSeconds|refresh interval/.test(msg) ? refresh
                  : /^pierNegativeSeconds|negative-cache/.test(msg) ? negative
                    : /^pierCaBundle|CA bundle/.test(msg) ? caBundle
                      : /already the default mirror/.test(msg) ? defaultMirror
                        : /mirrored registry|already mirrored|^mirrorRegistries/.test(msg) ? mirrors : null;
        if (target && !(editing && target === prefix)) {
          fieldError(target, msg);
          target.focus();
        } else {
          status.appendChild(errorNotice(e, editing ? 'The rule was not saved' : 'The rule was not created'));
          status.scrollIntoView({block: 'nearest'});
        }
      }
    });
  });
}
