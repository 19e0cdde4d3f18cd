// Activity: the registry's audit trail (GET api/activity, the audit_events
// table — the same rows `pierctl audit` prints): who did what, when, from
// where, with what result. Filters live in the address, so a filtered view
// can be bookmarked and shared; "Older events" pages with the last event's
// cursor.

import {api} from '../api.js';
import {h, clear, pageHeader, field, notice, errorNotice, badge, busy} from '../dom.js';

const PAGE = 50;
const SINCE = [['', 'Any time'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']];
const ACTIONS = ['console:SignIn', 'console:SignOut', 'iam:*', 'iam:CreateUser', 'iam:CreateAccessKey', 'iam:UpdateAccessKey',
  'iam:DeleteAccessKey', 'iam:PutUserPolicy', 'iam:DeleteUserPolicy', 'iam:DeleteUser', 'iam:CreateLoginPassword',
  'ecr:*', 'ecr:BatchDeleteImage', 'ecr:PutImage', 'ecr:BatchImportUpstreamImage', 'ecr:CreateRepository',
  'ecr:DeleteRepository', 'ecr:PutRegistryPolicy', 'registry:DeleteManifest', 'secretsmanager:*'];

function filterHref(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `#/activity?${s}` : '#/activity';
}

/** "arn:aws:iam::1:user/alice" → "alice"; anything else as it is. */
function shortPrincipal(p) {
  const m = /^arn:aws:iam::[0-9]+:(user|role)\/(.+)$/.exec(p || '');
  return m ? m[2] : p;
}

function whenCell(iso) {
  const d = new Date(iso);
  const text = Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
  return h('time', {datetime: iso, title: iso}, text);
}

function resultCell(result) {
  if (!result || result === 'success') return badge('Success', 'ok');
  return h('span', {class: 'refusal'}, badge('Refused', 'refused', 'Pier refused this action'),
    h('span', {class: 'small refusal-type'}, ` ${result}`));
}

export async function activityPage(container, {query, ctx}) {
  const filters = {
    principal: query.get('principal') || '',
    repository: query.get('repository') || '',
    action: query.get('action') || '',
    since: query.get('since') || '',
  };
  container.appendChild(pageHeader('Activity',
    'Who did what, when, from where, with what result: control-plane changes, sign-ins, refusals, imports and deletes, from the registry\'s audit trail (plain pulls are not recorded). Times are UTC.'));

  // ---- filters ----
  const principal = h('input', {type: 'text', name: 'principal', value: filters.principal, spellcheck: 'false',
    autocapitalize: 'off', autocomplete: 'off', placeholder: 'user name or ARN'});
  const repository = h('input', {type: 'text', name: 'repository', value: filters.repository, spellcheck: 'false',
    autocapitalize: 'off', autocomplete: 'off', placeholder: 'e.g. docker/library/nginx'});
  const listId = 'activity-actions';
  const action = h('input', {type: 'text', name: 'action', value: filters.action, spellcheck: 'false',
    autocapitalize: 'off', autocomplete: 'off', list: listId, placeholder: 'e.g. iam:* or ecr:BatchDeleteImage'});
  const since = h('select', {name: 'since'}, SINCE.map(([v, label]) => h('option', {value: v, selected: v === filters.since}, label)));
  if (filters.since && !SINCE.some(([v]) => v === filters.since)) {
    since.appendChild(h('option', {value: filters.since, selected: true}, `Since ${filters.since}`));
  }
  const apply = h('button', {type: 'submit', class: 'button button-primary'}, 'Apply filters');
  const reset = h('a', {class: 'button', href: '#/activity'}, 'Clear');
  const form = h('form', {class: 'activity-filters', role: 'search', 'aria-label': 'Filter activity', novalidate: true},
    field('User', principal), field('Repository', repository), field('Action', action, 'A trailing * matches a prefix.'),
    field('Since', since),
    h('datalist', {id: listId}, ACTIONS.map((a) => h('option', {value: a}))),
    h('div', {class: 'form-actions'}, apply, reset));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.navigate(filterHref({principal: principal.value.trim(), repository: repository.value.trim(),
      action: action.value.trim(), since: since.value}));
  });
  container.appendChild(form);

  // ---- the table ----
  const status = h('div', {role: 'status', class: 'result-count'});
  const more = h('button', {type: 'button', class: 'button'}, 'Older events');
  const tbody = h('tbody', {});
  const table = h('div', {class: 'table-wrap'}, h('table', {class: 'table activity-table stack-table'},
    h('caption', {class: 'visually-hidden'}, 'Audit events, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Principal', 'Source', 'Action', 'Repository', 'Target', 'Result', 'Request ID']
      .map((c) => h('th', {scope: 'col'}, c)))),
    tbody));
  const errors = h('div', {});
  let cursor = '';
  let shown = 0;

  const row = (e) => {
    const refused = e.result && e.result !== 'success';
    const target = [e.resource && e.resource !== e.repository ? h('div', {class: 'small mono wrap-anywhere'}, e.resource) : null,
      e.target ? h('div', {class: 'mono wrap-anywhere'}, e.target) : null];
    // One child per cell, so that a stacked row (narrow screens) has its label and its value side by side.
    const cell = (label, attrs, ...content) => h('td', Object.assign({'data-label': label}, attrs), h('div', {}, ...content));
    return h('tr', {class: refused ? 'row-refused' : null, dataset: {action: e.action, result: e.result || 'success'}},
      cell('Time', {class: 'nowrap small'}, whenCell(e.time)),
      cell('Principal', {class: 'wrap-anywhere'}, e.principal
        ? h('a', {href: filterHref(Object.assign({}, filters, {principal: e.principal})), title: `${e.principal} (show only this principal)`},
          shortPrincipal(e.principal))
        : h('span', {class: 'muted'}, '—'),
      e.accessKeyId ? h('div', {class: 'small muted mono'}, e.accessKeyId) : null),
      cell('Source', {class: 'small mono'}, e.sourceAddress || h('span', {class: 'muted'}, '—')),
      cell('Action', {}, h('code', {}, e.action)),
      cell('Repository', {}, e.repository
        ? h('a', {href: filterHref(Object.assign({}, filters, {repository: e.repository})), title: 'Show only this repository',
          class: 'mono wrap-anywhere'}, e.repository)
        : h('span', {class: 'muted'}, '—')),
      cell('Target', {class: 'target-cell'}, target),
      cell('Result', {}, resultCell(e.result)),
      cell('Request ID', {class: 'small mono muted wrap-anywhere'}, e.requestId || '—'));
  };

  const load = async () => {
    const r = await api.activity(Object.assign({}, filters, {limit: String(PAGE), before: cursor}));
    const events = r.events || [];
    for (const e of events) tbody.appendChild(row(e));
    shown += events.length;
    if (events.length) cursor = events[events.length - 1].cursor;
    more.hidden = events.length < PAGE;
    const filtered = Object.values(filters).some(Boolean);
    status.textContent = shown
      ? `${shown} event${shown === 1 ? '' : 's'} shown, newest first${more.hidden ? '' : ' (more below)'}.`
      : (filtered ? 'No event matches these filters.' : 'The audit trail is empty.');
    table.hidden = shown === 0;
  };
  more.addEventListener('click', () => busy(more, 'Loading…', async () => {
    clear(errors);
    try {
      await load();
    } catch (e) {
      errors.appendChild(errorNotice(e, 'Older events could not be loaded'));
    }
  }));
  try {
    await load();
  } catch (e) {
    if (e.type === 'AccessDeniedException') {
      container.appendChild(notice('error', h('span', {}, h('strong', 'You may not read the audit trail. '),
        e.message)));
      return;
    }
    throw e;
  }
  container.append(status, table, errors, h('div', {class: 'after-table'}, more));
}
