// Repository creation templates: settings Pier applies to repositories that
// a pull through cache rule or a push creates.

import {api, ApiError} from '../api.js';
import {h, clear, pageHeader, field, notice, errorNotice, badge, time, confirmDialog, busy, nextId} from '../dom.js';
import {policyEditor} from '../editor.js';

const APPLIED = [
  {id: 'PULL_THROUGH_CACHE', name: 'Pull through cache', help: 'repositories a cache rule creates'},
  {id: 'CREATE_ON_PUSH', name: 'Create on push', help: 'repositories a push creates'},
  {id: 'REPLICATION', name: 'Replication', help: 'stored only: Pier does not replicate'},
];

function appliedName(id) {
  const a = APPLIED.find((x) => x.id === id);
  return a ? a.name : id;
}

async function listTemplates() {
  const out = [];
  let nextToken;
  for (let i = 0; i < 20; i++) {
    const r = await api.ecr('DescribeRepositoryCreationTemplates', nextToken ? {nextToken} : {});
    out.push(...(r.repositoryCreationTemplates || []));
    nextToken = r.nextToken;
    if (!nextToken) break;
  }
  return out;
}

export async function templatesPage(container, {ctx}) {
  const templates = await listTemplates();
  container.appendChild(pageHeader('Repository creation templates',
    'When a pull through cache rule or a push creates a repository, the template with the longest matching prefix sets its tag mutability, encryption settings, repository policy and tags.',
    h('a', {class: 'button button-primary', href: '#/templates/new'}, 'Create template')));
  if (!templates.length) {
    container.appendChild(h('div', {class: 'empty'},
      h('p', {}, 'There are no creation templates: new repositories get Pier\'s defaults (mutable tags, AES256, no policy).'),
      h('p', {}, h('a', {class: 'button button-primary', href: '#/templates/new'}, 'Create the first template'))));
    return;
  }
  const status = h('div', {role: 'status'});
  container.appendChild(status);
  const rows = templates.map((t) => {
    const del = h('button', {type: 'button', class: 'button button-small button-danger-quiet',
      'aria-label': `Delete template ${t.prefix}`}, 'Delete');
    del.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: `Delete the template ${t.prefix}?`,
        body: h('p', {}, 'Repositories created from now on no longer get its settings. Existing repositories keep theirs.'),
        action: 'Delete template',
        danger: true,
      });
      if (!ok) {
        del.focus();
        return;
      }
      try {
        await api.ecr('DeleteRepositoryCreationTemplate', {prefix: t.prefix});
        ctx.flash('success', `The template ${t.prefix} was deleted.`);
        ctx.reload();
      } catch (e) {
        clear(status).appendChild(errorNotice(e, `Deleting ${t.prefix} failed`));
      }
    });
    const tags = t.resourceTags || [];
    return h('tr', {dataset: {prefix: t.prefix}},
      h('th', {scope: 'row'}, h('code', t.prefix), t.description ? h('div', {class: 'small muted'}, t.description) : null),
      h('td', {}, (t.appliedFor || []).map((a) => badge(appliedName(a), 'neutral'))),
      h('td', {}, t.imageTagMutability === 'IMMUTABLE' ? 'Immutable' : 'Mutable'),
      h('td', {}, (t.encryptionConfiguration || {}).encryptionType || 'AES256'),
      h('td', {}, tags.length ? tags.map((g) => h('span', {class: 'kv'}, `${g.Key}=${g.Value}`)) : h('span', {class: 'muted'}, 'None')),
      h('td', {}, t.repositoryPolicy ? 'Yes' : h('span', {class: 'muted'}, 'No')),
      h('td', {}, time(t.updatedAt || t.createdAt)),
      h('td', {class: 'actions'}, h('div', {class: 'button-row'},
        h('a', {class: 'button button-small', href: `#/templates/edit/${encodeURIComponent(t.prefix)}`,
          'aria-label': `Edit template ${t.prefix}`}, 'Edit'), del)));
  });
  container.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'table templates-table'},
    h('caption', {class: 'visually-hidden'}, 'Repository creation templates'),
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, 'Prefix'), h('th', {scope: 'col'}, 'Applied for'), h('th', {scope: 'col'}, 'Tag mutability'),
      h('th', {scope: 'col'}, 'Encryption'), h('th', {scope: 'col'}, 'Resource tags'), h('th', {scope: 'col'}, 'Policy'),
      h('th', {scope: 'col'}, 'Updated'), h('th', {scope: 'col', class: 'actions-col'}, h('span', {class: 'visually-hidden'}, 'Actions')))),
    h('tbody', {}, rows))));
}

export async function templateFormPage(container, {params, ctx}) {
  const editing = params.length ? params[0] : null;
  let tpl = null;
  if (editing) {
    const all = await listTemplates();
    tpl = all.find((t) => t.prefix === editing);
    if (!tpl) throw new ApiError(404, 'TemplateNotFoundException', `There is no template with the prefix ${editing}.`);
  }
  container.appendChild(h('nav', {class: 'breadcrumbs', 'aria-label': 'Breadcrumbs'},
    h('a', {href: '#/templates'}, 'Creation templates'), ' / ', editing ? `Edit ${editing}` : 'Create template'));
  container.appendChild(pageHeader(editing ? `Edit template ${editing}` : 'Create a repository creation template'));

  const status = h('div', {class: 'form-status', role: 'alert'});
  const prefix = h('input', {type: 'text', name: 'prefix', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
    value: editing || '', readonly: Boolean(editing)});
  const description = h('input', {type: 'text', name: 'description', maxlength: '256', value: (tpl && tpl.description) || ''});
  const applied = APPLIED.map((a) => {
    const box = h('input', {type: 'checkbox', name: 'appliedFor', value: a.id, id: nextId('applied'),
      checked: tpl ? (tpl.appliedFor || []).includes(a.id) : a.id === 'PULL_THROUGH_CACHE'});
    return {a, box, el: h('div', {class: 'check-field'}, box, h('label', {for: box.id}, a.name, h('span', {class: 'muted'}, ` — ${a.help}`)))};
  });
  const mutName = nextId('mut');
  const mutability = ['MUTABLE', 'IMMUTABLE'].map((m) => {
    const r = h('input', {type: 'radio', name: mutName, value: m, id: nextId('mut'),
      checked: ((tpl && tpl.imageTagMutability) || 'MUTABLE') === m});
    return {r, el: h('div', {class: 'check-field'}, r, h('label', {for: r.id}, m === 'MUTABLE' ? 'Mutable' : 'Immutable',
      h('span', {class: 'muted'}, m === 'MUTABLE' ? ' — a push may move a tag' : ' — a pushed tag never moves')))};
  });
  const enc = (tpl && tpl.encryptionConfiguration) || {encryptionType: 'AES256'};
  const encType = h('select', {name: 'encryptionType'}, h('option', {value: 'AES256'}, 'AES256'), h('option', {value: 'KMS'}, 'KMS'));
  encType.value = enc.encryptionType || 'AES256';
  const kmsKey = h('input', {type: 'text', name: 'kmsKey', spellcheck: 'false', value: enc.kmsKey || '', autocomplete: 'off'});
  const kmsField = field('KMS key', kmsKey, 'Stored with the repository; Pier has no KMS and does not act on it.', {optional: true});
  const syncKms = () => { kmsField.hidden = encType.value !== 'KMS'; };
  encType.addEventListener('change', syncKms);
  syncKms();

  // resource tags: key/value rows
  const tagRows = h('div', {class: 'tag-rows'});
  const addTagRow = (k, v) => {
    const key = h('input', {type: 'text', 'aria-label': 'Tag key', value: k || '', class: 'tag-key', spellcheck: 'false'});
    const val = h('input', {type: 'text', 'aria-label': 'Tag value', value: v || '', class: 'tag-value', spellcheck: 'false'});
    const rm = h('button', {type: 'button', class: 'button button-small button-quiet', 'aria-label': 'Remove this tag'}, 'Remove');
    const row = h('div', {class: 'tag-row'}, key, h('span', {'aria-hidden': 'true'}, '='), val, rm);
    rm.addEventListener('click', () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      (next ? next.querySelector('input') : addTag).focus();
    });
    tagRows.appendChild(row);
    return key;
  };
  for (const t of (tpl && tpl.resourceTags) || []) addTagRow(t.Key, t.Value);
  const addTag = h('button', {type: 'button', class: 'button button-small'}, 'Add tag');
  addTag.addEventListener('click', () => addTagRow().focus());

  const editor = policyEditor({label: ['Repository policy (JSON)', h('span', {class: 'optional'}, ' – optional')], rows: 10,
    placeholder: '{\n  "Version": "2012-10-17",\n  "Statement": [ … ]\n}'});
  editor.value = (tpl && tpl.repositoryPolicy) || '';

  const submit = h('button', {type: 'submit', class: 'button button-primary'}, editing ? 'Save changes' : 'Create template');
  const form = h('form', {class: 'form', novalidate: true},
    field('Prefix', prefix, editing ? 'The prefix of a template cannot change.'
      : ['Applies to new repositories whose names start with ', h('code', '<prefix>/'), '; ', h('code', 'ROOT'), ' applies to all of them.']),
    field('Description', description, null, {optional: true}),
    h('fieldset', {class: 'fieldset'}, h('legend', 'Applied for'), applied.map((x) => x.el)),
    h('fieldset', {class: 'fieldset'}, h('legend', 'Image tag mutability'), mutability.map((x) => x.el)),
    field('Encryption', encType, 'Stored with each repository; Pier stores blobs as they are.'),
    kmsField,
    h('fieldset', {class: 'fieldset'}, h('legend', 'Resource tags', h('span', {class: 'optional'}, ' – optional')), tagRows, addTag),
    h('div', {class: 'field'}, editor.el,
      h('p', {class: 'help'}, 'Set on each repository the template creates; leave it empty for none.')),
    h('div', {class: 'form-actions'}, submit, h('a', {class: 'button', href: '#/templates'}, 'Cancel')));
  container.append(status, form);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    const p = prefix.value.trim();
    const appliedFor = applied.filter((x) => x.box.checked).map((x) => x.a.id);
    const problems = [];
    if (!p) problems.push([prefix, 'Enter a prefix (or ROOT).']);
    else if (p !== 'ROOT' && !/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(p)) problems.push([prefix, 'The prefix may hold a-z, 0-9, and . _ - / between them; or ROOT.']);
    if (!appliedFor.length) problems.push([applied[0].box, 'Choose at least one of Applied for.']);
    const resourceTags = [];
    for (const row of tagRows.children) {
      const k = row.querySelector('.tag-key').value.trim();
      const v = row.querySelector('.tag-value').value;
      if (!k && !v) continue;
      if (!k) problems.push([row.querySelector('.tag-key'), 'Every resource tag needs a key.']);
      else resourceTags.push({Key: k, Value: v});
    }
    const policy = editor.value.trim();
    if (problems.length) {
      status.appendChild(notice('error', h('ul', {class: 'plain'}, problems.map(([, m]) => h('li', m)))));
      problems[0][0].focus();
      return;
    }
    if (!policy && tpl && tpl.repositoryPolicy) {
      // UpdateRepositoryCreationTemplate takes no empty policy (see docs/console.md).
      status.appendChild(notice('error', 'Pier cannot remove the repository policy of a template yet: put back a policy, or delete the template and create it again without one.'));
      editor.textarea.focus();
      return;
    }
    const input = {
      prefix: p,
      description: description.value,
      appliedFor,
      imageTagMutability: mutability.find((x) => x.r.checked).r.value,
      encryptionConfiguration: encType.value === 'KMS' && kmsKey.value.trim()
        ? {encryptionType: 'KMS', kmsKey: kmsKey.value.trim()} : {encryptionType: encType.value},
      resourceTags,
    };
    if (policy) input.repositoryPolicy = editor.value;
    await busy(submit, editing ? 'Saving…' : 'Creating…', async () => {
      try {
        await api.ecr(editing ? 'UpdateRepositoryCreationTemplate' : 'CreateRepositoryCreationTemplate', input);
        ctx.flash('success', `The template ${p} was ${editing ? 'saved' : 'created'}.`);
        ctx.navigate('#/templates');
      } catch (e) {
        if (e instanceof ApiError && /^repositoryPolicy: /.test(e.message)) {
          editor.showError(e.message);
        } else {
          status.appendChild(errorNotice(e, editing ? 'The template was not saved' : 'The template was not created'));
          status.scrollIntoView({block: 'nearest'});
        }
      }
    });
  });
}
