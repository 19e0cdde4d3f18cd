// Repositories: search, and per repository its tags (digests, sizes,
// platforms, times, stale marks), image deletion and the repository policy.

import {api, ApiError} from '../api.js';
import {
  h, clear, pageHeader, notice, errorNotice, badge, bytes, time, formatCount, shortDigest, copyButton,
  confirmDialog, busy,
} from '../dom.js';
import {policyEditor} from '../editor.js';
import {policyActions} from './permissions.js';
import {upstreamName} from './rules.js';
import {imageHref} from './image.js';

function repoHref(name) {
  return `#/repositories/${encodeURIComponent(name)}`;
}

function sourceCell(repo) {
  if (!repo.cache) return h('span', {class: 'muted'}, 'Pushed');
  return h('span', {}, badge('Cache', 'cache', 'Created by a pull through cache rule'), ' ',
    repo.rule ? h('a', {href: `#/rules?rule=${encodeURIComponent(repo.rule)}`, class: 'small'}, `rule ${repo.rule}`)
      : h('span', {class: 'small muted'}, 'rule deleted'));
}

export async function repositoriesPage(container, {query, ctx, current}) {
  let q = query.get('q') || '';
  let kind = query.get('kind') || 'all';
  const search = h('input', {type: 'search', id: 'repo-search', value: q, placeholder: 'Name contains…',
    spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', 'aria-keyshortcuts': '/'});
  const kindSelect = h('select', {id: 'repo-kind'},
    h('option', {value: 'all'}, 'All repositories'),
    h('option', {value: 'cache'}, 'Cache repositories'),
    h('option', {value: 'pushed'}, 'Pushed repositories'));
  kindSelect.value = kind;
  const count = h('p', {class: 'result-count', role: 'status', 'aria-live': 'polite'});
  const results = h('div', {class: 'table-wrap'});

  container.appendChild(pageHeader('Repositories',
    'Repositories pushed to Pier and the ones pull through cache rules created. Press / to search.'));
  container.appendChild(h('div', {class: 'filters', role: 'search'},
    h('div', {class: 'field field-inline'}, h('label', {for: 'repo-search'}, 'Search'), search),
    h('div', {class: 'field field-inline'}, h('label', {for: 'repo-kind'}, 'Show'), kindSelect),
    count));
  container.appendChild(results);

  let loadSeq = 0;
  async function load() {
    const mine = ++loadSeq;
    let data;
    try {
      data = await api.repositories(q);
    } catch (e) {
      if (mine !== loadSeq) return;
      clear(results).appendChild(errorNotice(e, 'The repositories could not be listed'));
      count.textContent = '';
      return;
    }
    if (mine !== loadSeq || !current()) return;
    let list = data.repositories || [];
    if (kind === 'cache') list = list.filter((r) => r.cache);
    if (kind === 'pushed') list = list.filter((r) => !r.cache);
    count.textContent = `${formatCount(list.length)} ${list.length === 1 ? 'repository' : 'repositories'}${q ? ` matching “${q}”` : ''}${list.length >= 500 ? ' (the first 500)' : ''}`;
    clear(results);
    // The list holds only what the user may describe: an empty one is not "there are none".
    const denied = data.listDenied ? h('span', {class: 'list-denied'},
      list.length ? 'Only the repositories you may describe are listed. ' : 'You may not list repositories. ',
      'Listing every repository needs ', h('code', 'ecr:DescribeRepositories'), ': ', data.listDenied) : null;
    if (!list.length) {
      results.appendChild(denied ? notice('warning', denied)
        : h('p', {class: 'empty'}, q ? 'No repository name contains this text.' : 'There are no repositories yet.'));
      if (denied) count.textContent = '';
      return;
    }
    if (denied) results.appendChild(notice('info', denied));
    results.appendChild(h('table', {class: 'table repos-table'},
      h('caption', {class: 'visually-hidden'}, 'Repositories'),
      h('thead', {}, h('tr', {},
        h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Source'), h('th', {scope: 'col', class: 'num'}, 'Images'),
        h('th', {scope: 'col', class: 'num'}, 'Tags'), h('th', {scope: 'col', class: 'num'}, 'Pulls'), h('th', {scope: 'col'}, 'Created'))),
      h('tbody', {}, list.map((r) => h('tr', {dataset: {repository: r.name}},
        h('th', {scope: 'row'}, h('a', {href: repoHref(r.name)}, r.name)),
        h('td', {}, sourceCell(r)),
        h('td', {class: 'num'}, formatCount(r.images)),
        h('td', {class: 'num'}, formatCount(r.tags)),
        h('td', {class: 'num'}, formatCount(r.pulls)),
        h('td', {}, time(r.createdAt)))))));
  }

  const syncHash = () => {
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    if (kind !== 'all') params.set('kind', kind);
    const s = params.toString();
    history.replaceState(null, '', `#/repositories${s ? `?${s}` : ''}`);
  };
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      q = search.value.trim();
      syncHash();
      load();
    }, 200);
  });
  kindSelect.addEventListener('change', () => {
    kind = kindSelect.value;
    syncHash();
    load();
  });
  const slash = (ev) => {
    if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
    ev.preventDefault();
    search.focus();
    search.select();
  };
  document.addEventListener('keydown', slash);
  ctx.onLeave(() => document.removeEventListener('keydown', slash));
  await load();
}

// ---- one repository -----------------------------------------------------------

async function getRepositoryPolicy(name) {
  try {
    const r = await api.ecr('GetRepositoryPolicy', {repositoryName: name});
    return r.policyText;
  } catch (e) {
    if (e instanceof ApiError && e.type === 'RepositoryPolicyNotFoundException') return null;
    throw e;
  }
}

/** A repository URL whose repository does not exist: no page of an empty repository. */
function notFoundPage(container, name, message) {
  container.appendChild(h('nav', {class: 'breadcrumbs', 'aria-label': 'Breadcrumbs'},
    h('a', {href: '#/repositories'}, 'Repositories'), ' / ', name));
  container.appendChild(pageHeader('Repository not found'));
  container.appendChild(notice('warning', h('span', {class: 'not-found'},
    'There is no repository named ', h('code', name), ' in this registry. ', message)));
  container.appendChild(h('p', {}, h('a', {href: '#/repositories'}, 'Back to the repositories')));
}

export async function repositoryPage(container, {params, ctx}) {
  const name = params[0];
  // All three at once, as a reload after a delete must not be slower than needed.
  const [found, listing, overview] = await Promise.all([
    api.repository(name).then((detail) => ({detail}), (error) => ({error})),
    api.repositories(name).catch(() => ({repositories: []})),
    api.overview().catch(() => ({rules: []})),
  ]);
  const e = found.error;
  if (e instanceof ApiError && ['RepositoryNotFoundException', 'InvalidParameterException'].includes(e.type)) {
    notFoundPage(container, name, e.type === 'InvalidParameterException' ? 'It is not a valid repository name.' : '');
    return;
  }
  if (e) throw e;
  const detail = found.detail;
  const info = (listing.repositories || []).find((r) => r.name === name) || {name, cache: false};
  const rule = info.rule ? (overview.rules || []).find((r) => r.prefix === info.rule) : null;
  const host = ctx.registryHost();
  const tags = detail.tags || [];

  container.appendChild(h('nav', {class: 'breadcrumbs', 'aria-label': 'Breadcrumbs'},
    h('a', {href: '#/repositories'}, 'Repositories'), ' / ', name));
  const deleteRepoBtn = h('button', {type: 'button', class: 'button button-danger-quiet'}, 'Delete repository…');
  container.appendChild(pageHeader(name, null, [
    h('button', {type: 'button', class: 'button', onclick: () => ctx.reload()}, 'Refresh'), deleteRepoBtn]));
  const pageStatus = h('div', {role: 'status', class: 'section-status'});
  container.appendChild(pageStatus);
  deleteRepoBtn.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete the repository ${name}?`,
      body: [
        h('p', {}, `It holds ${formatCount(tags.length)} ${tags.length === 1 ? 'tag' : 'tags'}; the repository, its images and its policy are deleted.`),
        h('p', {}, info.cache
          ? 'The next pull through the rule creates the repository again and fetches from the upstream.'
          : 'This cannot be undone.'),
      ],
      action: 'Delete repository',
      danger: true,
    });
    if (!ok) {
      deleteRepoBtn.focus();
      return;
    }
    await busy(deleteRepoBtn, 'Deleting…', async () => {
      clear(pageStatus);
      try {
        await api.ecr('DeleteRepository', {repositoryName: name, force: true});
        ctx.flash('success', `The repository ${name} was deleted.`);
        ctx.navigate('#/repositories');
      } catch (e) {
        pageStatus.appendChild(errorNotice(e, 'The repository was not deleted'));
      }
    });
  });

  const facts = h('dl', {class: 'facts facts-inline'},
    h('dt', 'Source'), h('dd', info.cache
      ? [badge('Cache', 'cache'), ' ', rule
        ? ['rule ', h('a', {href: `#/rules?rule=${encodeURIComponent(rule.prefix)}`}, rule.prefix), ' from ',
          upstreamName(rule.upstreamRegistry), ' ', h('code', rule.upstreamUrl)]
        : (info.rule ? `rule ${info.rule}` : 'its rule was deleted')]
      : 'Pushed to Pier'),
    h('dt', 'URI'), h('dd', h('code', `${host}/${name}`), ' ', copyButton(`${host}/${name}`, 'Copy the repository URI')),
    info.createdAt ? [h('dt', 'Created'), h('dd', time(info.createdAt))] : null,
    h('dt', 'Pulls'), h('dd', formatCount(info.pulls)));
  container.appendChild(facts);

  // ---- images ----
  const section = h('section', {class: 'section', 'aria-labelledby': 'images-heading'});
  const status = h('div', {role: 'status', class: 'section-status'});
  const deleteBtn = h('button', {type: 'button', class: 'button button-danger-quiet', disabled: true}, 'Delete images…');
  const selCount = h('span', {class: 'muted small'});
  // Pier refuses deletes in cache repositories (their images come from the upstream).
  const canDelete = !info.cache;
  section.append(h('div', {class: 'section-head'},
    h('h2', {id: 'images-heading'}, `Images (${formatCount(tags.length)} ${tags.length === 1 ? 'tag' : 'tags'})`),
    canDelete ? h('div', {class: 'toolbar'}, selCount, deleteBtn) : null), status);
  if (!canDelete && tags.length) {
    section.appendChild(h('p', {class: 'help section-note'},
      'Images of a cache repository come from the upstream: Pier keeps them as they are (the refresh interval decides when a tag is checked again). A tag\u2019s page checks the upstream now or evicts the tag; to drop the whole cache, delete the repository.'));
  }

  const boxes = [];
  const updateSelection = () => {
    const n = boxes.filter((b) => b.checked).length;
    deleteBtn.disabled = n === 0;
    selCount.textContent = n ? `${n} selected` : '';
  };

  if (!tags.length) {
    section.appendChild(h('p', {class: 'empty'}, info.cache
      ? 'No tag is cached yet: pull one through the rule and it appears here.'
      : 'This repository has no tags.'));
  } else {
    const cache = info.cache;
    const all = h('input', {type: 'checkbox', 'aria-label': 'Select all tags'});
    const checkCell = (box) => (canDelete ? h('td', {class: 'check'}, box) : null);
    all.addEventListener('change', () => {
      for (const b of boxes) b.checked = all.checked;
      updateSelection();
    });
    const rows = tags.map((t) => {
      const box = h('input', {type: 'checkbox', 'aria-label': `Select ${t.tag}`, dataset: {digest: t.digest, tag: t.tag}});
      box.addEventListener('change', () => {
        all.checked = boxes.every((b) => b.checked);
        updateSelection();
      });
      boxes.push(box);
      const index = /index|list/.test(t.mediaType || '');
      return h('tr', {dataset: {tag: t.tag}},
        checkCell(box),
        h('th', {scope: 'row'}, h('a', {href: imageHref(name, t.tag), class: 'tag', title: `Details of ${t.tag}`}, t.tag)),
        h('td', {class: 'digest-cell'}, h('code', {class: 'digest', title: t.digest, dataset: {digest: t.digest}}, shortDigest(t.digest)), ' ',
          copyButton(t.digest, `Copy the digest of ${t.tag}`)),
        h('td', {class: 'num size-cell'}, bytes(t.sizeBytes), index ? h('div', {class: 'small muted'}, 'index') : null),
        h('td', {class: 'platforms'}, t.platforms && t.platforms.length
          ? t.platforms.map((p) => h('span', {class: 'platform'}, p)) : h('span', {class: 'muted'}, '—')),
        h('td', {}, time(t.pushedAt)),
        h('td', {}, time(t.lastPulledAt)),
        cache ? h('td', {}, time(t.lastUpstreamCheck)) : null,
        cache ? h('td', {}, t.stale
          ? badge('Stale', 'warning', 'Older than the rule\'s refresh interval: the next pull asks the upstream first')
          : badge('Fresh', 'ok', 'Checked with the upstream within the rule\'s refresh interval')) : null);
    });
    section.appendChild(h('div', {class: 'table-wrap'}, h('table', {class: 'table tags-table'},
      h('caption', {class: 'visually-hidden'}, `Tags of ${name}`),
      h('thead', {}, h('tr', {},
        canDelete ? h('th', {scope: 'col', class: 'check'}, all) : null,
        h('th', {scope: 'col'}, 'Tag'),
        h('th', {scope: 'col'}, 'Digest'),
        h('th', {scope: 'col', class: 'num'}, 'Size'),
        h('th', {scope: 'col'}, 'Platforms'),
        h('th', {scope: 'col'}, cache ? 'Cached' : 'Pushed'),
        h('th', {scope: 'col'}, 'Last pull'),
        cache ? h('th', {scope: 'col'}, 'Upstream check') : null,
        cache ? h('th', {scope: 'col'}, 'State') : null)),
      h('tbody', {}, rows))));
    section.appendChild(h('p', {class: 'help'}, 'Pull a tag: ',
      h('code', `docker pull ${host}/${name}:${tags[0].tag}`), ' ', copyButton(`docker pull ${host}/${name}:${tags[0].tag}`, 'Copy the pull command')));
  }

  deleteBtn.addEventListener('click', async () => {
    const chosen = boxes.filter((b) => b.checked);
    const byDigest = new Map();
    for (const b of chosen) {
      if (!byDigest.has(b.dataset.digest)) byDigest.set(b.dataset.digest, []);
    }
    // Deleting an image removes every tag that points at it.
    for (const t of tags) if (byDigest.has(t.digest)) byDigest.get(t.digest).push(t.tag);
    const n = byDigest.size;
    const ok = await confirmDialog({
      title: `Delete ${n} ${n === 1 ? 'image' : 'images'} from ${name}?`,
      body: [
        h('ul', {class: 'plain confirm-list'}, [...byDigest].map(([d, ts]) => h('li', {},
          h('code', shortDigest(d)), ' — tags ', ts.join(', ')))),
        h('p', {}, 'This cannot be undone: the images are gone unless someone pushes them again.'),
      ],
      action: n === 1 ? 'Delete image' : `Delete ${n} images`,
      danger: true,
    });
    if (!ok) {
      deleteBtn.focus();
      return;
    }
    await busy(deleteBtn, 'Deleting…', async () => {
      clear(status);
      try {
        const r = await api.ecr('BatchDeleteImage', {repositoryName: name,
          imageIds: [...byDigest.keys()].map((imageDigest) => ({imageDigest}))});
        const failures = r.failures || [];
        const deleted = (r.imageIds || []).length;
        if (failures.length) {
          status.appendChild(notice('error', `${deleted} deleted; ${failures.length} not: `,
            failures.map((f) => `${shortDigest((f.imageId || {}).imageDigest || '')} ${f.failureReason || f.failureCode}`).join('; ')));
        } else {
          ctx.flash('success', `Deleted ${deleted} ${deleted === 1 ? 'image' : 'images'} from ${name}.`);
          ctx.reload();
        }
      } catch (e) {
        status.appendChild(errorNotice(e, 'The images were not deleted'));
      }
    });
  });
  container.appendChild(section);

  // ---- repository policy ----
  const policySection = h('section', {class: 'section', 'aria-labelledby': 'repo-policy-heading'});
  policySection.appendChild(h('h2', {id: 'repo-policy-heading'}, 'Repository policy'));
  container.appendChild(policySection);
  let policyText;
  try {
    policyText = await getRepositoryPolicy(name);
  } catch (e) {
    policySection.appendChild(errorNotice(e, 'The repository policy could not be read'));
    return;
  }
  const editor = policyEditor({label: `Policy of ${name} (JSON)`, rows: 12,
    placeholder: '{\n  "Version": "2012-10-17",\n  "Statement": [ … ]\n}'});
  const actions = policyActions({
    editor,
    what: 'repository policy',
    load: () => getRepositoryPolicy(name),
    save: (text) => api.ecr('SetRepositoryPolicy', {repositoryName: name, policyText: text}),
    remove: () => api.ecr('DeleteRepositoryPolicy', {repositoryName: name}),
  });
  editor.value = policyText || '';
  actions.setSaved(policyText);
  if (policyText === null) editor.setStatus('This repository has no policy: access comes from identity policies and the registry policy.', null);
  policySection.append(
    h('p', {class: 'help'}, 'Statements here apply to this repository only; every statement needs a Principal.'),
    editor.el, actions.el);
}
