#!/usr/bin/env node
// Accessibility, narrow windows and states that must not mislead, in headless
// Chromium: axe-core on every page of the console at 1400 px and at 800 px (no
// violation of impact critical, serious or moderate), every page at 800 px
// without a horizontal page scroll and with every button and link reachable;
// a made-up repository URL, a user who may not list repositories and a
// misspelled action in a policy, as a user meets them.
//
// Environment: as console.test.js (PIER_URL, PIER_ADMIN_ENV, PIER_STATE_DIR,
// PIER_BUILD_DIR, PIER_TEST_DIR; screenshots in $PIER_TEST_DIR/screenshots).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const zlib = require('zlib');
const {
  oneLine, check, assert, waitFor, freePort, pierctl, pierctlOk, ConsoleApi, basic, getManifest,
  startBrowser, runMain, axeCheck, fitsWindow, contrastRatio, testEnvironment,
} = require('./lib');

const WIDTHS = [1400, 800];

function sha256(buf) {
  return `sha256:${crypto.createHash('sha256').update(buf).digest('hex')}`;
}

/** Push a one-layer image to repo:tag through the registry API (monolithic blob uploads). */
async function pushImage(base, repo, tag, auth) {
  const layer = zlib.gzipSync(Buffer.from(`pier a11y test layer for ${repo}\n`));
  const config = Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux',
    rootfs: {type: 'layers', diff_ids: [sha256(zlib.gunzipSync(layer))]}, config: {}}));
  for (const blob of [layer, config]) {
    const r = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, {method: 'POST', body: blob,
      headers: {Authorization: auth, 'Content-Type': 'application/octet-stream'}});
    if (r.status !== 201) throw new Error(`blob upload to ${repo}: ${r.status} ${oneLine(await r.text()).slice(0, 300)}`);
  }
  const manifest = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length},
    layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length}]}));
  const r = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {method: 'PUT', body: manifest,
    headers: {Authorization: auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json'}});
  if (r.status !== 201) throw new Error(`manifest PUT to ${repo}:${tag}: ${r.status} ${oneLine(await r.text()).slice(0, 300)}`);
  return sha256(manifest);
}

async function main() {
  const env = testEnvironment('a11y', ['PIER_STATE_DIR', 'PIER_BUILD_DIR']);
  if (!env) return;
  const {base, admin} = env;
  const run = crypto.randomBytes(4).toString('hex');
  const prefix = `a11y${run}`;
  const tplPrefix = `a11y${run}t`;
  const repo = `a11y${run}-push/app`;
  const userName = `a11y-${run}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-a11y-test-'));
  const state = {rule: false, template: false, repo: false, user: null};
  const api = new ConsoleApi(base);

  try {
    // ---- what the pages show: a rule, a template, a repository with an image ----
    await check('a11y_setup', [], async () => {
      await api.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      // An upstream on a closed port: the rule only has to be listed.
      const closed = await freePort();
      await api.ecr('CreatePullThroughCacheRule', {ecrRepositoryPrefix: prefix,
        upstreamRegistryUrl: `http://127.0.0.1:${closed}`});
      state.rule = true;
      await api.ecr('CreateRepositoryCreationTemplate', {prefix: tplPrefix, description: 'accessibility test',
        appliedFor: ['PULL_THROUGH_CACHE'], imageTagMutability: 'MUTABLE',
        encryptionConfiguration: {encryptionType: 'AES256'}, resourceTags: [{Key: 'team', Value: 'a11y'}]});
      state.template = true;
      await api.ecr('CreateRepository', {repositoryName: repo});
      state.repo = true;
      const auth = basic(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      await pushImage(base, repo, 'v1', auth);
      // A pull, so that the overview lists the repository among the most pulled.
      const r = await getManifest(base, repo, 'v1', auth);
      assert(r.status === 200, `pulling ${repo}:v1 answered ${r.status}`);
    });

    // ---- every page, at each width ----
    const pages = [
      {key: 'overview', hash: '#/overview', heading: 'Overview', ready: '.bar-list, .card'},
      {key: 'rules', hash: '#/rules', heading: 'Pull through cache', ready: `tr.rule-row[data-prefix="${prefix}"]`},
      {key: 'rule_form', hash: '#/rules/new', heading: 'Create a pull through cache rule', ready: 'form'},
      {key: 'templates', hash: '#/templates', heading: 'Creation templates', ready: `tr[data-prefix="${tplPrefix}"]`},
      {key: 'template_form', hash: '#/templates/new', heading: 'Create a repository creation template', ready: 'form'},
      {key: 'repositories', hash: '#/repositories', heading: 'Repositories', ready: `tr[data-repository="${repo}"]`},
      {key: 'repository', hash: `#/repositories/${encodeURIComponent(repo)}`, heading: repo, ready: 'tr[data-tag="v1"]'},
      {key: 'permissions', hash: '#/permissions', heading: 'Registry permissions', ready: '.policy-card textarea'},
      {key: 'storage', hash: '#/storage', heading: 'Storage', ready: '.tiles'},
      {key: 'image', hash: `#/image/v1/${encodeURIComponent(repo)}`, heading: `${repo}:v1`, ready: '#image-facts'},
      {key: 'people', hash: '#/people', heading: 'Users and access keys', ready: '.people-table'},
      {key: 'activity', hash: '#/activity', heading: 'Activity', ready: '.activity-table'},
    ];
    for (const width of WIDTHS) {
      const b = await startBrowser({viewport: {width, height: 900}, name: `a11y_${width}`});
      if (!b) continue;
      try {
        await check(`a11y_axe_signin_${width}`, ['a11y_setup'], async () => {
          await b.page.goto(`${base}/console/`);
          await b.heading('Sign in to Pier');
          await b.shot(`a11y-signin-${width}`);
          await axeCheck(b.page, `sign-in at ${width} px`);
          if (width < 1000) await fitsWindow(b.page, `sign-in at ${width} px`);
        });
        const signedIn = await check(`a11y_sign_in_${width}`, ['a11y_setup'], async () => {
          await b.signIn(base, admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
        });
        if (!signedIn) continue;
        for (const p of pages) {
          let shown = false;
          await check(`a11y_axe_${p.key}_${width}`, [`a11y_sign_in_${width}`], async () => {
            await b.go(p.hash);
            try {
              await b.heading(p.heading);
              await b.page.locator(`#page ${p.ready}`).first().waitFor();
            } catch (e) {
              await b.shot(`a11y-${p.key}-${width}-not-shown`).catch(() => {});
              throw e;
            }
            shown = true;
            await b.shot(`a11y-${p.key}-${width}`);
            await axeCheck(b.page, `${p.key} at ${width} px`);
          });
          if (width < 1000) {
            await check(`a11y_fits_${p.key}_${width}`, [`a11y_sign_in_${width}`], async () => {
              assert(shown, 'the page was not shown');
              await fitsWindow(b.page, `${p.key} at ${width} px`);
            });
          }
        }

        if (width !== WIDTHS[0]) continue;
        // ---- states that must not mislead ----
        await check('a11y_made_up_repository_says_it_does_not_exist', [`a11y_sign_in_${width}`], async () => {
          const name = `does-not-exist-${run}`;
          await b.go(`#/repositories/${name}`);
          await b.heading('Repository not found');
          const text = await b.page.locator('#page').innerText();
          assert(text.includes(name) && /no repository named/i.test(text), `the page says ${oneLine(text).slice(0, 300)}`);
          assert(await b.page.getByRole('button', {name: /Delete/}).count() === 0, 'a made-up repository has a Delete button');
          assert(await b.page.locator('#page .editor').count() === 0, 'a made-up repository has a policy editor');
          await b.shot('a11y-repository-not-found');
          await axeCheck(b.page, 'a made-up repository');
          // The same for a made-up rule or template to edit: said, with no form to save.
          for (const [hash, title] of [[`#/rules/edit/${name}`, 'Edit a pull through cache rule'],
            [`#/templates/edit/${name}`, 'Edit a repository creation template']]) {
            await b.go(hash);
            await b.heading(title);
            const said = await b.page.locator('#page .not-found').innerText();
            assert(said.includes(name), `${hash} says ${oneLine(said)}`);
            assert(await b.page.locator('#page form').count() === 0, `${hash} shows a form`);
          }
        });

        await check('a11y_editor_line_numbers_contrast', [`a11y_sign_in_${width}`], async () => {
          // The gutter is hidden from assistive technology, so axe does not look at it.
          await b.go('#/permissions');
          await b.heading('Registry permissions');
          const ratio = await contrastRatio(b.page, '.policy-card .editor-ln:not(.editor-ln-warning):not(.editor-ln-error)');
          assert(ratio >= 4.5, `line numbers have ${ratio.toFixed(2)}:1 contrast, less than 4.5:1`);
        });

        await check('a11y_unknown_action_is_warned_on_its_line', [`a11y_sign_in_${width}`], async () => {
          const before = await api.ecr('GetRegistryPolicy', {}).then((r) => r.policyText, () => null);
          await b.go('#/permissions');
          await b.heading('Registry permissions');
          const text = JSON.stringify({Version: '2012-10-17', Statement: [{Sid: 'Pull', Effect: 'Allow',
            Principal: {AWS: `arn:aws:iam::111122223333:user/${userName}`},
            Action: ['ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImagee', 'ecr:Batch*'],
            Resource: 'arn:aws:ecr:us-east-1:111122223333:repository/*'}]}, null, 2);
          const line = text.split('\n').findIndex((l) => l.includes('ecr:BatchGetImagee')) + 1;
          await b.page.locator('.policy-card textarea').fill(text);
          const marked = b.page.locator('.policy-card .editor-ln-warning');
          await marked.first().waitFor();
          const lines = await marked.evaluateAll((els) => els.map((e) => e.dataset.line));
          assert(lines.length === 1 && lines[0] === String(line), `marked lines ${lines.join(',')}, expected only ${line}`);
          const warning = await b.page.locator('.policy-card .editor-warnings').innerText();
          assert(warning.includes('ecr:BatchGetImagee') && warning.includes('Did you mean ecr:BatchGetImage?') &&
            warning.includes(`Line ${line}`), `the warning says ${oneLine(warning)}`);
          const bubble = await b.page.locator('.policy-card .editor-warning-bubble').innerText();
          assert(bubble.includes('ecr:BatchGetImagee'), `the mark beside the line says ${oneLine(bubble)}`);
          await b.shot('a11y-unknown-action-warning');
          await axeCheck(b.page, 'the editor with a warning');
          // Fixing the typo clears the warning; nothing was saved meanwhile.
          await b.page.locator('.policy-card textarea').fill(text.replace('BatchGetImagee', 'BatchGetImage'));
          await waitFor('the warning to go', async () => (await marked.count()) === 0);
          const after = await api.ecr('GetRegistryPolicy', {}).then((r) => r.policyText, () => null);
          assert(after === before, 'the registry policy changed without Save');
          await b.page.getByRole('button', {name: 'Revert'}).click().catch(() => {});
        });

        await check('a11y_user_without_list_permission_is_told', [`a11y_sign_in_${width}`], async () => {
          const out = pierctlOk(['user', 'create', userName]);
          state.user = userName;
          const keyId = /AWS_ACCESS_KEY_ID=(\S+)/.exec(out);
          const secret = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(out);
          assert(keyId && secret, `pierctl user create printed ${oneLine(out)}`);
          const file = path.join(tmp, 'rules-only.json');
          fs.writeFileSync(file, JSON.stringify({Version: '2012-10-17',
            Statement: [{Sid: 'Rules', Effect: 'Allow', Action: ['ecr:DescribePullThroughCacheRules'], Resource: '*'}]}));
          pierctlOk(['policy', 'identity', 'put', userName, 'rules', file]);
          await b.page.locator('#sign-out').click();
          await b.heading('Sign in to Pier');
          await b.signIn(base, keyId[1], secret[1]);
          // Repositories: the list is empty for this user, and says why.
          await b.go('#/repositories');
          await b.heading('Repositories');
          const note = b.page.locator('#page .list-denied');
          await note.waitFor();
          const text = await b.page.locator('#page').innerText();
          assert(!/There are no repositories yet/.test(text), 'the page says there are no repositories');
          assert((await note.innerText()).includes('ecr:DescribeRepositories'), `the note says ${oneLine(await note.innerText())}`);
          await b.shot('a11y-repositories-not-allowed');
          await axeCheck(b.page, 'repositories without permission');
          // Overview: the most pulled repositories say the same, not "no pulls".
          await b.go('#/overview');
          await b.heading('Overview');
          const top = b.page.locator('#page .list-denied');
          await top.waitFor();
          assert((await top.innerText()).includes('ecr:DescribeRepositories'), `the overview says ${oneLine(await top.innerText())}`);
          assert(!(await b.page.locator('#page').innerText()).includes('No pulls recorded yet'), 'the overview says no pulls');
          // Storage: refused, with a heading and the action named (not "could not be loaded").
          await b.go('#/storage');
          await b.heading('Storage');
          const denied = await b.page.locator('#page .page-denied').innerText();
          assert(denied.includes('ecr:DescribeRegistry') && /may not see this page/i.test(denied), `storage says ${oneLine(denied)}`);
          await b.shot('a11y-storage-not-allowed');
          await axeCheck(b.page, 'storage without permission');
        });
      } finally {
        const errors = await b.errors();
        await check(`a11y_no_script_errors_${width}`, [], async () => {
          assert(!errors.length, errors.join('; '));
        });
        await b.close();
      }
    }
  } finally {
    await cleanup();
  }

  async function cleanup() {
    const problems = [];
    const attempt = async (what, fn) => {
      try {
        await fn();
      } catch (e) {
        problems.push(`${what}: ${oneLine(e.message)}`);
      }
    };
    if (state.repo) await attempt('repository', () => api.ecr('DeleteRepository', {repositoryName: repo, force: true}));
    if (state.template) await attempt('template', () => api.ecr('DeleteRepositoryCreationTemplate', {prefix: tplPrefix}));
    if (state.rule) await attempt('rule', () => api.ecr('DeletePullThroughCacheRule', {ecrRepositoryPrefix: prefix}));
    if (state.user) {
      const p = pierctl(['user', 'delete', state.user]);
      if (p.code !== 0) problems.push(`user ${state.user}: ${oneLine(p.stderr)}`);
    }
    await api.call('logout', {}).catch(() => {});
    fs.rmSync(tmp, {recursive: true, force: true});
    if (problems.length) console.log(`# cleanup left something behind: ${problems.join('; ')}`);
  }
}

runMain('a11y_test', main);
