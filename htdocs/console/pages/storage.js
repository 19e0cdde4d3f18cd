// Storage: the blob root, bytes per rule and per repository, what garbage
// collection would free, the last sweeps, and a repository's lifecycle policy
// with its preview.

import {api, ApiError} from '../api.js';
import {h, clear, pageHeader, notice, errorNotice, bytes, formatCount, formatDuration, time, shortDigest, busy, confirmDialog} from '../dom.js';
import {imageHref} from './image.js';

export async function storagePage(container, {query}) {
  const d = await api.storage();
  container.appendChild(pageHeader('Storage',
    `Blobs that no manifest references are removed by garbage collection once nothing has linked them for ${formatDuration(d.gcGrace)} (gc_grace). ` +
    (d.gcInterval ? `The nodes sweep every ${formatDuration(d.gcInterval)} (gc_interval); pierctl gc sweeps now.` : 'Sweeps run only with pierctl gc (gc_interval is 0).')));

  const used = d.diskBytes !== undefined ? d.diskBytes - d.diskFreeBytes : null;
  container.appendChild(h('div', {class: 'tiles'},
    h('div', {class: 'tile'}, h('div', {class: 'tile-value'}, bytes(d.blobBytes)),
      h('div', {class: 'tile-label'}, `in ${formatCount(d.blobs)} ${d.blobs === 1 ? 'blob' : 'blobs'}`)),
    h('div', {class: 'tile', id: 'reclaimable'}, h('div', {class: 'tile-value'}, bytes(d.reclaimableBytes)),
      h('div', {class: 'tile-label'}, `reclaimable (${formatCount(d.reclaimableBlobs)} unreferenced ${d.reclaimableBlobs === 1 ? 'blob' : 'blobs'})`)),
    used !== null ? h('div', {class: 'tile'}, h('div', {class: 'tile-value'}, bytes(d.diskFreeBytes)),
      h('div', {class: 'tile-label'}, ['free on the blob root\u2019s filesystem of ', bytes(d.diskBytes), '; ', bytes(used), ' used'])) : null,
    h('div', {class: 'tile', id: 'pushed-cached'}, h('div', {class: 'tile-value'}, bytes(d.pushedBytes)),
      h('div', {class: 'tile-label'}, ['pushed; ', bytes(d.cacheBytes), ' cached through rules']))));

  container.appendChild(rulesSection(d));
  container.appendChild(repositoriesSection(d));

  const sweeps = d.sweeps || [];
  container.appendChild(h('section', {class: 'section', 'aria-labelledby': 'sweeps-title'},
    h('h2', {id: 'sweeps-title'}, 'Last garbage-collection sweeps'),
    sweeps.length ? sweepsTable(sweeps) : h('p', {class: 'empty'}, 'No sweep has run yet.')));
  container.appendChild(lifecycleSection(d, query));
}

function sweepsTable(sweeps) {
  const table = h('table', {class: 'table sweeps-table', 'aria-labelledby': 'sweeps-title'},
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, 'Started'),
      h('th', {scope: 'col'}, 'Node'),
      h('th', {scope: 'col'}, 'Removed'),
      h('th', {scope: 'col'}, 'Links'),
      h('th', {scope: 'col'}, 'Skipped (busy)'),
      h('th', {scope: 'col'}, 'Duration'),
      h('th', {scope: 'col'}, 'Result'))));
  const tbody = h('tbody');
  for (const s of sweeps) {
    tbody.appendChild(h('tr', {},
      h('td', {}, time(s.startedAt)),
      h('td', {}, s.node),
      h('td', {}, [bytes(s.bytes), ` in ${formatCount(s.blobs)} ${s.blobs === 1 ? 'blob' : 'blobs'}`]),
      h('td', {}, formatCount(s.links)),
      h('td', {}, formatCount(s.busy)),
      h('td', {}, s.durationMs < 0 ? 'did not finish' : `${formatCount(s.durationMs)} ms`),
      h('td', {}, s.error ? h('span', {class: 'error-text'}, s.error)
        : (s.dryRun ? 'dry run' : (s.finished ? `done; finished ${formatCount(s.finished)} interrupted` : 'done')))));
  }
  table.appendChild(tbody);
  return h('div', {class: 'table-wrap'}, table);
}

// ---- bytes per rule ----------------------------------------------------------

function rulesSection(d) {
  const rules = d.rules || [];
  const sec = h('section', {class: 'section', 'aria-labelledby': 'rule-bytes-title'},
    h('h2', {id: 'rule-bytes-title'}, 'Bytes per pull through cache rule'));
  if (d.cacheMaxBytes) {
    sec.appendChild(h('p', {class: 'help'}, ['All rules together hold ', bytes(d.cacheBytes), ' of a registry-wide budget of ',
      bytes(d.cacheMaxBytes), ' (cache_max_bytes).']));
  }
  if (!rules.length) {
    sec.appendChild(h('p', {class: 'empty'}, 'There are no pull through cache rules.'));
    return sec;
  }
  sec.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'table rule-bytes-table', 'aria-labelledby': 'rule-bytes-title'},
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, 'Rule'), h('th', {scope: 'col', class: 'num'}, 'Repositories'),
      h('th', {scope: 'col', class: 'num'}, 'Cached'), h('th', {scope: 'col'}, 'Budget'),
      h('th', {scope: 'col', class: 'num', title: 'Bytes the rule\u2019s budget removed'}, 'Reclaimed'), h('th', {scope: 'col'}, 'Oldest pull'))),
    h('tbody', {}, rules.map((r) => h('tr', {dataset: {rule: r.prefix}},
      h('th', {scope: 'row'}, h('a', {href: `#/rules?rule=${encodeURIComponent(r.prefix)}`}, r.prefix)),
      h('td', {class: 'num'}, formatCount(r.repositories)),
      h('td', {class: 'num'}, bytes(r.bytesCached)),
      h('td', {}, r.maxBytes ? [h('meter', {class: 'budget-meter', min: '0', max: String(r.maxBytes), value: String(Math.min(r.bytesCached, r.maxBytes)),
        high: String(Math.floor(r.maxBytes * 0.9)), 'aria-label': `${r.prefix}: cached bytes of the budget`}),
      bytes(r.maxBytes), r.bytesCached > r.maxBytes ? h('span', {class: 'error-text'}, ' over') : null] : h('span', {class: 'muted'}, 'none')),
      h('td', {class: 'num'}, bytes(r.bytesReclaimed)),
      h('td', {}, time(r.oldestLastPull, '—'))))))));
  return sec;
}

// ---- bytes per repository (sortable) ----------------------------------------

const COLUMNS = [
  {key: 'name', label: 'Repository', num: false},
  {key: 'bytes', label: 'Bytes', num: true},
  {key: 'blobs', label: 'Blobs', num: true},
  {key: 'images', label: 'Images', num: true},
];

function repositoriesSection(d) {
  let repos = (d.repositories || []).slice();
  const search = h('input', {type: 'search', id: 'storage-repo-search', placeholder: 'Name contains…',
    spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off'});
  const count = h('p', {class: 'result-count', role: 'status', 'aria-live': 'polite'});
  const empty = h('p', {class: 'empty'}, 'No repository holds bytes, or none you may describe.');
  const sec = h('section', {class: 'section', 'aria-labelledby': 'repo-bytes-title'},
    h('h2', {id: 'repo-bytes-title'}, `Repositories holding the most bytes (top ${d.repositoriesShown})`),
    h('p', {class: 'help'}, 'A layer two repositories hold counts in both. Pick a column heading to sort.'),
    h('div', {class: 'filters', role: 'search'},
      h('div', {class: 'field field-inline'}, h('label', {for: 'storage-repo-search'}, 'Search'), search), count));
  let sortKey = 'bytes';
  let desc = true;
  const tbody = h('tbody');
  const heads = COLUMNS.map((col) => {
    const btn = h('button', {type: 'button', class: 'sort-button', dataset: {sort: col.key}}, col.label);
    const th = h('th', {scope: 'col', class: col.num ? 'num' : null}, btn);
    btn.addEventListener('click', () => {
      desc = sortKey === col.key ? !desc : col.num;
      sortKey = col.key;
      draw();
    });
    return th;
  });
  function draw() {
    repos.sort((a, b) => {
      const x = a[sortKey];
      const y = b[sortKey];
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return desc ? -c : c;
    });
    COLUMNS.forEach((col, i) => {
      if (col.key === sortKey) heads[i].setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      else heads[i].removeAttribute('aria-sort');
    });
    clear(tbody);
    for (const r of repos) {
      tbody.appendChild(h('tr', {dataset: {repository: r.name}},
        h('th', {scope: 'row'}, h('a', {href: `#/repositories/${encodeURIComponent(r.name)}`}, r.name),
          r.cache ? h('span', {class: 'small muted'}, r.rule ? ` cache, rule ${r.rule}` : ' cache') : null),
        h('td', {class: 'num'}, bytes(r.bytes)),
        h('td', {class: 'num'}, formatCount(r.blobs)),
        h('td', {class: 'num'}, formatCount(r.images))));
    }
  }
  const wrap = h('div', {class: 'table-wrap'}, h('table', {class: 'table repo-bytes-table', 'aria-labelledby': 'repo-bytes-title'},
    h('thead', {}, h('tr', {}, heads)), tbody));
  function show() {
    draw();
    wrap.hidden = !repos.length;
    empty.hidden = !!repos.length;
  }
  show();
  sec.append(wrap, empty);
  let timer = null;
  let seq = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      const q = search.value.trim();
      try {
        const fresh = await api.storage(q);
        if (mine !== seq) return;
        repos = (fresh.repositories || []).slice();
        count.textContent = q ? `${formatCount(repos.length)} ${repos.length === 1 ? 'repository' : 'repositories'} matching \u201c${q}\u201d` : '';
        show();
      } catch (e) {
        if (mine === seq) count.textContent = `The search failed: ${e.message}`;
      }
    }, 200);
  });
  return sec;
}

// ---- lifecycle policy editor with preview -------------------------------------

const EXAMPLE = `{"rules": [
  {"rulePriority": 1, "description": "untagged images go after 14 days",
   "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                 "countUnit": "days", "countNumber": 14},
   "action": {"type": "expire"}}
]}`;

function lifecycleSection(d, query) {
  const sec = h('section', {class: 'section', 'aria-labelledby': 'lifecycle-title'},
    h('h2', {id: 'lifecycle-title'}, 'Lifecycle policy of a repository'),
    h('p', {class: 'help'}, 'Which images of a repository expire (ECR\u2019s policy language). Preview shows what the text would expire now, without changing anything; every node\u2019s maintenance runs saved policies.'));
  const names = (d.repositories || []).map((r) => r.name).sort();
  const repoInput = h('input', {type: 'text', id: 'lifecycle-repo', list: 'lifecycle-repos', spellcheck: 'false',
    autocomplete: 'off', autocapitalize: 'off', value: query.get('lifecycle') || ''});
  const datalist = h('datalist', {id: 'lifecycle-repos'}, names.map((n) => h('option', {value: n})));
  const load = h('button', {type: 'button', class: 'button', id: 'lifecycle-load'}, 'Open');
  const text = h('textarea', {id: 'lifecycle-text', class: 'lifecycle-text', spellcheck: 'false', disabled: true,
    'aria-describedby': 'lifecycle-state'});
  const state = h('p', {class: 'help', id: 'lifecycle-state'}, 'Choose a repository and open its policy.');
  const preview = h('button', {type: 'button', class: 'button', id: 'lifecycle-preview', disabled: true}, 'Preview');
  const save = h('button', {type: 'button', class: 'button button-primary', id: 'lifecycle-save', disabled: true}, 'Save policy');
  const remove = h('button', {type: 'button', class: 'button button-danger-quiet', id: 'lifecycle-delete', disabled: true}, 'Delete policy…');
  const status = h('div', {role: 'status', class: 'section-status', id: 'lifecycle-status'});
  const results = h('div', {id: 'lifecycle-results'});
  let repo = null;

  sec.append(
    h('div', {class: 'lifecycle-tools'},
      h('div', {class: 'field'}, h('label', {for: 'lifecycle-repo'}, 'Repository'), repoInput, datalist), load),
    h('div', {class: 'field'}, h('label', {for: 'lifecycle-text'}, 'Policy (JSON)'), text, state),
    h('div', {class: 'toolbar'}, preview, save, remove), status, results);

  async function open() {
    const name = repoInput.value.trim();
    clear(status);
    clear(results);
    if (!name) {
      status.appendChild(notice('error', 'Enter a repository name.'));
      repoInput.focus();
      return;
    }
    await busy(load, 'Opening…', async () => {
      try {
        const r = await api.ecr('GetLifecyclePolicy', {repositoryName: name});
        text.value = r.lifecyclePolicyText ? JSON.stringify(JSON.parse(r.lifecyclePolicyText), null, 2) : '';
        state.textContent = `${name} has a policy${r.lastEvaluatedAt ? `; last run to its end ${new Date(r.lastEvaluatedAt * 1000).toISOString().replace('.000Z', 'Z')}` : ''}.`;
        remove.disabled = false;
      } catch (e) {
        if (!(e instanceof ApiError && e.type === 'LifecyclePolicyNotFoundException')) {
          status.appendChild(errorNotice(e, 'The policy could not be read'));
          return;
        }
        text.value = EXAMPLE;
        state.textContent = `${name} has no lifecycle policy: nothing expires. The text is an example; Preview shows what it would do.`;
        remove.disabled = true;
      }
      repo = name;
      text.disabled = false;
      preview.disabled = false;
      save.disabled = false;
      history.replaceState(null, '', `#/storage?lifecycle=${encodeURIComponent(name)}`);
    });
  }
  load.addEventListener('click', open);
  repoInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      open();
    }
  });

  preview.addEventListener('click', () => busy(preview, 'Previewing…', async () => {
    clear(status);
    clear(results);
    try {
      await api.ecr('StartLifecyclePolicyPreview', {repositoryName: repo, lifecyclePolicyText: text.value});
      let page = null;
      for (let i = 0; i < 20; i++) {
        page = await api.ecr('GetLifecyclePolicyPreview', {repositoryName: repo, maxResults: 100});
        if (page.status !== 'IN_PROGRESS') break;
        await new Promise((res) => setTimeout(res, 500));
      }
      const rows = page.previewResults || [];
      const total = (page.summary || {}).expiringImageTotalCount || 0;
      results.appendChild(h('p', {class: 'preview-summary', id: 'lifecycle-summary'},
        total ? `${formatCount(total)} ${total === 1 ? 'image' : 'images'} would expire now${rows.length < total ? ` (the first ${rows.length} listed)` : ''}.`
          : 'No image would expire now.'));
      if (rows.length) {
        results.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'table preview-table'},
          h('caption', {class: 'visually-hidden'}, 'Images the policy would expire'),
          h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Image'), h('th', {scope: 'col'}, 'Tags'),
            h('th', {scope: 'col'}, 'Pushed'), h('th', {scope: 'col', class: 'num'}, 'Rule'))),
          h('tbody', {}, rows.map((x) => h('tr', {dataset: {digest: x.imageDigest}},
            h('td', {}, h('a', {href: imageHref(repo, x.imageDigest), class: 'digest'}, shortDigest(x.imageDigest))),
            h('td', {}, (x.imageTags || []).length ? x.imageTags.map((t) => h('span', {class: 'tag'}, `${t} `)) : h('span', {class: 'muted'}, 'untagged')),
            h('td', {}, time(x.imagePushedAt)),
            h('td', {class: 'num'}, String(x.appliedRulePriority))))))));
      }
    } catch (e) {
      status.appendChild(errorNotice(e, 'The preview did not run'));
    }
  }));

  save.addEventListener('click', () => busy(save, 'Saving…', async () => {
    clear(status);
    try {
      await api.ecr('PutLifecyclePolicy', {repositoryName: repo, lifecyclePolicyText: text.value});
      status.appendChild(notice('success', `The lifecycle policy of ${repo} was saved; the next maintenance run applies it.`));
      state.textContent = `${repo} has a policy.`;
      remove.disabled = false;
    } catch (e) {
      status.appendChild(errorNotice(e, 'The policy was not saved'));
    }
  }));

  remove.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete the lifecycle policy of ${repo}?`,
      body: h('p', {}, 'No image of the repository expires any more until a policy is saved again.'),
      action: 'Delete policy',
      danger: true,
    });
    if (!ok) {
      remove.focus();
      return;
    }
    await busy(remove, 'Deleting…', async () => {
      clear(status);
      try {
        await api.ecr('DeleteLifecyclePolicy', {repositoryName: repo});
        text.value = EXAMPLE;
        state.textContent = `${repo} has no lifecycle policy: nothing expires.`;
        status.appendChild(notice('success', `The lifecycle policy of ${repo} was deleted.`));
      } catch (e) {
        status.appendChild(errorNotice(e, 'The policy was not deleted'));
      }
    });
  });
  if (repoInput.value) open();
  return sec;
}
