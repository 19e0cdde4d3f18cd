// One image of a repository: its manifest, platforms (an index), layers,
// config, referrers, and for a cache tag the upstream history with
// "check upstream now" and "evict this tag". Route: #/image/<ref>/<repository>.

import {api} from '../api.js';
import {
  h, clear, pageHeader, notice, errorNotice, badge, bytes, time, formatCount, shortDigest, copyButton,
  confirmDialog, busy,
} from '../dom.js';

export function imageHref(name, ref) {
  return `#/image/${encodeURIComponent(ref)}/${encodeURIComponent(name)}`;
}

function digestCode(d, label) {
  return [h('code', {class: 'digest', title: d, dataset: {digest: d}}, shortDigest(d)), ' ',
    copyButton(d, label || `Copy the digest ${d}`)];
}

function section(id, title, ...children) {
  return h('section', {class: 'section', 'aria-labelledby': id},
    h('h2', {id}, title), ...children);
}

function list(values) {
  if (!values || !values.length) return h('span', {class: 'muted'}, '—');
  return h('code', {class: 'wrap'}, values.map((v) => JSON.stringify(v)).join(' '));
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return text;
  }
}

function configFacts(cfg) {
  if (cfg.unavailable) {
    return h('p', {class: 'help'}, `Config ${shortDigest(cfg.digest)}: ${cfg.unavailable}.`);
  }
  const labels = Object.entries(cfg.labels || {});
  const env = cfg.env || [];
  return [
    h('dl', {class: 'facts facts-inline', id: 'image-config'},
      h('dt', 'Created'), h('dd', cfg.created ? h('span', {}, cfg.created) : h('span', {class: 'muted'}, '—')),
      h('dt', 'Platform'), h('dd', [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/') || '—'),
      h('dt', 'Entrypoint'), h('dd', list(cfg.entrypoint)),
      h('dt', 'Command'), h('dd', list(cfg.cmd)),
      cfg.workingDir ? [h('dt', 'Working directory'), h('dd', h('code', cfg.workingDir))] : null,
      cfg.user ? [h('dt', 'User'), h('dd', h('code', cfg.user))] : null,
      h('dt', 'Config'), h('dd', digestCode(cfg.digest, 'Copy the config digest'), ' ', bytes(cfg.size))),
    h('h3', {id: 'env-heading'}, `Environment (${env.length})`),
    env.length ? h('ul', {class: 'plain kv-list', 'aria-labelledby': 'env-heading'},
      env.map((e) => h('li', {}, h('code', {class: 'wrap'}, e)))) : h('p', {class: 'muted'}, 'None.'),
    h('h3', {id: 'labels-heading'}, `Labels (${labels.length})`),
    labels.length ? h('div', {class: 'table-wrap'}, h('table', {class: 'table labels-table', 'aria-labelledby': 'labels-heading'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Label'), h('th', {scope: 'col'}, 'Value'))),
      h('tbody', {}, labels.map(([k, v]) => h('tr', {}, h('th', {scope: 'row'}, h('code', {class: 'wrap'}, k)),
        h('td', {}, h('code', {class: 'wrap'}, String(v))))))))
      : h('p', {class: 'muted'}, 'None.'),
    h('h3', {id: 'history-heading'}, `Build history (${(cfg.history || []).length} steps)`),
    (cfg.history || []).length ? h('div', {class: 'table-wrap'}, h('table', {class: 'table build-history', 'aria-labelledby': 'history-heading'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Created'), h('th', {scope: 'col'}, 'Step'),
        h('th', {scope: 'col'}, 'Layer'))),
      h('tbody', {}, cfg.history.map((s) => h('tr', {},
        h('td', {class: 'nowrap'}, s.created || '—'),
        h('td', {}, h('code', {class: 'wrap'}, s.createdBy || s.comment || '')),
        h('td', {}, s.emptyLayer ? h('span', {class: 'muted'}, 'none') : 'yes'))))))
      : h('p', {class: 'muted'}, 'No history recorded.'),
  ];
}

function historyTable(moves) {
  if (!moves.length) return h('p', {class: 'empty'}, 'No move recorded yet.');
  return h('div', {class: 'table-wrap'}, h('table', {class: 'table tag-history'},
    h('caption', {class: 'visually-hidden'}, 'Where the tag pointed, newest first'),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'When'), h('th', {scope: 'col'}, 'Event'),
      h('th', {scope: 'col'}, 'Digest'), h('th', {scope: 'col'}, 'Before'))),
    h('tbody', {}, moves.map((m) => h('tr', {dataset: {digest: m.digest || ''}},
      h('td', {}, time(m.at)),
      h('td', {}, m.evicted ? badge('Evicted', 'warning') : (m.previous ? badge('Moved', 'info') : badge('Cached', 'ok'))),
      h('td', {}, m.digest ? h('code', {class: 'digest', title: m.digest}, shortDigest(m.digest)) : h('span', {class: 'muted'}, '—')),
      h('td', {}, m.previous ? h('code', {class: 'digest', title: m.previous}, shortDigest(m.previous)) : h('span', {class: 'muted'}, '—')))))));
}

function cacheActions(name, tag, ctx) {
  const status = h('div', {role: 'status', class: 'section-status', id: 'cache-action-status'});
  const check = h('button', {type: 'button', class: 'button', id: 'check-upstream'}, 'Check upstream now');
  const evict = h('button', {type: 'button', class: 'button button-danger-quiet', id: 'evict-tag'}, 'Evict this tag…');
  check.addEventListener('click', () => busy(check, 'Asking the upstream…', async () => {
    clear(status);
    try {
      const r = await api.checkUpstream(name, tag);
      const texts = {
        moved: `The tag moved upstream: ${shortDigest(r.previousDigest)} → ${shortDigest(r.imageDigest)}. Pier fetched the new image.`,
        unchanged: `Unchanged: the upstream still has ${shortDigest(r.imageDigest)}.`,
        imported: `Fetched from the upstream: ${shortDigest(r.imageDigest)}.`,
        notFound: 'The upstream does not have this tag.',
        upstreamError: `The upstream could not be asked: ${r.message || 'no answer'}. Pier keeps serving what is cached.`,
      };
      const kind = r.result === 'upstreamError' || r.result === 'notFound' ? 'warning' : 'success';
      if (r.result === 'moved' || r.result === 'imported') {
        ctx.flash(kind, texts[r.result]);
        ctx.reload();
        return;
      }
      status.appendChild(notice(kind, h('span', {class: 'check-result', dataset: {result: r.result}}, texts[r.result])));
    } catch (e) {
      status.appendChild(errorNotice(e, 'The upstream was not checked'));
    }
  }));
  evict.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Evict ${name}:${tag} from the cache?`,
      body: [
        h('p', {}, 'The tag is removed; its image too when no other tag or index here names it.'),
        h('p', {}, 'The next pull of the tag fetches it from the upstream again. Layers no image needs any more are removed by the next garbage-collection sweep.'),
      ],
      action: 'Evict tag',
      danger: true,
    });
    if (!ok) {
      evict.focus();
      return;
    }
    await busy(evict, 'Evicting…', async () => {
      clear(status);
      try {
        const r = await api.evictTag(name, tag);
        ctx.flash('success', `Evicted ${name}:${tag}${r.imageDeleted ? ' and its image' : ` (the image stays: ${r.imageKept || 'still named'})`}.`);
        ctx.navigate(`#/repositories/${encodeURIComponent(name)}`);
      } catch (e) {
        status.appendChild(errorNotice(e, 'The tag was not evicted'));
      }
    });
  });
  return {el: h('div', {class: 'toolbar'}, check, evict), status};
}

export async function imagePage(container, {params, ctx}) {
  const [ref, name] = params;
  const d = await api.image(name, ref);
  const byTag = !ref.includes(':');
  const index = Array.isArray(d.platforms);

  container.appendChild(h('nav', {class: 'breadcrumbs', 'aria-label': 'Breadcrumbs'},
    h('a', {href: '#/repositories'}, 'Repositories'), ' / ',
    h('a', {href: `#/repositories/${encodeURIComponent(name)}`}, name), ' / ', byTag ? ref : shortDigest(ref)));
  let actions = null;
  if (d.cache && byTag) actions = cacheActions(name, ref, ctx);
  container.appendChild(pageHeader(`${name}${byTag ? `:${ref}` : `@${shortDigest(ref)}`}`,
    index ? 'An image index: one manifest per platform.' : (d.artifactType ? `An artifact (${d.artifactType}).` : null)));
  // Below the title rather than beside it: long repository names leave no room there.
  if (actions) container.append(h('div', {class: 'image-actions'}, actions.el), actions.status);

  container.appendChild(h('dl', {class: 'facts facts-inline', id: 'image-facts'},
    h('dt', 'Digest'), h('dd', digestCode(d.digest, 'Copy the image digest')),
    h('dt', 'Media type'), h('dd', h('code', {class: 'wrap'}, d.mediaType || '—')),
    h('dt', 'Tags'), h('dd', d.tags.length ? d.tags.map((t) => h('span', {class: 'tag'}, t)) : h('span', {class: 'muted'}, 'untagged')),
    h('dt', 'Size'), h('dd', index ? ['manifest ', bytes(d.manifestBytes)]
      : [bytes((d.layerBytes || 0) + ((d.config && d.config.size) || 0)), ' in layers and config; manifest ', bytes(d.manifestBytes)]),
    d.subject ? [h('dt', 'Refers to'), h('dd', h('a', {href: imageHref(name, d.subject.digest)}, shortDigest(d.subject.digest)))] : null,
    d.cache && byTag ? [h('dt', 'Upstream check'), h('dd', time(d.lastUpstreamCheck), ' ',
      d.stale ? badge('Stale', 'warning') : badge('Fresh', 'ok'))] : null,
    h('dt', 'Pull'), h('dd', h('code', {class: 'wrap'}, `docker pull ${ctx.registryHost()}/${name}${byTag ? `:${ref}` : `@${d.digest}`}`))));

  if (index) {
    container.appendChild(section('platforms-heading', `Platforms (${d.platforms.length})`,
      h('div', {class: 'table-wrap'}, h('table', {class: 'table platforms-table', 'aria-labelledby': 'platforms-heading'},
        h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Platform'), h('th', {scope: 'col'}, 'Manifest'),
          h('th', {scope: 'col', class: 'num'}, 'Size'), h('th', {scope: 'col'}, 'Stored'))),
        h('tbody', {}, d.platforms.map((p) => h('tr', {dataset: {digest: p.digest}},
          h('th', {scope: 'row'}, p.platform || h('span', {class: 'muted'}, 'unknown')),
          h('td', {}, p.stored ? h('a', {href: imageHref(name, p.digest), class: 'digest'}, shortDigest(p.digest))
            : h('code', {class: 'digest', title: p.digest}, shortDigest(p.digest))),
          h('td', {class: 'num'}, bytes(p.size)),
          h('td', {}, p.stored ? 'yes' : h('span', {class: 'muted', title: 'A cache repository fetches a platform\u2019s image on its first pull'}, 'not yet')))))))));
  }
  if (Array.isArray(d.layers)) {
    container.appendChild(section('layers-heading', [`Layers (${d.layers.length}, `, bytes(d.layerBytes), ')'],
      h('div', {class: 'table-wrap'}, h('table', {class: 'table layers-table', 'aria-labelledby': 'layers-heading'},
        h('thead', {}, h('tr', {}, h('th', {scope: 'col', class: 'num'}, '#'), h('th', {scope: 'col'}, 'Digest'),
          h('th', {scope: 'col', class: 'num'}, 'Size'), h('th', {scope: 'col'}, 'Media type'))),
        h('tbody', {}, d.layers.map((l, i) => h('tr', {dataset: {digest: l.digest}},
          h('td', {class: 'num'}, String(i + 1)),
          h('td', {class: 'digest-cell'}, h('code', {class: 'digest', title: l.digest}, shortDigest(l.digest))),
          h('td', {class: 'num'}, bytes(l.size)),
          h('td', {}, h('code', {class: 'wrap small'}, l.mediaType || '—')))))))));
  }
  if (d.config) container.appendChild(section('config-heading', 'Configuration', configFacts(d.config)));

  const refs = d.referrers || [];
  container.appendChild(section('referrers-heading', `Referrers (${refs.length})`,
    refs.length ? h('div', {class: 'table-wrap'}, h('table', {class: 'table referrers-table', 'aria-labelledby': 'referrers-heading'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Artifact type'), h('th', {scope: 'col'}, 'Digest'),
        h('th', {scope: 'col', class: 'num'}, 'Size'))),
      h('tbody', {}, refs.map((x) => h('tr', {dataset: {digest: x.digest}},
        h('td', {}, h('code', {class: 'wrap'}, x.artifactType || x.mediaType)),
        h('td', {}, h('a', {href: imageHref(name, x.digest), class: 'digest'}, shortDigest(x.digest))),
        h('td', {class: 'num'}, bytes(x.size)))))))
      : h('p', {class: 'empty'}, 'Nothing refers to this image (no signature, SBOM or attestation stored here).')));

  if (d.cache && byTag) {
    container.appendChild(section('upstream-history-heading', 'Upstream history of this tag',
      h('p', {class: 'help'}, 'Each time a pull or a check found the tag pointing somewhere new upstream, and each eviction.'),
      historyTable(d.tagHistory || [])));
  }

  const pre = h('pre', {class: 'manifest-json', tabindex: '0', 'aria-labelledby': 'manifest-heading'}, pretty(d.manifest));
  container.appendChild(section('manifest-heading', 'Manifest', h('p', {class: 'help'}, copyButton(d.manifest, 'Copy the manifest as stored')), pre));
}
