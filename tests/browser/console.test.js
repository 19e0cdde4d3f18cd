#!/usr/bin/env node
// Browser test of the Pier admin console: headless Debian Chromium driven by
// playwright-core, against a running node (PIER_URL) and a loopback upstream
// registry (upstream.py). Prints one line per check, "ok - <name>" or
// "not ok - <name>: <reason>", then "N passed, N failed"; exits 1 on failure.
//
// Environment: PIER_URL, PIER_ADMIN_ENV, PIER_STATE_DIR, PIER_BUILD_DIR,
// PIER_TEST_DIR (screenshots go to $PIER_TEST_DIR/screenshots/<page>.png).
// Optional: PIER_CHROMIUM (default /usr/bin/chromium), PIER_BROWSER_SLOWMO.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const {spawnSync} = require('child_process');
const {
  PULL_ACTIONS, oneLine, check, assert, eq, formatBytes, waitFor, freePort, pierctl, pierctlOk, ConsoleApi,
  basic, getManifest, skopeoPull, startUpstream, stopUpstream, startBrowser, runMain, testEnvironment,
} = require('./lib');

async function main() {
  const env = testEnvironment('console', ['PIER_STATE_DIR', 'PIER_BUILD_DIR']);
  if (!env) return;
  const {base, admin} = env;
  const host = new URL(base).host;
  const adminCreds = `${admin.AWS_ACCESS_KEY_ID}:${admin.AWS_SECRET_ACCESS_KEY}`;
  const run = crypto.randomBytes(4).toString('hex');
  const prefix = `ui${run}`;
  const deadPrefix = `ui${run}x`;
  const userName = `console-${run}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-console-test-'));
  const state = {createdRules: new Set(), user: null, policyBefore: undefined, templates: new Set()};

  // The upstream takes a few seconds (skopeo pushes): start it while the browser starts.
  const upstreamStarting = startUpstream();
  upstreamStarting.catch(() => {});
  const browser = await startBrowser();
  if (!browser) {
    const up = await upstreamStarting.catch(() => null);
    await stopUpstream(up);
    return;
  }
  const {page, context, go, heading, flashText, shot, overflow} = browser;
  const consoleUrl = `${base}/console/`;

  let upstream = null;
  try {
    // ---- sign in ----
    await check('sign_in_page_when_signed_out', ['chromium_starts'], async () => {
      await page.goto(consoleUrl);
      await heading('Sign in to Pier');
      assert(await page.locator('#sidenav').isHidden(), 'the navigation is shown before signing in');
      await shot('signin');
    });

    await check('wrong_keys_are_refused_in_words', ['sign_in_page_when_signed_out'], async () => {
      await page.fill('input[name=accessKeyId]', admin.AWS_ACCESS_KEY_ID);
      await page.fill('input[name=secretAccessKey]', 'not-the-secret');
      await page.getByRole('button', {name: 'Sign in'}).click();
      const msg = page.locator('.signin-status .notice');
      await msg.waitFor();
      const text = await msg.innerText();
      assert(/wrong/i.test(text), `the message was ${JSON.stringify(text)}`);
      await shot('signin-refused');
    });

    await check('sign_in_with_the_keyboard', ['sign_in_page_when_signed_out'], async () => {
      await page.goto(consoleUrl);
      await heading('Sign in to Pier');
      // The access key field has the focus; everything else is Tab and Enter.
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.name);
      eq(focused, 'accessKeyId', 'focused field');
      await page.keyboard.type(admin.AWS_ACCESS_KEY_ID);
      await page.keyboard.press('Tab');
      await page.keyboard.type(admin.AWS_SECRET_ACCESS_KEY);
      await page.keyboard.press('Enter');
      await heading('Overview');
      const user = await page.locator('#session-user').innerText();
      assert(user.trim().length > 0, 'the signed-in user is not shown');
      assert(await page.locator('#sidenav').isVisible(), 'the navigation is hidden');
    });

    const apiAdmin = new ConsoleApi(base);
    await check('console_api_for_setup', ['sign_in_with_the_keyboard'], async () => {
      await apiAdmin.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      try {
        state.policyBefore = (await apiAdmin.ecr('GetRegistryPolicy', {})).policyText;
      } catch (e) {
        if (e.type !== 'RegistryPolicyNotFoundException') throw e;
        state.policyBefore = null;
      }
    });

    await check('upstream_registry_starts', ['chromium_starts'], async () => {
      upstream = await upstreamStarting;
    });
    const up = upstream && upstream.info;

    // ---- pull through cache rules ----
    await check('create_rule_with_credentials', ['sign_in_with_the_keyboard', 'upstream_registry_starts'], async () => {
      await go('#/rules');
      await heading('Pull through cache');
      await page.getByRole('link', {name: 'Create rule'}).first().click();
      await heading('Create a pull through cache rule');
      // Choosing an upstream type fills in its URL.
      await page.selectOption('select[name=upstreamRegistry]', 'quay');
      eq(await page.inputValue('input[name=upstreamRegistryUrl]'), 'quay.io', 'URL filled in for Quay');
      await page.selectOption('select[name=upstreamRegistry]', 'oci');
      await page.fill('input[name=upstreamRegistryUrl]', up.url);
      await page.fill('input[name=ecrRepositoryPrefix]', prefix);
      await page.fill('input[name=username]', up.username);
      await page.fill('input[name=accessToken]', up.password);
      await shot('rule-create');
      await page.getByRole('button', {name: 'Create rule'}).click();
      state.createdRules.add(prefix);
      await heading('Pull through cache');
      const row = page.locator(`tr.rule-row[data-prefix="${prefix}"]`);
      await row.waitFor();
      const text = await row.innerText();
      assert(text.includes(up.url), `the row does not show the URL: ${text}`);
      assert(/\bSet\b/.test(text), `the row does not show credentials as set: ${text}`);
      assert(!text.includes(up.password), 'the access token is shown');
      assert((await flashText()).includes(`${prefix} was created`), `flash: ${await flashText()}`);
      // The secret went to Secrets Manager, and the rule refers to it.
      const d = await apiAdmin.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [prefix]});
      const arn = d.pullThroughCacheRules[0].credentialArn || '';
      assert(arn.includes(`:secret:ecr-pullthroughcache/${prefix}`), `credentialArn ${arn}`);
    });

    await check('validate_rule_reaches_upstream', ['create_rule_with_credentials'], async () => {
      await page.getByRole('button', {name: `Validate rule ${prefix}`}).click();
      const result = page.locator(`tr.rule-row[data-prefix="${prefix}"] + tr .validate-result`);
      await result.waitFor({timeout: 60000});
      eq(await result.innerText(), `Pier reached ${up.url} with these credentials.`, 'validation result');
      eq(await result.getAttribute('data-valid'), 'true', 'data-valid');
    });

    await check('taken_prefix_refused_without_touching_credentials', ['validate_rule_reaches_upstream'], async () => {
      const secretsBefore = (await apiAdmin.call('secretsmanager/ListSecrets', {})).SecretList.length;
      await go('#/rules/new');
      await heading('Create a pull through cache rule');
      await page.selectOption('select[name=upstreamRegistry]', 'oci');
      await page.fill('input[name=upstreamRegistryUrl]', up.url);
      await page.fill('input[name=ecrRepositoryPrefix]', prefix);
      await page.fill('input[name=username]', 'someone-else');
      await page.fill('input[name=accessToken]', 'wrong-token');
      await page.getByRole('button', {name: 'Create rule'}).click();
      const err = page.locator('input[name=ecrRepositoryPrefix] ~ .field-error');
      await err.waitFor();
      assert(/exists already/.test(await err.innerText()), `the prefix field says ${await err.innerText()}`);
      eq(await page.locator('input[name=ecrRepositoryPrefix]').getAttribute('aria-invalid'), 'true', 'aria-invalid of the prefix');
      const v = await apiAdmin.ecr('ValidatePullThroughCacheRule', {ecrRepositoryPrefix: prefix});
      eq(v.isValid, true, `the first rule's credentials after the refused create (${v.failure || ''})`);
      eq((await apiAdmin.call('secretsmanager/ListSecrets', {})).SecretList.length, secretsBefore, 'number of secrets');
    });

    const deadPort = await freePort();
    const deadUrl = `http://127.0.0.1:${deadPort}`;
    await check('validate_unreachable_upstream_shows_failure', ['sign_in_with_the_keyboard'], async () => {
      await go('#/rules/new');
      await heading('Create a pull through cache rule');
      await page.selectOption('select[name=upstreamRegistry]', 'oci');
      await page.fill('input[name=upstreamRegistryUrl]', deadUrl);
      await page.fill('input[name=ecrRepositoryPrefix]', deadPrefix);
      await page.getByRole('button', {name: 'Create rule'}).click();
      state.createdRules.add(deadPrefix);
      await page.locator(`tr.rule-row[data-prefix="${deadPrefix}"]`).waitFor();
      await page.getByRole('button', {name: `Validate rule ${deadPrefix}`}).click();
      const result = page.locator(`tr.rule-row[data-prefix="${deadPrefix}"] + tr .validate-result`);
      await result.waitFor({timeout: 90000});
      const text = await result.innerText();
      const want = `Pier could not reach ${deadUrl}: `;
      assert(text.startsWith(want) && text.length > want.length + 3, `validation result ${JSON.stringify(text)}`);
      eq(await result.getAttribute('data-valid'), 'false', 'data-valid');
      // The failure is also the rule's last upstream error now.
      const errCell = await page.locator(`tr.rule-row[data-prefix="${deadPrefix}"] .error-cell`).innerText();
      assert(errCell.includes(text.slice(want.length, want.length + 20)), `last error cell: ${errCell}`);
      await shot('rules');
    });

    await check('delete_rule_needs_confirmation', ['validate_unreachable_upstream_shows_failure'], async () => {
      await page.getByRole('button', {name: `Delete rule ${deadPrefix}`}).click();
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      assert((await dialog.innerText()).includes(deadPrefix), 'the dialog does not name the rule');
      await shot('rule-delete-confirm');
      await dialog.getByRole('button', {name: 'Cancel'}).click();
      await dialog.waitFor({state: 'detached'});
      await page.locator(`tr.rule-row[data-prefix="${deadPrefix}"]`).waitFor();
      await page.getByRole('button', {name: `Delete rule ${deadPrefix}`}).click();
      await page.locator('dialog.dialog').getByRole('button', {name: 'Delete rule'}).click();
      await waitFor('the rule row to go', async () => (await page.locator(`tr.rule-row[data-prefix="${deadPrefix}"]`).count()) === 0);
      assert((await flashText()).includes(`${deadPrefix} was deleted`), `flash: ${await flashText()}`);
      const d = await apiAdmin.ecr('DescribePullThroughCacheRules', {});
      assert(!d.pullThroughCacheRules.some((r) => r.ecrRepositoryPrefix === deadPrefix), 'the rule still exists');
      state.createdRules.delete(deadPrefix);
    });

    await check('edit_rule_replaces_credentials', ['create_rule_with_credentials'], async () => {
      await go('#/rules');
      await page.getByRole('link', {name: `Edit rule ${prefix}`}).click();
      await heading(`Edit rule ${prefix}`);
      await shot('rule-edit');
      await page.getByRole('button', {name: 'Save changes'}).click();
      await page.locator('.form-status .notice', {hasText: 'Nothing changed'}).waitFor();
      await page.fill('input[name=username]', up.username);
      await page.fill('input[name=accessToken]', up.password);
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Pull through cache');
      assert((await flashText()).includes(`${prefix} was saved`), `flash: ${await flashText()}`);
      await page.getByRole('button', {name: `Validate rule ${prefix}`}).click();
      const result = page.locator(`tr.rule-row[data-prefix="${prefix}"] + tr .validate-result`);
      await result.waitFor({timeout: 60000});
      eq(await result.getAttribute('data-valid'), 'true', `validation after the edit (${await result.innerText()})`);
    });

    await check('rule_form_sets_and_removes_a_cache_budget', ['edit_rule_replaces_credentials'], async () => {
      const edit = async () => {
        await go('#/rules');
        await page.getByRole('link', {name: `Edit rule ${prefix}`}).click();
        await heading(`Edit rule ${prefix}`);
      };
      await edit();
      eq(await page.inputValue('input[name=maxBytes]'), '', 'the budget field of a rule without one');
      // Not a size: refused next to the field, nothing saved.
      await page.fill('input[name=maxBytes]', '12 parsecs');
      await page.getByRole('button', {name: 'Save changes'}).click();
      const err = page.locator('input[name=maxBytes] ~ .field-error');
      await err.waitFor();
      assert(/size/.test(await err.innerText()), `the budget field says ${await err.innerText()}`);
      eq(await page.locator('input[name=maxBytes]').getAttribute('aria-invalid'), 'true', 'aria-invalid of the budget');
      await page.fill('input[name=maxBytes]', '2 GiB');
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Pull through cache');
      const d = await apiAdmin.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [prefix]});
      eq(d.pullThroughCacheRules[0].pierMaxBytes, 2 ** 31, 'pierMaxBytes after saving 2 GiB');
      const row = page.locator(`tr.rule-row[data-prefix="${prefix}"]`);
      await row.waitFor();
      const cached = row.locator('.cached-cell');
      eq(await cached.locator('meter').getAttribute('max'), String(2 ** 31), 'the budget meter of the row');
      eq(await cached.locator('.budget-limit data.bytes').getAttribute('value'), String(2 ** 31), 'the budget shown');
      const text = await cached.innerText();
      assert(/reclaimed/.test(text) && /oldest pull/.test(text), `the row does not show bytes reclaimed and the oldest pull: ${oneLine(text)}`);
      await shot('rule-budget');
      // The form shows it exactly, and emptying it removes it.
      await edit();
      eq(await page.inputValue('input[name=maxBytes]'), '2 GiB', 'the budget field of the rule');
      await page.fill('input[name=maxBytes]', '');
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Pull through cache');
      const after = await apiAdmin.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [prefix]});
      assert(!('pierMaxBytes' in after.pullThroughCacheRules[0]), `the budget is still there: ${JSON.stringify(after)}`);
      await page.locator(`tr.rule-row[data-prefix="${prefix}"] .cached-cell .budget-none`).waitFor();
    });

    // ---- registry permissions: the helper, then a second user's pull ----
    let user = null;
    await check('second_user_is_denied_before_the_statement', ['create_rule_with_credentials', 'console_api_for_setup'], async () => {
      const out = pierctlOk(['user', 'create', userName]);
      state.user = userName;
      const keyId = /AWS_ACCESS_KEY_ID=(\S+)/.exec(out);
      const secret = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(out);
      const arn = /(arn:aws:iam::[0-9]{12}:user\/\S+)/.exec(out);
      assert(keyId && secret && arn, `pierctl user create printed ${oneLine(out)}`);
      user = {keyId: keyId[1], secret: secret[1], arn: arn[1]};
      const file = path.join(tmp, 'pull-policy.json');
      fs.writeFileSync(file, JSON.stringify({Version: '2012-10-17',
        Statement: [{Sid: 'Pull', Effect: 'Allow', Action: PULL_ACTIONS, Resource: '*'}]}));
      pierctlOk(['policy', 'identity', 'put', userName, 'pull', file]);
      const r = await getManifest(base, `${prefix}/${up.images.tool.repo}`, up.images.tool.tag, basic(user.keyId, user.secret));
      eq(r.status, 403, `the user's pull before the statement (${oneLine(r.text).slice(0, 200)})`);
    });

    let savedPolicy = null;
    await check('helper_adds_the_pull_through_cache_statement', ['second_user_is_denied_before_the_statement'], async () => {
      await go('#/permissions');
      await heading('Registry permissions');
      const sid = `ConsoleTest${run}`;
      await page.fill('input[name=sid]', sid);
      await page.fill('textarea[name=principals]', user.arn);
      await page.selectOption('select[name=rule]', prefix);
      await page.fill('input[name=pattern]', 'team/*');
      const before = await page.inputValue('.policy-card textarea.editor-input');
      await page.getByRole('button', {name: 'Add statement to policy'}).click();
      await page.locator('.helper-status .notice-success').waitFor();
      const text = await page.inputValue('.policy-card textarea.editor-input');
      const doc = JSON.parse(text);
      const st = doc.Statement.find((s) => s.Sid === sid);
      const account = /^arn:aws:iam::([0-9]{12}):/.exec(user.arn)[1];
      const want = {Sid: sid, Effect: 'Allow', Principal: {AWS: [user.arn]},
        Action: ['ecr:CreateRepository', 'ecr:BatchImportUpstreamImage'],
        Resource: `arn:aws:ecr:us-east-1:${account}:repository/${prefix}/team/*`};
      eq(JSON.stringify(st), JSON.stringify(want), 'the statement the helper wrote');
      if (before.trim()) {
        const old = JSON.parse(before);
        const oldList = Array.isArray(old.Statement) ? old.Statement : [old.Statement];
        eq(doc.Statement.length, oldList.length + 1, 'statements after adding one');
      }
      assert(await page.locator('.policy-card .editor-ln-added').count() > 0, 'the added lines are not highlighted');
      await shot('permissions');
      await page.getByRole('button', {name: 'Save policy'}).click();
      await page.locator('.policy-card .editor-message-ok', {hasText: 'Saved'}).waitFor();
      savedPolicy = (await apiAdmin.ecr('GetRegistryPolicy', {})).policyText;
      eq(savedPolicy, text, 'the saved registry policy');
    });

    await check('second_user_pull_allowed_after_saving', ['helper_adds_the_pull_through_cache_statement'], async () => {
      let last;
      await waitFor('the pull to be allowed (policies are cached for a second)', async () => {
        last = await getManifest(base, `${prefix}/${up.images.tool.repo}`, up.images.tool.tag, basic(user.keyId, user.secret));
        return last.status === 200;
      }, 15000).catch((e) => { throw new Error(`${e.message}; last answer ${last && last.status} ${last && oneLine(last.text).slice(0, 200)}`); });
      eq(last.digest, up.images.tool.digest, 'the digest the user got');
    });

    await check('invalid_policy_path_error_marked_at_its_line', ['helper_adds_the_pull_through_cache_statement'], async () => {
      const doc = JSON.parse(savedPolicy);
      const st = doc.Statement.find((s) => s.Sid === `ConsoleTest${run}`);
      st.Condition = {StringLik: {'aws:username': userName}};
      const bad = `${JSON.stringify(doc, null, 2)}\n`;
      const wantLine = bad.split('\n').findIndex((l) => l.includes('"StringLik"')) + 1;
      const ta = page.locator('.policy-card textarea.editor-input');
      await ta.fill(bad);
      await page.getByRole('button', {name: 'Save policy'}).click();
      const marked = page.locator('.policy-card .editor-ln-error');
      await marked.waitFor();
      eq(Number(await marked.getAttribute('data-line')), wantLine, 'marked line');
      const msg = await page.locator('.policy-card .editor-message').innerText();
      assert(msg.startsWith(`Line ${wantLine}, column `) && msg.includes('StringLik') && /unknown condition operator/.test(msg),
        `message below the editor: ${msg}`);
      const bubble = page.locator('.policy-card .editor-bubble');
      assert(await bubble.isVisible(), 'no message beside the marked line');
      assert(/unknown condition operator/.test(await bubble.innerText()), `bubble: ${await bubble.innerText()}`);
      // The bubble sits at (or right below) the marked line.
      // The editor redraws its bands on every layout pass: read both boxes
      // until one pass shows them (a box read mid-redraw is null).
      let band = null;
      let bb = null;
      await waitFor('the bubble beside the marked line', async () => {
        band = await page.locator('.policy-card .editor-band-error').boundingBox();
        bb = await bubble.boundingBox();
        return band && bb && bb.y >= band.y - 4 && bb.y <= band.y + band.height + 6;
      }, 5000).catch((e) => { throw new Error(`${e.message}: bubble at y=${bb && bb.y}, line at y=${band && band.y}`); });
      eq(await ta.inputValue(), bad, 'the text after the refused save');
      const caret = await ta.evaluate((el) => el.value.slice(0, el.selectionStart).split('\n').length);
      eq(caret, wantLine, 'the line of the caret');
      eq((await apiAdmin.ecr('GetRegistryPolicy', {})).policyText, savedPolicy, 'the stored policy');
      await shot('permissions-error');
    });

    await check('invalid_policy_json_marked_at_line_and_column', ['helper_adds_the_pull_through_cache_statement'], async () => {
      const lines = savedPolicy.split('\n');
      const idx = lines.findIndex((l) => l.includes(`"Sid": "ConsoleTest${run}"`));
      assert(idx >= 0, 'the statement is not in the saved text');
      lines[idx] = `${lines[idx]},`; // "Sid": "...",,  — a second comma
      const bad = lines.join('\n');
      const wantLine = idx + 1;
      const wantColumn = lines[idx].length; // the second comma
      const ta = page.locator('.policy-card textarea.editor-input');
      await ta.fill(bad);
      await page.getByRole('button', {name: 'Save policy'}).click();
      const marked = page.locator('.policy-card .editor-ln-error');
      await waitFor('the syntax error mark', async () => Number(await marked.getAttribute('data-line')) === wantLine, 8000)
        .catch(async (e) => { throw new Error(`${e.message}; message: ${await page.locator('.policy-card .editor-message').innerText()}`); });
      const msg = await page.locator('.policy-card .editor-message').innerText();
      assert(msg.startsWith(`Line ${wantLine}, column ${wantColumn}: policy is not valid JSON`), `message: ${msg}`);
      assert(msg.includes(`(line ${wantLine}, column ${wantColumn})`), `Pier's line and column are not in ${msg}`);
      const caret = await ta.evaluate((el) => el.selectionStart);
      eq(caret, lines.slice(0, idx).join('\n').length + 1 + wantColumn - 1, 'caret offset');
      eq(await ta.inputValue(), bad, 'the text after the refused save');
      await shot('permissions-syntax-error');
      // Fixing the text clears the mark without saving.
      await ta.fill(savedPolicy);
      await waitFor('the mark to clear', async () => (await marked.count()) === 0, 5000);
    });

    await check('unsaved_policy_text_survives_navigation_and_revert', ['helper_adds_the_pull_through_cache_statement'], async () => {
      const ta = page.locator('.policy-card textarea.editor-input');
      const dirty = page.locator('.policy-card .dirty-note');
      const edited = savedPolicy.replace('"Version"', '"Id": "draft",\n  "Version"');
      await ta.fill(edited);
      assert(await dirty.isVisible(), 'no "Unsaved changes" after an edit');
      await page.locator('#sidenav').getByRole('link', {name: 'Overview'}).click();
      await heading('Overview');
      await page.locator('#sidenav').getByRole('link', {name: 'Registry permissions'}).click();
      await heading('Registry permissions');
      eq(await ta.inputValue(), edited, 'the text after coming back');
      assert(await dirty.isVisible(), 'the restored edit is not marked unsaved');
      await page.getByRole('button', {name: 'Revert'}).click();
      await waitFor('the saved text back', async () => (await ta.inputValue()) === savedPolicy, 5000);
      assert(await dirty.isHidden(), '"Unsaved changes" after Revert');
      await page.locator('#sidenav').getByRole('link', {name: 'Overview'}).click();
      await heading('Overview');
      await page.locator('#sidenav').getByRole('link', {name: 'Registry permissions'}).click();
      await heading('Registry permissions');
      eq(await ta.inputValue(), savedPolicy, 'the text on a fresh visit');
      assert(await dirty.isHidden(), '"Unsaved changes" on a fresh visit');
    });

    // ---- repositories and images ----
    await check('pulled_image_listed_with_digest_and_size', ['create_rule_with_credentials'], async () => {
      skopeoPull(`docker://${host}/${prefix}/${up.images.demo.repo}:${up.images.demo.tag}`, adminCreds, false, path.join(tmp, 'demo'));
      skopeoPull(`docker://${host}/${prefix}/${up.images.multi.repo}:${up.images.multi.tag}`, adminCreds, true, path.join(tmp, 'multi'));
      await go('#/repositories');
      await heading('Repositories');
      await page.fill('#repo-search', prefix);
      const repoName = `${prefix}/${up.images.demo.repo}`;
      const row = page.locator(`tr[data-repository="${repoName}"]`);
      await row.waitFor();
      const text = await row.innerText();
      assert(/Cache/.test(text) && text.includes(`rule ${prefix}`), `the row does not mark the cache rule: ${text}`);
      await waitFor('the search in the address', async () => (await page.evaluate(() => location.hash)).includes(`q=${prefix}`));
      const count = await page.locator(`tbody tr[data-repository^="${prefix}/"]`).count();
      eq(count, 3, 'repositories under the new prefix (demo, multi, tool)');
      await shot('repositories');
      await row.getByRole('link', {name: repoName}).click();
      await heading(repoName);
      const tag = page.locator(`tr[data-tag="${up.images.demo.tag}"]`);
      await tag.waitFor();
      eq(await tag.locator('code.digest').getAttribute('data-digest'), up.images.demo.digest, 'digest');
      eq(await tag.locator('.size-cell data').getAttribute('value'), String(up.images.demo.size), 'size in bytes');
      eq((await tag.locator('.size-cell data').innerText()).trim(), formatBytes(up.images.demo.size), 'size shown');
      const cells = await tag.innerText();
      assert(/Fresh|Stale/.test(cells), `no freshness mark: ${cells}`);
      await shot('repository');
    });

    await check('index_shows_its_platforms', ['pulled_image_listed_with_digest_and_size'], async () => {
      await go(`#/repositories/${encodeURIComponent(`${prefix}/${up.images.multi.repo}`)}`);
      await heading(`${prefix}/${up.images.multi.repo}`);
      const tag = page.locator(`tr[data-tag="${up.images.multi.tag}"]`);
      await tag.waitFor();
      eq(await tag.locator('code.digest').getAttribute('data-digest'), up.images.multi.digest, 'digest of the index');
      const platforms = await tag.locator('.platform').allInnerTexts();
      eq(JSON.stringify(platforms), JSON.stringify(up.images.multi.platforms), 'platforms');
    });

    await check('cache_repository_offers_no_image_delete', ['index_shows_its_platforms'], async () => {
      // Pier refuses deletes in cache repositories; the page says so instead of offering them.
      eq(await page.locator('tr[data-tag] input[type=checkbox]').count(), 0, 'checkboxes in a cache repository');
      eq(await page.getByRole('button', {name: 'Delete images…'}).count(), 0, 'Delete images buttons');
      assert(await page.locator('.section-note', {hasText: 'come from the upstream'}).isVisible(), 'no note why');
    });

    const pushed = `${prefix}-push/app`;
    await check('delete_image_needs_confirmation', ['pulled_image_listed_with_digest_and_size'], async () => {
      for (const t of ['1.0', 'latest']) {
        const p = spawnSync('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `--dest-creds=${adminCreds}`,
          `oci:${path.join(tmp, 'demo')}:x`, `docker://${host}/${pushed}:${t}`], {encoding: 'utf8', timeout: 180000});
        assert(p.status === 0, `skopeo push ${pushed}:${t} failed: ${oneLine(p.stderr || '')}`);
      }
      await go(`#/repositories/${encodeURIComponent(pushed)}`);
      await heading(pushed);
      const row = page.locator('tr[data-tag="1.0"]');
      await row.waitFor();
      await row.locator('input[type=checkbox]').check();
      await page.getByRole('button', {name: 'Delete images…'}).click();
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      // One image, two tags: the dialog says both go.
      const text = await dialog.innerText();
      assert(text.includes('1.0, latest'), `the dialog does not list both tags: ${text}`);
      await shot('image-delete-confirm');
      await dialog.getByRole('button', {name: 'Cancel'}).click();
      await dialog.waitFor({state: 'detached'});
      await row.waitFor();
      await page.getByRole('button', {name: 'Delete images…'}).click();
      await page.locator('dialog.dialog').getByRole('button', {name: 'Delete image'}).click();
      await waitFor('the tag rows to go', async () => (await page.locator('tr[data-tag]').count()) === 0);
      assert((await flashText()).includes('Deleted 1 image'), `flash: ${await flashText()}`);
      const d = await apiAdmin.ecr('DescribeImages', {repositoryName: pushed});
      assert(!d.imageDetails.some((i) => i.imageDigest === up.images.demo.digest), 'the image is still there');
    });

    await check('delete_repository_needs_confirmation', ['delete_image_needs_confirmation'], async () => {
      await page.getByRole('button', {name: 'Delete repository…'}).click();
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      assert((await dialog.innerText()).includes(pushed), 'the dialog does not name the repository');
      await dialog.getByRole('button', {name: 'Delete repository'}).click();
      await heading('Repositories');
      assert((await flashText()).includes(`${pushed} was deleted`), `flash: ${await flashText()}`);
      const gone = await apiAdmin.ecr('DescribeRepositories', {repositoryNames: [pushed]}).then(() => false,
        (e) => e.type === 'RepositoryNotFoundException');
      assert(gone, 'the repository still exists');
    });

    // ---- creation templates ----
    const tplPrefix = `${prefix}t`;
    await check('creation_template_create_edit_delete', ['sign_in_with_the_keyboard'], async () => {
      await go('#/templates');
      await heading('Repository creation templates');
      await page.getByRole('link', {name: /Create (the first )?template/}).first().click();
      await heading('Create a repository creation template');
      await page.fill('input[name=prefix]', tplPrefix);
      await page.fill('input[name=description]', 'made by the console test');
      await page.getByLabel(/Create on push/).check();
      await page.getByRole('button', {name: 'Add tag'}).click();
      await page.locator('.tag-row .tag-key').last().fill('team');
      await page.locator('.tag-row .tag-value').last().fill('platform');
      await shot('template-create');
      await page.getByRole('button', {name: 'Create template'}).click();
      state.templates.add(tplPrefix);
      await heading('Repository creation templates');
      const row = page.locator(`tr[data-prefix="${tplPrefix}"]`);
      await row.waitFor();
      const text = await row.innerText();
      assert(text.includes('Pull through cache') && text.includes('Create on push') && text.includes('team=platform'),
        `the template row: ${text}`);
      await shot('templates');
      await page.getByRole('link', {name: `Edit template ${tplPrefix}`}).click();
      await heading(`Edit template ${tplPrefix}`);
      await page.getByLabel(/^Immutable/).check();
      const ta = page.locator('textarea.editor-input');
      const badPolicy = '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}\n  ]\n}\n';
      await ta.fill(badPolicy);
      await page.getByRole('button', {name: 'Save changes'}).click();
      const marked = page.locator('.editor-ln-error');
      await marked.waitFor();
      eq(Number(await marked.getAttribute('data-line')), 4, 'marked line of the template policy error');
      eq(await ta.inputValue(), badPolicy, 'the template policy text after the refused save');
      await shot('template-policy-error');
      await ta.fill('');
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Repository creation templates');
      await waitFor('the template to show Immutable', async () => (await page.locator(`tr[data-prefix="${tplPrefix}"]`).innerText()).includes('Immutable'));
      await page.getByRole('button', {name: `Delete template ${tplPrefix}`}).click();
      await page.locator('dialog.dialog').getByRole('button', {name: 'Delete template'}).click();
      await waitFor('the template row to go', async () => (await page.locator(`tr[data-prefix="${tplPrefix}"]`).count()) === 0);
      state.templates.delete(tplPrefix);
    });

    // ---- overview ----
    await check('overview_draws_charts', ['pulled_image_listed_with_digest_and_size'], async () => {
      await go('#/overview');
      await heading('Overview');
      const charts = await page.locator('#page svg[role=img]').count();
      assert(charts >= 3, `only ${charts} charts`);
      const donut = await page.locator('svg.chart-donut').getAttribute('aria-label');
      assert(/Hit ratio [0-9.]+%|No cache requests/.test(donut), `donut label ${donut}`);
      const labels = await page.locator('#page svg .chart-label').allTextContents();
      assert(labels.includes(prefix), `the rule ${prefix} is not in the charts (${labels.join(', ')})`);
      await shot('overview');
    });

    await check('overview_shows_cache_budgets_per_rule', ['overview_draws_charts'], async () => {
      await apiAdmin.ecr('UpdatePullThroughCacheRule', {ecrRepositoryPrefix: prefix, pierMaxBytes: 5 * 2 ** 30});
      await go('#/rules'); // away and back: the overview is drawn anew
      await heading('Pull through cache');
      await go('#/overview');
      await heading('Overview');
      const api = await page.evaluate(async () => (await fetch('api/overview')).json());
      const mine = api.rules.find((r) => r.prefix === prefix);
      assert(mine && mine.maxBytes === 5 * 2 ** 30 && mine.bytesCached > 0 && mine.oldestLastPull > 0,
        `GET api/overview for the rule: ${JSON.stringify(mine)}`);
      const row = page.locator(`tr.budget-row[data-prefix="${prefix}"]`);
      await row.waitFor();
      eq(await row.locator('td.num data.bytes').getAttribute('value'), String(mine.bytesCached), 'bytes cached of the row');
      eq(await row.locator('meter').getAttribute('max'), String(5 * 2 ** 30), 'the budget meter of the row');
      eq(await row.locator('.budget-reclaimed data.bytes').getAttribute('value'), String(mine.bytesReclaimed), 'bytes reclaimed');
      assert((await row.locator('time').count()) === 1, `no oldest last pull: ${oneLine(await row.innerText())}`);
      await shot('overview-budgets');
      await apiAdmin.ecr('UpdatePullThroughCacheRule', {ecrRepositoryPrefix: prefix, pierMaxBytes: 0});
    });

    await check('storage_page_shows_reclaimable_bytes_and_sweeps', ['sign_in_with_the_keyboard'], async () => {
      const out = pierctlOk(['gc', '--dry-run', '--grace', '0']);
      const m = /would remove (\d+) blobs \((\d+) bytes\)/.exec(out);
      assert(m, `pierctl gc --dry-run printed ${oneLine(out)}`);
      await go('#/storage');
      await heading('Storage');
      const api = await page.evaluate(async () => (await fetch('api/storage')).json());
      const tile = await page.locator('#reclaimable data.bytes').getAttribute('value');
      eq(tile, String(api.reclaimableBytes), 'the reclaimable tile against GET api/storage');
      const first = page.locator('table.sweeps-table tbody tr').first();
      const text = await first.innerText();
      assert(/dry run/.test(text), `the newest sweep row does not say dry run: ${oneLine(text)}`);
      const shown = await first.locator('data.bytes').getAttribute('value');
      eq(shown, m[2], 'bytes of the newest sweep row against what pierctl printed');
      await shot('storage');
    });

    // ---- session end ----
    await check('expired_session_returns_to_sign_in', ['sign_in_with_the_keyboard'], async () => {
      await context.clearCookies();
      await page.locator('#sidenav').getByRole('link', {name: 'Repositories'}).click();
      await heading('Sign in to Pier');
      const text = await page.locator('.signin-status').innerText();
      assert(/session has ended/i.test(text), `message: ${text}`);
      await shot('signin-expired');
      await page.fill('input[name=accessKeyId]', admin.AWS_ACCESS_KEY_ID);
      await page.fill('input[name=secretAccessKey]', admin.AWS_SECRET_ACCESS_KEY);
      await page.getByRole('button', {name: 'Sign in'}).click();
      await heading('Repositories');
    });

    await check('sign_out_is_refused_afterwards', ['sign_in_with_the_keyboard'], async () => {
      const cookie = (await context.cookies()).find((c) => c.name === 'pier_session');
      assert(cookie, 'no pier_session cookie while signed in');
      await page.getByRole('button', {name: 'Sign out'}).click();
      await heading('Sign in to Pier');
      assert(/signed out/i.test(await page.locator('.signin-status').innerText()), 'no signed-out message');
      const status = await page.evaluate(async () => (await fetch('api/session')).status);
      eq(status, 401, 'GET /console/api/session from the page after signing out');
      const r = await fetch(`${base}/console/api/overview`, {headers: {Cookie: `pier_session=${cookie.value}`}});
      eq(r.status, 401, 'the old session cookie after signing out');
      await go('#/rules');
      await heading('Sign in to Pier');
    });

    await check('pages_fit_1366x768_without_horizontal_scrolling', ['sign_in_with_the_keyboard'], async () => {
      assert(!overflow.length, overflow.join('; '));
    });
    await check('no_script_errors_or_csp_violations', ['chromium_starts'], async () => {
      const all = await browser.errors();
      assert(!all.length, all.join('; '));
    });
  } finally {
    await browser.close();
    await cleanup(base, admin, state, prefix);
    if (!upstream) upstream = await upstreamStarting.catch(() => null);
    await stopUpstream(upstream);
    fs.rmSync(tmp, {recursive: true, force: true});
  }
}

/** Put back what the test changed: the registry policy, rules, repositories, the user. */
async function cleanup(base, admin, state, prefix) {
  const problems = [];
  const api = new ConsoleApi(base);
  try {
    await api.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
  } catch (e) {
    console.log(`# cleanup: cannot sign in: ${oneLine(e.message)}`);
    return;
  }
  const attempt = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${oneLine(e.message)}`);
    }
  };
  if (state.policyBefore !== undefined) {
    await attempt('registry policy', async () => {
      if (state.policyBefore === null) {
        await api.ecr('DeleteRegistryPolicy', {}).catch((e) => { if (e.type !== 'RegistryPolicyNotFoundException') throw e; });
      } else {
        await api.ecr('PutRegistryPolicy', {policyText: state.policyBefore});
      }
    });
  }
  for (const p of state.templates) {
    await attempt(`template ${p}`, () => api.ecr('DeleteRepositoryCreationTemplate', {prefix: p}));
  }
  await attempt('repositories', async () => {
    const names = [];
    let nextToken;
    do {
      const r = await api.ecr('DescribeRepositories', nextToken ? {nextToken} : {});
      names.push(...(r.repositories || []).map((x) => x.repositoryName));
      nextToken = r.nextToken;
    } while (nextToken);
    for (const name of names) {
      if (name.startsWith(`${prefix}/`) || name.startsWith(`${prefix}-push/`)) {
        await api.ecr('DeleteRepository', {repositoryName: name, force: true});
      }
    }
  });
  for (const p of state.createdRules) {
    await attempt(`rule ${p}`, () => api.ecr('DeletePullThroughCacheRule', {ecrRepositoryPrefix: p}));
  }
  for (const p of [prefix, `${prefix}x`]) {
    await api.call('secretsmanager/DeleteSecret', {SecretId: `ecr-pullthroughcache/${p}`, ForceDeleteWithoutRecovery: true})
      .catch(() => {});
  }
  if (state.user) {
    const p = pierctl(['user', 'delete', state.user]);
    if (p.code !== 0) problems.push(`user ${state.user}: ${oneLine(p.stderr)}`);
  }
  await api.call('logout', {}).catch(() => {});
  if (problems.length) console.log(`# cleanup left something behind: ${problems.join('; ')}`);
}

runMain('console_test', main);
