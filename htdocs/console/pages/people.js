// Users and access keys: the principals of the registry (users and roles),
// their access keys and identity policies, and login passwords — through the
// console API's iam/<Op> operations, authorized for the session's principal.
// A secret (an access key's, a login password) is shown once, by the page
// that made it, and is never asked for again: Pier cannot answer it twice.

import {api, ApiError} from '../api.js';
import {
  h, clear, pageHeader, field, notice, errorNotice, badge, time, confirmDialog, busy, copyButton,
} from '../dom.js';
import {policyEditor} from '../editor.js';
import {policyActions} from './permissions.js';

const NAME_RE = /^[A-Za-z0-9+=,.@_-]{1,64}$/;

function personHref(name) {
  return `#/people/${encodeURIComponent(name)}`;
}

/** A table cell with its column's name (shown beside the value when rows stack on narrow screens). */
function cell(tag, label, attrs, ...content) {
  return h(tag, Object.assign({'data-label': label}, attrs), h('div', {}, ...content));
}

function keyStatus(k) {
  return k.active ? badge('Active', 'ok') : badge('Inactive', 'warning', 'Signs nothing until it is activated again');
}

/** The one-time display of a secret: the values to copy, a warning, a dismiss button. */
function secretPanel({title, rows, warning, onDismiss}) {
  const dismiss = h('button', {type: 'button', class: 'button'}, 'I have saved it');
  const panel = h('section', {class: 'secret-panel', role: 'region', 'aria-label': title},
    h('h2', {}, title),
    notice('warning', h('span', {}, h('strong', 'This is the only time the secret is shown. '), warning)),
    h('dl', {class: 'secret-list'}, rows.map(([label, value, secret]) => [
      h('dt', {}, label),
      h('dd', {},
        h('input', {type: 'text', readonly: true, value, class: ['mono', secret ? 'secret-value' : null],
          'aria-label': label, spellcheck: 'false', autocomplete: 'off'}),
        copyButton(value, `Copy ${label.toLowerCase()}`)),
    ])),
    h('div', {class: 'form-actions'}, dismiss));
  dismiss.addEventListener('click', () => {
    panel.remove();
    if (onDismiss) onDismiss();
  });
  return panel;
}

async function listUsers() {
  const r = await api.iam('ListUsers', {});
  return r.Users || [];
}

export async function peoplePage(container) {
  const users = await listUsers();
  container.appendChild(pageHeader('Users and access keys',
    ['Users and roles sign in and sign requests with their access keys; their identity policies say what they may do. ',
      'Changes apply on every node within a second.']));

  // ---- create ----
  const status = h('div', {class: 'form-status', role: 'alert'});
  const name = h('input', {type: 'text', name: 'userName', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
    maxlength: '64'});
  const role = h('input', {type: 'checkbox', name: 'role', id: 'create-role'});
  const withKey = h('input', {type: 'checkbox', name: 'withKey', id: 'create-key', checked: true});
  const submit = h('button', {type: 'submit', class: 'button button-primary'}, 'Create user');
  const form = h('form', {class: 'form create-user', novalidate: true, 'aria-labelledby': 'create-user-heading'},
    h('h2', {id: 'create-user-heading'}, 'Create user'),
    status,
    field('User name', name, 'Letters, digits and +=,.@_- (at most 64). The ARN is arn:aws:iam::<account>:user/<name>.'),
    h('div', {class: 'check-field'}, role, h('label', {for: 'create-role'}, 'A role (a workload\'s identity) instead of a user')),
    h('div', {class: 'check-field'}, withKey, h('label', {for: 'create-key'}, 'Create its first access key')),
    h('div', {class: 'form-actions'}, submit));
  const created = h('div', {});
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clear(status);
    clear(created);
    const n = name.value.trim();
    name.removeAttribute('aria-invalid');
    if (!NAME_RE.test(n)) {
      name.setAttribute('aria-invalid', 'true');
      status.appendChild(notice('error', 'User name: 1 to 64 letters, digits and +=,.@_-.'));
      name.focus();
      return;
    }
    busy(submit, 'Creating…', async () => {
      try {
        await api.iam('CreateUser', {UserName: n, Role: role.checked});
      } catch (e) {
        status.appendChild(errorNotice(e, 'The user was not created'));
        name.focus();
        return;
      }
      let key = null;
      if (withKey.checked) {
        try {
          key = (await api.iam('CreateAccessKey', {UserName: n})).AccessKey;
        } catch (e) {
          status.appendChild(errorNotice(e, `${n} was created, but its access key was not`));
        }
      }
      name.value = '';
      await refreshTable();
      if (key) {
        created.appendChild(keySecretPanel(key));
        created.querySelector('h2').setAttribute('tabindex', '-1');
        created.querySelector('h2').focus();
      } else {
        status.appendChild(notice('success', h('span', {}, `${n} was created. `,
          h('a', {href: personHref(n)}, 'Add access keys and policies'), '.')));
      }
    });
  });

  // ---- the table ----
  const tableBox = h('div', {});
  const renderTable = (list) => {
    clear(tableBox);
    if (!list.length) {
      tableBox.appendChild(h('div', {class: 'empty'}, 'There are no users.'));
      return;
    }
    const rows = list.map((u) => h('tr', {dataset: {user: u.name}},
      cell('th', 'User', {scope: 'row'},
        h('a', {href: personHref(u.name)}, u.name), ' ',
        u.role ? badge('Role', 'neutral') : null,
        u.you ? badge('You', 'ok', 'The user this session belongs to') : null,
        h('div', {class: 'small muted arn'}, u.arn)),
      cell('td', 'Access keys', {}, u.accessKeys.length
        ? h('ul', {class: 'key-list'}, u.accessKeys.map((k) => h('li', {},
          h('code', {}, k.accessKeyId), ' ', keyStatus(k),
          h('span', {class: 'small muted'}, ' created ', time(k.createdAt), ', last used ', time(k.lastUsedAt, 'never')))))
        : h('span', {class: 'muted'}, 'none')),
      cell('td', 'Identity policies', {}, u.policies.length ? u.policies.map((p) => h('span', {class: 'kv'}, p)) : h('span', {class: 'muted'}, 'none')),
      cell('td', 'Created', {class: 'nowrap'}, time(u.createdAt))));
    tableBox.appendChild(h('div', {class: 'table-wrap'},
      h('table', {class: 'table people-table stack-table'},
        h('caption', {class: 'visually-hidden'}, 'Users and roles'),
        h('thead', {}, h('tr', {},
          h('th', {scope: 'col'}, 'User'), h('th', {scope: 'col'}, 'Access keys'),
          h('th', {scope: 'col'}, 'Identity policies'), h('th', {scope: 'col'}, 'Created'))),
        h('tbody', {}, rows))));
  };
  const refreshTable = async () => renderTable(await listUsers());
  renderTable(users);

  container.append(h('div', {class: 'people-grid'}, h('div', {class: 'people-main'}, tableBox),
    h('div', {class: 'people-side'}, form, created)));
}

function keySecretPanel(key) {
  return secretPanel({
    title: `Access key for ${key.UserName}`,
    warning: 'Copy the secret access key now and keep it somewhere safe: Pier stores only a hash of it and cannot show it again. Lost it? Create another key and delete this one.',
    rows: [['Access key ID', key.AccessKeyId, false], ['Secret access key', key.SecretAccessKey, true]],
  });
}

async function getPolicy(user, policyName) {
  try {
    const r = await api.iam('GetUserPolicy', {UserName: user, PolicyName: policyName});
    return r.PolicyDocument;
  } catch (e) {
    if (e instanceof ApiError && e.type === 'NoSuchEntityException') return null;
    throw e;
  }
}

export async function personPage(container, {params, ctx}) {
  const userName = params[0];
  const users = await listUsers();
  const u = users.find((x) => x.name === userName);
  if (!u) {
    container.appendChild(pageHeader('No such user'));
    container.appendChild(notice('error', h('span', {}, `There is no user or role named ${userName}. `,
      h('a', {href: '#/people'}, 'Back to users and access keys'), '.')));
    return;
  }
  const deleteUser = h('button', {type: 'button', class: 'button button-danger-quiet'}, u.role ? 'Delete role…' : 'Delete user…');
  container.appendChild(pageHeader(u.name, [h('a', {href: '#/people'}, 'Users and access keys'), ' › ',
    u.role ? 'role ' : 'user ', h('span', {class: 'mono wrap-anywhere'}, u.arn),
    u.you ? ' — the user you are signed in as.' : ''], deleteUser));
  const pageStatus = h('div', {class: 'section-status', role: 'alert'});
  container.appendChild(pageStatus);
  if (u.you) {
    deleteUser.disabled = true;
    deleteUser.title = 'You cannot delete the user you are signed in as.';
  }
  deleteUser.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete ${u.name}?`,
      body: h('div', {},
        h('p', {}, `Its ${u.accessKeys.length} access key(s), identity policies, console sessions and login passwords stop working at once.`),
        h('p', {}, 'Policies that name its ARN keep their text.')),
      action: u.role ? 'Delete role' : 'Delete user',
      danger: true,
    });
    if (!ok) {
      deleteUser.focus();
      return;
    }
    try {
      await api.iam('DeleteUser', {UserName: u.name});
      ctx.flash('success', `${u.name} was deleted.`);
      ctx.navigate('#/people');
    } catch (e) {
      clear(pageStatus).appendChild(errorNotice(e, `${u.name} was not deleted`));
    }
  });

  // ---- access keys ----
  const keysSection = h('section', {class: 'section', 'aria-labelledby': 'keys-heading'});
  const keysStatus = h('div', {class: 'section-status', role: 'alert'});
  const secretBox = h('div', {});
  const newKey = h('button', {type: 'button', class: 'button button-primary'}, 'Create access key');
  const keysTable = h('div', {});
  const activeCount = () => u.accessKeys.filter((k) => k.active).length;
  const renderKeys = () => {
    clear(keysTable);
    if (!u.accessKeys.length) {
      keysTable.appendChild(h('div', {class: 'empty'}, `${u.name} has no access keys: it can sign in only with a login password.`));
      return;
    }
    const rows = u.accessKeys.map((k) => {
      const lastOwn = u.you && k.active && activeCount() <= 1;
      const toggle = h('button', {type: 'button', class: 'button button-small',
        'aria-label': `${k.active ? 'Deactivate' : 'Activate'} access key ${k.accessKeyId}`}, k.active ? 'Deactivate' : 'Activate');
      const del = h('button', {type: 'button', class: 'button button-small button-danger-quiet',
        'aria-label': `Delete access key ${k.accessKeyId}`}, 'Delete');
      if (lastOwn) {
        for (const b of [toggle, del]) {
          b.disabled = true;
          b.title = 'Your last active key: without it you could not sign in again. Create another key first.';
        }
      }
      toggle.addEventListener('click', () => busy(toggle, null, async () => {
        clear(keysStatus);
        try {
          await api.iam('UpdateAccessKey', {UserName: u.name, AccessKeyId: k.accessKeyId, Status: k.active ? 'Inactive' : 'Active'});
          k.active = !k.active;
          renderKeys();
          keysStatus.appendChild(notice('success', `Access key ${k.accessKeyId} is ${k.active ? 'active again' : 'inactive: it signs nothing until it is activated'}.`));
        } catch (e) {
          keysStatus.appendChild(errorNotice(e, `Access key ${k.accessKeyId} was not changed`));
        }
      }));
      del.addEventListener('click', async () => {
        const ok = await confirmDialog({
          title: `Delete access key ${k.accessKeyId}?`,
          body: h('p', {}, 'Clients using it, and login passwords and console sessions made with it, stop working at once. This cannot be undone.'),
          action: 'Delete key',
          danger: true,
        });
        if (!ok) {
          del.focus();
          return;
        }
        clear(keysStatus);
        try {
          await api.iam('DeleteAccessKey', {UserName: u.name, AccessKeyId: k.accessKeyId});
          u.accessKeys = u.accessKeys.filter((x) => x !== k);
          renderKeys();
          keysStatus.appendChild(notice('success', `Access key ${k.accessKeyId} was deleted.`));
          newKey.focus();
        } catch (e) {
          keysStatus.appendChild(errorNotice(e, `Access key ${k.accessKeyId} was not deleted`));
        }
      });
      return h('tr', {dataset: {key: k.accessKeyId}},
        cell('th', 'Access key ID', {scope: 'row'}, h('code', {}, k.accessKeyId)),
        cell('td', 'Status', {}, keyStatus(k)),
        cell('td', 'Created', {class: 'nowrap'}, time(k.createdAt)),
        cell('td', 'Last used', {class: 'nowrap'}, time(k.lastUsedAt, 'never')),
        h('td', {class: 'actions', 'data-label': 'Actions'}, h('div', {class: 'button-row'}, toggle, del)));
    });
    keysTable.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'table keys-table stack-table'},
      h('caption', {class: 'visually-hidden'}, `Access keys of ${u.name}`),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Access key ID'), h('th', {scope: 'col'}, 'Status'),
        h('th', {scope: 'col'}, 'Created'), h('th', {scope: 'col'}, 'Last used'),
        h('th', {scope: 'col', class: 'actions-col'}, h('span', {class: 'visually-hidden'}, 'Actions')))),
      h('tbody', {}, rows))));
  };
  newKey.addEventListener('click', () => busy(newKey, 'Creating…', async () => {
    clear(keysStatus);
    clear(secretBox);
    try {
      const key = (await api.iam('CreateAccessKey', {UserName: u.name})).AccessKey;
      u.accessKeys.push({accessKeyId: key.AccessKeyId, active: true, createdAt: key.CreateDate, lastUsedAt: 0});
      renderKeys();
      secretBox.appendChild(keySecretPanel(key));
      const h2 = secretBox.querySelector('h2');
      h2.setAttribute('tabindex', '-1');
      h2.focus();
    } catch (e) {
      keysStatus.appendChild(errorNotice(e, 'The access key was not created'));
    }
  }));
  renderKeys();
  keysSection.append(
    h('div', {class: 'section-head'}, h('h2', {id: 'keys-heading'}, 'Access keys'), h('div', {class: 'toolbar'}, newKey)),
    h('p', {class: 'help section-note'}, 'Use an access key ID and its secret as user name and password with docker, podman and skopeo, or as AWS credentials with the aws CLI. A deactivated key signs nothing until it is activated again.'),
    keysStatus, secretBox, keysTable);
  container.appendChild(keysSection);

  // ---- identity policies ----
  const polSection = h('section', {class: 'section', 'aria-labelledby': 'policies-heading'});
  const polStatus = h('div', {class: 'section-status', role: 'alert'});
  const chooser = h('select', {name: 'policy'});
  const newName = h('input', {type: 'text', name: 'policyName', spellcheck: 'false', autocomplete: 'off',
    maxlength: '128', placeholder: 'e.g. pull-only'});
  const editorBox = h('div', {});
  let policies = u.policies.slice();
  const fillChooser = (selected) => {
    clear(chooser);
    for (const p of policies) chooser.appendChild(h('option', {value: p, selected: p === selected}, p));
    chooser.appendChild(h('option', {value: ''}, 'New policy…'));
    if (!policies.includes(selected)) chooser.value = '';
  };
  const newNameField = field('Policy name', newName, 'A name of your choice, unique for this user (at most 128 characters).');
  const openPolicy = async (policyName) => {
    clear(editorBox);
    clear(polStatus);
    newNameField.hidden = Boolean(policyName);
    const text = policyName ? await getPolicy(u.name, policyName) : null;
    const editor = policyEditor({label: policyName ? `Identity policy ${policyName} (JSON)` : 'New identity policy (JSON)', rows: 14,
      placeholder: '{\n  "Version": "2012-10-17",\n  "Statement": [ … ]\n}'});
    const actions = policyActions({
      editor,
      what: 'identity policy',
      load: () => (policyName ? getPolicy(u.name, policyName) : Promise.resolve(null)),
      save: async (doc) => {
        const n = policyName || newName.value.trim();
        if (!n) throw new ApiError(400, 'InvalidParameterException', 'PolicyName: name the policy first (the field above).');
        if (!policyName && policies.includes(n)) {
          throw new ApiError(400, 'EntityAlreadyExistsException',
            `${u.name} already has a policy named ${n}: choose it above to edit it, or pick another name.`);
        }
        await api.iam('PutUserPolicy', {UserName: u.name, PolicyName: n, PolicyDocument: doc});
        if (!policyName) {
          policies = policies.concat([n]).sort();
          fillChooser(n);
          await openPolicy(n);
          clear(polStatus).appendChild(notice('success', `Policy ${n} is attached to ${u.name}. Pier applies it within a second.`));
        }
      },
      remove: async () => {
        await api.iam('DeleteUserPolicy', {UserName: u.name, PolicyName: policyName});
        policies = policies.filter((p) => p !== policyName);
        fillChooser('');
        await openPolicy('');
        clear(polStatus).appendChild(notice('success', `Policy ${policyName} was detached from ${u.name} and deleted.`));
      },
    });
    editor.value = text || (policyName ? '' : '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {\n      "Effect": "Allow",\n      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],\n      "Resource": "*"\n    }\n  ]\n}');
    actions.setSaved(policyName ? text : null);
    editorBox.append(editor.el, actions.el);
  };
  chooser.addEventListener('change', () => openPolicy(chooser.value).catch((e) => {
    clear(polStatus).appendChild(errorNotice(e, 'The policy could not be read'));
  }));
  fillChooser(policies[0] || '');
  polSection.append(
    h('div', {class: 'section-head'}, h('h2', {id: 'policies-heading'}, 'Identity policies')),
    h('p', {class: 'help section-note'}, ['What ', u.name, ' may do, besides what the registry and repository policies grant it. At most 10 policies; ',
      h('code', 'ecr:'), ', ', h('code', 'secretsmanager:'), ' and ', h('code', 'iam:'), ' actions.']),
    polStatus,
    field('Policy', chooser),
    newNameField,
    editorBox);
  container.appendChild(polSection);
  await openPolicy(policies[0] || '');

  // ---- login password ----
  const pwSection = h('section', {class: 'section', 'aria-labelledby': 'pw-heading'});
  const pwStatus = h('div', {class: 'section-status', role: 'alert'});
  const hours = h('input', {type: 'text', inputmode: 'numeric', name: 'hours', value: '12', class: 'short-input'});
  const mint = h('button', {type: 'button', class: 'button'}, 'Create login password');
  const pwBox = h('div', {});
  mint.addEventListener('click', () => busy(mint, 'Creating…', async () => {
    clear(pwStatus);
    clear(pwBox);
    const n = Number(hours.value.trim());
    hours.removeAttribute('aria-invalid');
    if (!Number.isInteger(n) || n < 1 || n > 720) {
      hours.setAttribute('aria-invalid', 'true');
      pwStatus.appendChild(notice('error', 'Valid for: a whole number of hours from 1 to 720.'));
      hours.focus();
      return;
    }
    try {
      const pw = (await api.iam('CreateLoginPassword', {UserName: u.name, Hours: n})).LoginPassword;
      const until = new Date(pw.ExpiresAt * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
      pwBox.appendChild(secretPanel({
        title: `Login password for ${u.name}`,
        warning: `It is valid until ${until}${u.you ? ' (at most as long as this session) and ends with the access key this session was opened with' : ' and ends only when it expires or the user is deleted'}. Log in with the user name AWS.`,
        rows: [['User name', 'AWS', false], ['Password', pw.Password, true],
          ['Command', `docker login --username AWS --password-stdin ${ctx.registryHost()}`, false]],
      }));
      const h2 = pwBox.querySelector('h2');
      h2.setAttribute('tabindex', '-1');
      h2.focus();
    } catch (e) {
      pwStatus.appendChild(errorNotice(e, 'No login password was created'));
    }
  }));
  pwSection.append(
    h('div', {class: 'section-head'}, h('h2', {id: 'pw-heading'}, 'Login password')),
    h('p', {class: 'help section-note'}, ['A password for ', h('code', 'docker login -u AWS'),
      ' and for the console\'s sign-in, as ', h('code', 'pierctl login-password'), ' makes it.']),
    pwStatus,
    h('div', {class: 'inline-form'}, field('Valid for (hours)', hours), mint),
    pwBox);
  container.appendChild(pwSection);
}
