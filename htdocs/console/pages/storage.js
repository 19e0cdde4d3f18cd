// Storage: the blob root, what garbage collection would free, the last sweeps.

import {api} from '../api.js';
import {h, pageHeader, bytes, formatCount, formatDuration, time} from '../dom.js';

export async function storagePage(container) {
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
      h('div', {class: 'tile-label'}, ['free on the blob root\u2019s filesystem of ', bytes(d.diskBytes)])) : null));

  const sweeps = d.sweeps || [];
  container.appendChild(h('h2', {id: 'sweeps-title'}, 'Last garbage-collection sweeps'));
  if (!sweeps.length) {
    container.appendChild(h('p', {class: 'empty'}, 'No sweep has run yet.'));
    return;
  }
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
  container.appendChild(h('div', {class: 'table-wrap'}, table));
}
