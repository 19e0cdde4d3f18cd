#!/usr/bin/env node
// Browser test of the console's image page and storage page, at 1400 px and
// 800 px: a cache repository's image (layers, config, manifest), an index's
// platforms linking to each platform's image, "check upstream now", "evict
// this tag" (the next pull fetches it again and the tag's history shows the
// eviction), the storage page's bytes per rule and per repository (sorting),
// and a lifecycle policy preview. Same environment and output as
// console.test.js.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const {spawnSync} = require('child_process');
const {
  oneLine, check, assert, eq, waitFor, pierctl, ConsoleApi, skopeoPull, startUpstream, stopUpstream,
  startBrowser, runMain, testEnvironment,
} = require('./lib');

/** skopeo copy between two repositories of Pier. */
function skopeoCopy(src, dst, creds) {
  const p = spawnSync('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false',
    `--src-creds=${creds}`, `--dest-creds=${creds}`, src, dst], {encoding: 'utf8', timeout: 180000});
  if (p.status !== 0) throw new Error(`skopeo copy ${src} ${dst} failed (${p.status}): ${oneLine((p.stderr || '') + (p.error || ''))}`);
}

const WIDTHS = [1400, 800];

async function main() {
  const env = testEnvironment('images', ['PIER_STATE_DIR', 'PIER_BUILD_DIR']);
  if (!env) return;
  const {base, admin} = env;
  const host = new URL(base).host;
  const adminCreds = `${admin.AWS_ACCESS_KEY_ID}:${admin.AWS_SECRET_ACCESS_KEY}`;
  const prefix = `img${crypto.randomBytes(4).toString('hex')}`;
  const demoRepo = `${prefix}/library/demo`;
  const multiRepo = `${prefix}/library/multi`;
  const pushedRepo = `pushed-${prefix}/app`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-images-test-'));
  const api = new ConsoleApi(base);
  let upstream = null;
  let ruleMade = false;
  let up = null;

  await check('images_setup_rule_and_pulls', [], async () => {
    upstream = await startUpstream();
    up = upstream.info;
    const p = pierctl(['rule', 'create', prefix, up.url, '--username', up.username, '--refresh', '86400'], `${up.password}\n`);
    if (p.code !== 0) throw new Error(`pierctl rule create: ${p.stderr}`);
    ruleMade = true;
    skopeoPull(`docker://${host}/${demoRepo}:${up.images.demo.tag}`, adminCreds, false, path.join(tmp, 'demo'));
    skopeoPull(`docker://${host}/${multiRepo}:${up.images.multi.tag}`, adminCreds, true, path.join(tmp, 'multi'));
    // A pushed repository with two images, for the lifecycle preview.
    skopeoCopy(`docker://${host}/${demoRepo}:${up.images.demo.tag}`, `docker://${host}/${pushedRepo}:one`, adminCreds);
    skopeoCopy(`docker://${host}/${prefix}/${up.images.tool.repo}:${up.images.tool.tag}`, `docker://${host}/${pushedRepo}:two`, adminCreds);
    try {
      await api.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
    } catch (e) {
      throw new Error(`console API sign-in at ${base}: ${e.message}${e.cause ? ` (${e.cause.code || e.cause.message})` : ''}`);
    }
  });

  for (const width of WIDTHS) {
    const b = await startBrowser({viewport: {width, height: 900}, name: `images_${width}`});
    if (!b) continue;
    const {page, go, heading, shot} = b;
    const w = `_${width}`;
    try {
      await check(`images_sign_in${w}`, ['images_setup_rule_and_pulls'], async () => {
        await b.signIn(base, admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      });

      await check(`image_page_from_the_tag_list${w}`, [`images_sign_in${w}`], async () => {
        await go(`#/repositories/${encodeURIComponent(demoRepo)}`);
        await heading(demoRepo);
        await page.locator('.tags-table a.tag', {hasText: up.images.demo.tag}).click();
        await heading(`${demoRepo}:${up.images.demo.tag}`);
        const digest = await page.locator('#image-facts code.digest').first().getAttribute('data-digest');
        eq(digest, up.images.demo.digest, 'the image digest');
        eq(await page.locator('.layers-table tbody tr').count(), 3, 'layer rows');
        const cfg = await page.locator('#image-config').innerText();
        assert(/linux\/amd64/.test(cfg) && /\/bin\/sh/.test(cfg), `config facts: ${cfg}`);
        const manifest = await page.locator('pre.manifest-json').innerText();
        assert(manifest.includes('"layers"') && manifest.includes('\n  '), 'the manifest is not pretty-printed JSON');
        eq(await page.locator('.tag-history tbody tr').first().getAttribute('data-digest'), up.images.demo.digest,
          'the newest history row');
        await shot(`image${w}`);
      });

      await check(`index_page_links_each_platform${w}`, [`images_sign_in${w}`], async () => {
        await go(`#/image/${up.images.multi.tag}/${encodeURIComponent(multiRepo)}`);
        await heading(`${multiRepo}:${up.images.multi.tag}`);
        const rows = page.locator('.platforms-table tbody tr');
        eq(await rows.count(), 2, 'platform rows');
        const plats = await page.locator('.platforms-table tbody th').allInnerTexts();
        eq(plats.join(','), up.images.multi.platforms.join(','), 'platforms');
        await shot(`image-index${w}`);
        await rows.nth(1).locator('a').click();
        await waitFor('the arm64 image', async () => /arm64/.test(await page.locator('#image-config').innerText()));
      });

      await check(`check_upstream_now_says_unchanged${w}`, [`image_page_from_the_tag_list${w}`], async () => {
        await go(`#/image/${up.images.demo.tag}/${encodeURIComponent(demoRepo)}`);
        await heading(`${demoRepo}:${up.images.demo.tag}`);
        await page.getByRole('button', {name: 'Check upstream now'}).click();
        const result = page.locator('#cache-action-status .check-result');
        await result.waitFor();
        eq(await result.getAttribute('data-result'), 'unchanged', 'the check result');
        await shot(`image-checked${w}`);
      });

      await check(`evict_tag_then_pull_fetches_again${w}`, [`check_upstream_now_says_unchanged${w}`], async () => {
        await page.getByRole('button', {name: 'Evict this tag…'}).click();
        const dlg = page.locator('dialog');
        await dlg.waitFor();
        await shot(`image-evict-dialog${w}`);
        await dlg.getByRole('button', {name: 'Evict tag'}).click();
        // The image page's title contains the repository's name too: wait for the repository page itself.
        await page.waitForFunction((hash) => location.hash === hash, `#/repositories/${encodeURIComponent(demoRepo)}`);
        await page.locator('#images-heading').waitFor();
        assert(/Evicted/.test(await b.flashText()), `flash: ${await b.flashText()}`);
        eq(await page.locator('.tags-table a.tag', {hasText: up.images.demo.tag}).count(), 0, 'evicted tag rows');
        skopeoPull(`docker://${host}/${demoRepo}:${up.images.demo.tag}`, adminCreds, false, path.join(tmp, `again${width}`));
        await go(`#/image/${up.images.demo.tag}/${encodeURIComponent(demoRepo)}`);
        await heading(`${demoRepo}:${up.images.demo.tag}`);
        const events = await page.locator('.tag-history tbody td:nth-child(2)').allInnerTexts();
        eq(events.slice(0, 2).join(','), 'Cached,Evicted', 'newest history events');
      });

      await check(`storage_page_bytes_per_rule_and_repository${w}`, [`images_sign_in${w}`], async () => {
        await go('#/storage');
        await heading('Storage');
        const rule = page.locator(`.rule-bytes-table tr[data-rule="${prefix}"]`);
        await rule.waitFor();
        const cached = Number(await rule.locator('data.bytes').first().getAttribute('value'));
        assert(cached >= up.images.demo.size, `rule bytes ${cached} < ${up.images.demo.size}`);
        // Sorted by bytes, most first; the Repository heading sorts by name.
        const values = await page.locator('.repo-bytes-table tbody data.bytes').evaluateAll((els) => els.map((e) => Number(e.value)));
        assert(values.every((v, i) => i === 0 || values[i - 1] >= v), `not by bytes: ${values}`);
        await page.locator('.repo-bytes-table button[data-sort="name"]').click();
        const names = await page.locator('.repo-bytes-table tbody tr').evaluateAll((els) => els.map((e) => e.dataset.repository));
        eq(JSON.stringify(names), JSON.stringify(names.slice().sort((a, c) => a.localeCompare(c))), 'order by name');
        eq(await page.locator('.repo-bytes-table th[aria-sort]').innerText(), 'Repository', 'the sorted column');
        // The search finds the rule's repositories among many.
        await page.fill('#storage-repo-search', prefix);
        const row = page.locator(`.repo-bytes-table tr[data-repository="${demoRepo}"]`);
        await row.waitFor();
        eq(Number(await row.locator('data.bytes').getAttribute('value')), up.images.demo.size, 'demo repository bytes');
        await waitFor('only matching rows', async () => (await page.locator('.repo-bytes-table tbody tr').evaluateAll(
          (els) => els.map((e) => e.dataset.repository))).every((n) => n.includes(prefix)));
        await shot(`storage${w}`);
      });

      await check(`lifecycle_preview_lists_what_expires${w}`, [`storage_page_bytes_per_rule_and_repository${w}`], async () => {
        await page.fill('#lifecycle-repo', pushedRepo);
        await page.click('#lifecycle-load');
        await waitFor('the editor', async () => !(await page.locator('#lifecycle-text').isDisabled()));
        const policy = {rules: [{rulePriority: 1, description: 'keep one', selection: {tagStatus: 'any',
          countType: 'imageCountMoreThan', countNumber: 1}, action: {type: 'expire'}}]};
        await page.fill('#lifecycle-text', JSON.stringify(policy, null, 2));
        await page.click('#lifecycle-preview');
        const summary = page.locator('#lifecycle-summary');
        await summary.waitFor();
        const want = (await api.ecr('GetLifecyclePolicyPreview', {repositoryName: pushedRepo})).summary.expiringImageTotalCount;
        const text = await summary.innerText();
        eq(want, 1, 'images the API says expire');
        assert(text.startsWith('1 image would expire'), `summary ${JSON.stringify(text)}`);
        eq(await page.locator('.preview-table tbody tr').count(), want, 'preview rows');
        let stored = null;
        try {
          stored = await api.ecr('GetLifecyclePolicy', {repositoryName: pushedRepo});
        } catch (e) {
          stored = e.type;
        }
        eq(stored, 'LifecyclePolicyNotFoundException', 'a preview stored the policy');
        await page.locator('#lifecycle-preview').scrollIntoViewIfNeeded();
        await shot(`storage-lifecycle${w}`, {keepScroll: true});
      });

      await check(`images_pages_fit_and_have_no_script_errors${w}`, [`images_sign_in${w}`], async () => {
        eq(b.overflow.join('; '), '', 'pages or tables wider than the window');
        eq((await b.errors()).join('; '), '', 'script errors or CSP violations');
      });
    } finally {
      await b.close();
    }
  }

  // Clean up what the test made.
  for (const repo of [demoRepo, multiRepo, pushedRepo, `${prefix}/${up ? up.images.tool.repo : 'team/tool'}`]) {
    await api.ecr('DeleteRepository', {repositoryName: repo, force: true}).catch(() => {});
  }
  if (ruleMade) pierctl(['rule', 'delete', prefix]);
  await stopUpstream(upstream);
  fs.rmSync(tmp, {recursive: true, force: true});
}

runMain('images', main);
