// Overview: how the pull through cache is doing, as small SVG charts.

import {api} from '../api.js';
import {h, pageHeader, notice, bytes, formatBytes, formatCount, time} from '../dom.js';
import {donut, barChart, barList, pairedBytes, legend} from '../charts.js';
import {budgetCell} from './rules.js';

function card(title, ...children) {
  const id = `card-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  return h('section', {class: 'card chart-card', 'aria-labelledby': id}, h('h2', {id}, title), ...children);
}

function label(prefix) {
  return prefix === 'ROOT' ? 'ROOT' : prefix;
}

export async function overviewPage(container) {
  const data = await api.overview();
  const rules = data.rules || [];
  const top = data.topRepositories || [];
  const sum = (k) => rules.reduce((a, r) => a + Number(r[k] || 0), 0);
  const hits = sum('hits');
  const misses = sum('misses');
  const stale = sum('stale');
  const served = sum('servedBytes');
  const upstream = sum('upstreamBytes');
  const errors = sum('upstreamErrors');
  // All rules together, a layer several of them hold counted once.
  const cache = data.cacheBudget || {bytesCached: sum('bytesCached'), maxBytes: 0};

  container.appendChild(pageHeader('Overview', 'Pull through cache activity since the rules were created.',
    h('a', {class: 'button', href: '#/rules/new'}, 'Create rule')));

  if (!rules.length) {
    container.appendChild(h('div', {class: 'empty'},
      h('p', {}, 'No pull through cache rules yet, so there is nothing to chart.'),
      h('p', {}, h('a', {class: 'button button-primary', href: '#/rules/new'}, 'Create the first rule'))));
  }

  // ---- summary tiles ----
  const tiles = h('div', {class: 'tiles'},
    h('div', {class: 'tile'}, h('div', {class: 'tile-value'}, formatCount(rules.length)), h('div', {class: 'tile-label'},
      h('a', {href: '#/rules'}, rules.length === 1 ? 'cache rule' : 'cache rules'))),
    h('div', {class: 'tile'}, h('div', {class: 'tile-value'}, formatCount(sum('repositories'))),
      h('div', {class: 'tile-label'}, 'cache repositories')),
    h('div', {class: ['tile', cache.maxBytes && cache.bytesCached > cache.maxBytes ? 'tile-bad' : '']},
      h('div', {class: 'tile-value'}, formatBytes(cache.bytesCached)),
      h('div', {class: 'tile-label'}, cache.maxBytes ? `cached of ${formatBytes(cache.maxBytes)} (registry budget)` : 'cached')),
    h('div', {class: ['tile', errors ? 'tile-bad' : '']}, h('div', {class: 'tile-value'}, formatCount(errors)),
      h('div', {class: 'tile-label'}, errors === 1 ? 'upstream error' : 'upstream errors')));
  container.appendChild(tiles);

  // ---- hit ratio ----
  const ratioRules = rules.filter((r) => r.hits + r.misses > 0);
  const hitCard = card('Hit ratio',
    h('div', {class: 'hit-ratio'},
      donut({part: hits, whole: hits + misses, label: 'hits',
        description: hits + misses ? `Hit ratio ${((hits / (hits + misses)) * 100).toFixed(1)}%: ${hits} hits, ${misses} misses` : 'No cache requests yet'}),
      h('dl', {class: 'stat-list'},
        h('dt', 'Hits'), h('dd', formatCount(hits)),
        h('dt', 'Misses'), h('dd', formatCount(misses)),
        h('dt', 'Stale'), h('dd', formatCount(stale), h('span', {class: 'muted small normal'}, ' served while the upstream failed')))),
    ratioRules.length > 1 ? barChart({
      description: 'Hit ratio by rule',
      labelWidth: 150,
      items: ratioRules.map((r) => {
        const pct = (r.hits / (r.hits + r.misses)) * 100;
        return {label: label(r.prefix), value: pct, text: `${pct.toFixed(0)}%`,
          title: `${r.prefix}: ${r.hits} hits, ${r.misses} misses`, kind: 'hit'};
      }),
    }) : null);

  // ---- bytes ----
  const byteRules = rules.filter((r) => r.servedBytes + r.upstreamBytes > 0);
  const bytesCard = card('Bytes served and fetched',
    h('p', {class: 'big-numbers'},
      h('span', {class: 'swatch swatch-served', 'aria-hidden': 'true'}), h('strong', formatBytes(served)), ' served to clients',
      h('span', {class: 'sep', 'aria-hidden': 'true'}, ' · '),
      h('span', {class: 'swatch swatch-upstream', 'aria-hidden': 'true'}), h('strong', formatBytes(upstream)), ' fetched from upstreams'),
    byteRules.length ? [legend([{kind: 'served', name: 'served to clients'}, {kind: 'upstream', name: 'fetched from upstream'}]),
      pairedBytes({
        description: 'Bytes served to clients and fetched from upstreams, by rule',
        items: byteRules.map((r) => ({label: label(r.prefix), parts: [
          {value: r.servedBytes, kind: 'served', name: 'served to clients'},
          {value: r.upstreamBytes, kind: 'upstream', name: 'fetched from upstream'}]})),
      })] : h('p', {class: 'muted'}, 'Nothing was pulled through the cache yet.'));

  // ---- upstream errors ----
  const errorCard = card('Upstream errors by rule',
    rules.length ? barChart({
      description: 'Upstream errors by rule',
      labelWidth: 150,
      items: rules.map((r) => ({label: label(r.prefix), value: r.upstreamErrors, kind: r.upstreamErrors ? 'error' : 'ok',
        text: formatCount(r.upstreamErrors)})),
    }) : h('p', {class: 'muted'}, 'No rules.'),
    rules.some((r) => r.lastError) ? h('ul', {class: 'last-errors'}, rules.filter((r) => r.lastError).map((r) =>
      h('li', {}, h('code', r.prefix), ' ', h('span', {class: 'muted'}, time(r.lastErrorAt)), ': ', h('span', {class: 'error-text'}, r.lastError))))
      : null,
    // Failures of this registry's own blob store are not the upstream's fault.
    rules.some((r) => r.storageErrors) ? h('div', {class: 'storage-errors'},
      h('h3', {}, 'Local storage errors'),
      h('ul', {class: 'last-errors'}, rules.filter((r) => r.storageErrors).map((r) =>
        h('li', {}, h('code', r.prefix), ' ', formatCount(r.storageErrors), ' ',
          r.lastStorageError ? [h('span', {class: 'muted'}, time(r.lastStorageErrorAt)), ': ',
            h('span', {class: 'error-text'}, r.lastStorageError)] : null))))
      : null);

  // ---- top repositories ----
  const shown = top.slice(0, 10);
  // Only repositories the user may describe are listed: say so when that is not all.
  const denied = data.topRepositoriesDenied;
  const topCard = card('Top pulled repositories',
    shown.length ? barList({
      description: 'Most pulled repositories',
      items: shown.map((t) => ({label: t.name, value: t.pulls, text: formatCount(t.pulls), kind: t.rule ? 'served' : 'pushed',
        title: `${t.name}: ${t.pulls} pulls${t.rule ? ` (cache rule ${t.rule})` : ''}`,
        href: `#/repositories/${encodeURIComponent(t.name)}`})),
    }) : (denied ? null : h('p', {class: 'muted'}, 'No pulls recorded yet.')),
    denied ? notice(shown.length ? 'info' : 'warning', h('span', {class: 'list-denied'},
      shown.length ? 'Only the repositories you may describe are listed. ' : 'You may not list repositories, so none is shown here. ',
      'Listing every repository needs ', h('code', 'ecr:DescribeRepositories'), ': ', denied)) : null);

  // ---- byte budgets ----
  const budgetCard = card('Cache budgets',
    rules.length ? h('div', {class: 'table-scroll'}, h('table', {class: 'table budget-table'},
      h('caption', {class: 'visually-hidden'}, 'Bytes cached, budget, bytes reclaimed and oldest last pull by rule'),
      h('thead', {}, h('tr', {},
        h('th', {scope: 'col'}, 'Rule'),
        h('th', {scope: 'col', class: 'num'}, 'Cached'),
        h('th', {scope: 'col'}, 'Budget'),
        h('th', {scope: 'col'}, 'Oldest last pull'))),
      h('tbody', {}, rules.map((r) => h('tr', {class: 'budget-row', dataset: {prefix: r.prefix}},
        h('th', {scope: 'row'}, h('a', {href: `#/rules?rule=${encodeURIComponent(r.prefix)}`}, h('code', label(r.prefix)))),
        h('td', {class: 'num'}, bytes(r.bytesCached)),
        h('td', {class: 'budget-cell'}, budgetCell(r)),
        h('td', {class: 'nowrap'}, time(r.oldestLastPull, 'nothing cached'))))))) : h('p', {class: 'muted'}, 'No rules.'),
    h('p', {class: 'help'}, 'Above its budget, a rule\'s least recently pulled images are removed from the blob root ',
      'and fetched again on their next pull. ',
      cache.maxBytes ? ['All rules together: ', bytes(cache.bytesCached), ' of the registry-wide budget of ', bytes(cache.maxBytes), '.']
        : 'There is no registry-wide budget (cache_max_bytes).'));

  container.appendChild(h('div', {class: 'chart-grid'}, hitCard, bytesCard, errorCard, topCard, budgetCard));
}
