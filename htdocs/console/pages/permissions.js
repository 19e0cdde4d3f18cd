// Registry permissions: the registry policy as JSON text, and the
// pull-through-cache statement helper that writes ECR's statement into it.

import {api, ApiError} from '../api.js';
import {h, clear, pageHeader, field, notice, errorNotice, confirmDialog, busy, nextId} from '../dom.js';
import {policyEditor} from '../editor.js';
import {
  ptcStatement, addStatement, splitPrincipals, principalProblem, sidProblem, patternProblem, repositoryArn,
  JsonSyntaxError, PTC_ACTIONS,
} from '../policy.js';

// Unsaved text survives a visit to another page (not a reload).
let draft = null; // {text, saved}

const POLICY_ERRORS = new Set(['InvalidParameterException', 'ValidationException']);

/** Save/Delete/Revert of a policy held by an editor; shared with the repository page. */
export function policyActions({editor, load, save, remove, what, onSaved}) {
  let saved = '';
  const dirtyNote = h('span', {class: 'dirty-note', hidden: true}, 'Unsaved changes');
  const saveBtn = h('button', {type: 'button', class: 'button button-primary'}, 'Save policy');
  const formatBtn = h('button', {type: 'button', class: 'button'}, 'Format JSON');
  const revertBtn = h('button', {type: 'button', class: 'button'}, 'Revert');
  const deleteBtn = h('button', {type: 'button', class: 'button button-danger-quiet'}, 'Delete policy');
  const out = h('div', {class: 'policy-result'});

  const setDirty = () => {
    dirtyNote.hidden = editor.value === saved;
    revertBtn.disabled = editor.value === saved;
  };
  editor.onInput(setDirty);

  saveBtn.addEventListener('click', () => busy(saveBtn, 'Saving…', async () => {
    clear(out);
    const text = editor.value;
    if (!text.trim()) {
      editor.showError(`The ${what} is empty. Write a policy, or use Delete policy to remove it.`);
      return;
    }
    try {
      await save(text);
      saved = text;
      setDirty();
      editor.clearError();
      editor.clearAdded();
      editor.setStatus(`Saved. Pier applies the ${what} within a second.`, 'ok');
      deleteBtn.disabled = false;
      if (onSaved) onSaved(text);
    } catch (e) {
      if (e instanceof ApiError && POLICY_ERRORS.has(e.type)) editor.showError(e.message);
      else out.appendChild(errorNotice(e, `The ${what} was not saved`));
    }
  }));

  formatBtn.addEventListener('click', () => {
    if (editor.format()) editor.setStatus('Formatted.', null);
    setDirty();
  });

  revertBtn.addEventListener('click', () => busy(revertBtn, 'Reverting…', async () => {
    clear(out);
    try {
      const text = await load();
      saved = text === null ? '' : text;
      editor.value = saved;
      setDirty();
      editor.setStatus(text === null ? `There is no ${what}.` : `Reverted to the saved ${what}.`, null);
      deleteBtn.disabled = text === null;
    } catch (e) {
      out.appendChild(errorNotice(e, `The ${what} could not be read`));
    }
  }));

  deleteBtn.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete the ${what}?`,
      body: h('p', {}, `Principals whose access comes from the ${what} lose it at once.`),
      action: 'Delete policy',
      danger: true,
    });
    if (!ok) {
      deleteBtn.focus();
      return;
    }
    clear(out);
    try {
      await remove();
      saved = '';
      editor.value = '';
      setDirty();
      deleteBtn.disabled = true;
      editor.setStatus(`The ${what} was deleted.`, 'ok');
      if (onSaved) onSaved('');
    } catch (e) {
      out.appendChild(errorNotice(e, `The ${what} was not deleted`));
    }
  });

  return {
    el: h('div', {},
      h('div', {class: 'toolbar'}, saveBtn, formatBtn, revertBtn, dirtyNote, h('span', {class: 'spacer'}), deleteBtn),
      out),
    /** The text as last loaded or saved (null: no policy). */
    setSaved(text) {
      saved = text === null ? '' : text;
      deleteBtn.disabled = text === null;
      setDirty();
    },
    get saved() { return saved; },
  };
}

async function getRegistryPolicy() {
  try {
    const r = await api.ecr('GetRegistryPolicy', {});
    return r.policyText;
  } catch (e) {
    if (e instanceof ApiError && e.type === 'RegistryPolicyNotFoundException') return null;
    throw e;
  }
}

export async function permissionsPage(container, {ctx}) {
  const [policyText, overview, reg] = await Promise.all([
    getRegistryPolicy(),
    api.overview().catch(() => ({rules: []})),
    ctx.registry(),
  ]);
  const rules = overview.rules || [];

  container.appendChild(pageHeader('Registry permissions',
    ['The registry policy grants principals actions on this registry\'s repositories. Principals that pull through a cache rule need ',
      h('code', PTC_ACTIONS[0]), ' and ', h('code', PTC_ACTIONS[1]), ' on the repositories the rule creates.']));

  let afterSave = () => {};

  // ---- the editor ----
  const editor = policyEditor({label: 'Registry policy (JSON)', rows: 20,
    placeholder: '{\n  "Version": "2012-10-17",\n  "Statement": [ … ]\n}'});
  const actions = policyActions({
    editor,
    what: 'registry policy',
    load: getRegistryPolicy,
    save: (text) => api.ecr('PutRegistryPolicy', {policyText: text}),
    remove: () => api.ecr('DeleteRegistryPolicy', {}),
    onSaved: () => {
      draft = null;
      afterSave();
    },
  });
  if (draft && draft.saved === (policyText || '') && draft.text !== draft.saved) {
    editor.value = draft.text;
    editor.setStatus('Your unsaved edits are back. Revert discards them.', 'warning');
  } else {
    editor.value = policyText || '';
    if (policyText === null) editor.setStatus('The registry has no policy yet. Write one, or add a statement with the helper.', null);
  }
  actions.setSaved(policyText);
  ctx.onLeave(() => {
    draft = editor.value !== actions.saved ? {text: editor.value, saved: actions.saved} : null;
  });
  const editorCard = h('section', {class: 'card policy-card', 'aria-labelledby': 'policy-heading'},
    h('h2', {id: 'policy-heading'}, 'Policy'),
    editor.el, actions.el);

  // ---- the helper ----
  const helperStatus = h('div', {class: 'helper-status', role: 'alert'});
  const sid = h('input', {type: 'text', name: 'sid', spellcheck: 'false', autocomplete: 'off', maxlength: '128'});
  const principals = h('textarea', {name: 'principals', rows: '3', spellcheck: 'false', autocapitalize: 'off',
    class: 'mono', placeholder: `arn:aws:iam::${reg.account}:user/ci`});
  const ruleSelect = h('select', {name: 'rule'},
    rules.map((r) => h('option', {value: r.prefix}, `${r.prefix === 'ROOT' ? 'ROOT (no prefix)' : r.prefix} — ${r.upstreamUrl}`)));
  const pattern = h('input', {type: 'text', name: 'pattern', value: '*', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', class: 'mono'});
  const resource = h('code', {class: 'block small', id: nextId('arn')});
  const addBtn = h('button', {type: 'submit', class: 'button button-primary'}, 'Add statement to policy');
  let sidTouched = false;

  const defaultSid = () => `PullThroughCache-${(ruleSelect.value || 'rule').replace(/[^A-Za-z0-9._-]/g, '-')}`;
  const updateResource = () => {
    resource.textContent = repositoryArn(reg.region, reg.account, ruleSelect.value || '<prefix>', pattern.value.trim() || '<pattern>');
    if (!sidTouched) sid.value = defaultSid();
  };
  sid.addEventListener('input', () => { sidTouched = true; });
  ruleSelect.addEventListener('change', updateResource);
  pattern.addEventListener('input', updateResource);
  updateResource();

  const helper = h('form', {class: 'helper-form', novalidate: true},
    helperStatus,
    field('Statement ID', sid, 'Adding a statement with an ID that is already in the policy replaces it.'),
    field('Principals', principals, 'IAM users or roles that pull through the cache: one ARN per line.'),
    rules.length
      ? field('Pull through cache rule', ruleSelect)
      : notice('warning', 'There are no pull through cache rules yet. ', h('a', {href: '#/rules/new'}, 'Create a rule'), ' first.'),
    field('Repository pattern', pattern, ['After the prefix, e.g. ', h('code', 'docker/*'), ' or ', h('code', 'library/nginx'),
      '; ', h('code', '*'), ' allows every repository under the prefix.']),
    h('div', {class: 'field'}, h('span', {class: 'label-like'}, 'Resource'), resource),
    h('div', {class: 'form-actions'}, addBtn));
  if (!rules.length) addBtn.disabled = true;
  afterSave = () => clear(helperStatus);

  helper.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clear(helperStatus);
    const problems = [];
    const list = splitPrincipals(principals.value);
    const s = sidProblem(sid.value.trim());
    if (s) problems.push([sid, `Statement ID: ${s}.`]);
    if (!list.length) problems.push([principals, 'Principals: enter at least one IAM user or role ARN.']);
    for (const p of list) {
      const pp = principalProblem(p);
      if (pp) problems.push([principals, `Principals: ${pp}.`]);
    }
    if (!ruleSelect.value) problems.push([ruleSelect, 'Choose a pull through cache rule.']);
    const pt = patternProblem(pattern.value.trim());
    if (pt) problems.push([pattern, `Repository pattern: ${pt}.`]);
    for (const input of [sid, principals, pattern]) input.removeAttribute('aria-invalid');
    if (problems.length) {
      helperStatus.appendChild(notice('error', h('ul', {class: 'plain'}, problems.map(([, m]) => h('li', m)))));
      for (const [input] of problems) input.setAttribute('aria-invalid', 'true');
      problems[0][0].focus();
      return;
    }
    const statement = ptcStatement({sid: sid.value.trim(), principals: list, prefix: ruleSelect.value,
      pattern: pattern.value.trim(), region: reg.region, account: reg.account});
    try {
      const r = addStatement(editor.value, statement);
      editor.setWithAdded(r.text, r.start, r.end);
      editor.setStatus(`Statement ${statement.Sid} ${r.replaced ? 'replaced' : 'added'} (highlighted). Save policy to apply it.`, 'warning');
      helperStatus.appendChild(notice('success',
        `Statement ${statement.Sid} ${r.replaced ? 'replaced' : 'added'} in the policy text. Review it and choose Save policy.`));
    } catch (e) {
      if (e instanceof JsonSyntaxError) {
        editor.checkSyntax();
        helperStatus.appendChild(notice('error', 'The policy text is not valid JSON; fix the marked place first.'));
      } else {
        helperStatus.appendChild(notice('error', e.message));
      }
    }
  });

  const helperCard = h('section', {class: 'card helper-card', 'aria-labelledby': 'helper-heading'},
    h('h2', {id: 'helper-heading'}, 'Pull through cache statement'),
    h('p', {class: 'help'}, 'Lets principals create repositories and import images through a rule — the statement ECR\'s "Generate statement" writes.'),
    helper);

  container.appendChild(h('div', {class: 'permissions-grid'}, editorCard, helperCard));
}
