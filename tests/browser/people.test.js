#!/usr/bin/env node
// Browser test of the console's Users and access keys page and its Activity
// page, at 1400 px and at 800 px wide: create a user with a key (the secret is
// shown once and gone after navigating away), use the key, attach and edit an
// identity policy (a refused one is marked in the editor), deactivate and
// delete the key, mint a login password and use it, delete the user; your
// own last key cannot be deactivated or deleted; the activity page shows
// these actions, a refusal as a refusal, and filters them.
//
// Environment as console.test.js: PIER_URL, PIER_ADMIN_ENV, PIER_STATE_DIR,
// PIER_BUILD_DIR, PIER_TEST_DIR (screenshots: $PIER_TEST_DIR/screenshots/people-*.png).
'use strict';

const crypto = require('crypto');
const {check, assert, eq, sleep, waitFor, ConsoleApi, basic, startBrowser, runMain, testEnvironment} = require('./lib');

const SETTLE_MS = 1500; // every worker's key and policy cache (policy_cache_ms) has expired

async function v2(base, auth) {
  const r = await fetch(`${base}/v2/`, {headers: {Authorization: auth}});
  return r.status;
}

/** The whole scenario in one browser window of the given width. */
async function scenario(base, admin, width) {
  const w = String(width);
  const browser = await startBrowser({viewport: {width, height: 900}, name: w});
  if (!browser) return;
  const {page, go, heading, flashText, shot, overflow} = browser;
  const run = crypto.randomBytes(3).toString('hex');
  const userName = `ppl-ui-${w}-${run}`;
  const api = new ConsoleApi(base);
  let key = null;
  let adminArn = null;
  try {
    await api.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);

    await check(`people_page_lists_users_${w}`, ['chromium_starts'], async () => {
      await browser.signIn(base, admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      await page.getByRole('link', {name: 'Users and access keys'}).click();
      await heading('Users and access keys');
      const me = page.locator('tr', {has: page.locator('.badge', {hasText: 'You'})});
      await me.first().waitFor();
      assert((await me.first().innerText()).includes(admin.AWS_ACCESS_KEY_ID), 'your row does not list your access key');
      adminArn = (await page.locator('#session-user').getAttribute('title')) || '';
      await shot(`people-list-${w}`);
    });

    await check(`people_create_user_shows_the_secret_once_${w}`, [`people_page_lists_users_${w}`], async () => {
      await page.fill('input[name=userName]', userName);
      assert(await page.locator('#create-key').isChecked(), 'the first access key is not offered');
      await page.getByRole('button', {name: 'Create user'}).click();
      const panel = page.locator('.secret-panel');
      await panel.waitFor();
      const text = await panel.innerText();
      assert(/only time the secret is shown/i.test(text), `no warning in ${JSON.stringify(text.slice(0, 200))}`);
      const values = await panel.locator('input').evaluateAll((els) => els.map((e) => e.value));
      key = {id: values[0], secret: values[1]};
      assert(/^PIER[A-Z2-7]{16}$/.test(key.id) && key.secret.length === 40, `key ${key.id} / ${key.secret.length} characters`);
      eq(await panel.getByRole('button', {name: /^Copy/}).count(), 2, 'copy buttons');
      await page.locator(`tr[data-user="${userName}"]`).waitFor();
      assert((await page.locator(`tr[data-user="${userName}"]`).innerText()).includes(key.id), 'the new key is not in the table');
      await shot(`people-created-${w}`);
    });

    await check(`people_secret_is_gone_after_navigation_${w}`, [`people_create_user_shows_the_secret_once_${w}`], async () => {
      await go('#/overview');
      await heading('Overview');
      await go('#/people');
      await heading('Users and access keys');
      await page.locator(`tr[data-user="${userName}"]`).waitFor();
      eq(await page.locator('.secret-panel').count(), 0, 'secret panels after navigation');
      const html = await page.content();
      assert(!html.includes(key.secret), 'the secret is still in the page');
      await page.getByRole('link', {name: userName, exact: true}).click();
      await heading(userName);
      assert(!(await page.content()).includes(key.secret), 'the user page shows the secret');
    });

    await check(`people_new_key_works_${w}`, [`people_create_user_shows_the_secret_once_${w}`], async () => {
      eq(await v2(base, basic(key.id, key.secret)), 200, 'GET /v2/ with the new key');
      const r = await fetch(`${base}/token?service=pier`, {headers: {Authorization: basic(key.id, key.secret)}});
      eq(r.status, 200, 'a token with the new key');
    });

    await check(`people_edit_user_policy_${w}`, [`people_secret_is_gone_after_navigation_${w}`], async () => {
      eq(await page.locator('select[name=policy]').inputValue(), '', 'a user without policies starts with a new one');
      await page.fill('input[name=policyName]', 'pull');
      await page.getByRole('button', {name: 'Save policy'}).click();
      await page.locator('.section-status .notice-success', {hasText: 'Policy pull is attached'}).waitFor();
      eq(await page.locator('select[name=policy]').inputValue(), 'pull', 'the saved policy is selected');
      const got = await api.call('iam/GetUserPolicy', {UserName: userName, PolicyName: 'pull'});
      assert(got.PolicyDocument.includes('ecr:BatchGetImage'), `stored: ${got.PolicyDocument}`);
      // A refused edit: marked in the editor, the stored policy unchanged.
      const ta = page.locator('textarea.editor-input');
      await ta.fill(got.PolicyDocument.replace('ecr:BatchGetImage', 's3:GetObject'));
      await page.getByRole('button', {name: 'Save policy'}).click();
      const msg = page.locator('.editor-message-error');
      await msg.waitFor();
      assert(/s3:GetObject/.test(await msg.innerText()), `the error says ${await msg.innerText()}`);
      eq((await api.call('iam/GetUserPolicy', {UserName: userName, PolicyName: 'pull'})).PolicyDocument, got.PolicyDocument,
        'the policy after a refused save');
      await shot(`people-policy-refused-${w}`);
      await page.getByRole('button', {name: 'Revert'}).click();
      await page.locator('.editor-message-error').waitFor({state: 'detached'}).catch(() => {});
    });

    await check(`people_deactivate_and_delete_key_${w}`, [`people_new_key_works_${w}`, `people_secret_is_gone_after_navigation_${w}`], async () => {
      const row = page.locator(`tr[data-key="${key.id}"]`);
      await row.getByRole('button', {name: `Deactivate access key ${key.id}`}).click();
      await row.locator('.badge', {hasText: 'Inactive'}).waitFor();
      await sleep(SETTLE_MS);
      eq(await v2(base, basic(key.id, key.secret)), 401, 'GET /v2/ with the deactivated key');
      await shot(`people-key-inactive-${w}`);
      await row.getByRole('button', {name: `Delete access key ${key.id}`}).click();
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      await dialog.getByRole('button', {name: 'Delete key'}).click();
      await row.waitFor({state: 'detached'});
      const users = (await api.call('iam/ListUsers', {})).Users;
      eq(users.find((u) => u.name === userName).accessKeys.length, 0, 'keys left');
    });

    await check(`people_login_password_${w}`, [`people_secret_is_gone_after_navigation_${w}`], async () => {
      await page.fill('input[name=hours]', '1');
      await page.getByRole('button', {name: 'Create login password'}).click();
      const panel = page.locator('.secret-panel', {hasText: 'Login password'});
      await panel.waitFor();
      const pw = await panel.locator('input.secret-value').inputValue();
      assert(pw.startsWith('PIER1.'), `password ${pw.slice(0, 8)}…`);
      await waitFor('the login password works', async () => (await v2(base, basic('AWS', pw))) === 200, 5000);
      await shot(`people-login-password-${w}`);
    });

    await check(`people_own_last_key_is_protected_${w}`, [`people_page_lists_users_${w}`], async () => {
      const me = adminArn.split('/').pop();
      await go(`#/people/${encodeURIComponent(me)}`);
      await heading(me);
      const row = page.locator(`tr[data-key="${admin.AWS_ACCESS_KEY_ID}"]`);
      const active = (await api.call('iam/ListUsers', {})).Users.find((u) => u.you).accessKeys.filter((k) => k.active);
      if (active.length === 1) {
        assert(await row.getByRole('button', {name: /^Deactivate/}).isDisabled(), 'your last key can be deactivated');
        assert(await row.getByRole('button', {name: /^Delete access key/}).isDisabled(), 'your last key can be deleted');
      }
      assert(await page.getByRole('button', {name: /^Delete (user|role)/}).isDisabled(), 'you can delete yourself');
      await shot(`people-self-${w}`);
    });

    await check(`people_delete_user_${w}`, [`people_login_password_${w}`], async () => {
      await go(`#/people/${encodeURIComponent(userName)}`);
      await heading(userName);
      await page.getByRole('button', {name: 'Delete user…'}).click();
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      await dialog.getByRole('button', {name: 'Delete user'}).click();
      await heading('Users and access keys');
      assert((await flashText()).includes(`${userName} was deleted`), `flash: ${await flashText()}`);
      eq(await page.locator(`tr[data-user="${userName}"]`).count(), 0, 'rows of the deleted user');
    });

    await check(`activity_shows_and_filters_people_actions_${w}`, [`people_delete_user_${w}`], async () => {
      await page.getByRole('link', {name: 'Activity'}).click();
      await heading('Activity');
      await page.fill('input[name=action]', 'iam:*');
      await page.getByRole('button', {name: 'Apply filters'}).click();
      await waitFor('the filter in the address', async () => (await page.evaluate(() => location.hash)).includes('action=iam'), 5000);
      await page.locator('.activity-table tbody tr').first().waitFor();
      const arn = adminArn.replace(/user\/.*$/, `user/${userName}`);
      const rows = await page.locator('.activity-table tbody tr').evaluateAll((trs, a) => trs
        .filter((tr) => tr.innerText.includes(a))
        .map((tr) => ({action: tr.dataset.action, result: tr.dataset.result, refused: tr.classList.contains('row-refused'),
          badge: (tr.querySelector('.badge') || {}).textContent})), arn);
      const actions = rows.map((r) => r.action);
      for (const a of ['iam:CreateUser', 'iam:CreateAccessKey', 'iam:PutUserPolicy', 'iam:UpdateAccessKey',
        'iam:DeleteAccessKey', 'iam:CreateLoginPassword', 'iam:DeleteUser']) {
        assert(actions.includes(a), `${a} is not in the activity of ${userName}: ${actions.join(', ')}`);
      }
      assert(rows.every((r) => r.action.startsWith('iam:')), 'the action filter let other actions through');
      const refused = rows.filter((r) => r.result !== 'success');
      assert(refused.length >= 1 && refused.every((r) => r.refused && r.badge === 'Refused'),
        `the refused PutUserPolicy is not shown as a refusal: ${JSON.stringify(refused)}`);
      await shot(`activity-iam-${w}`);

      await page.fill('input[name=action]', 'iam:DeleteUser');
      await page.fill('input[name=principal]', adminArn);
      await page.getByRole('button', {name: 'Apply filters'}).click();
      await waitFor('only DeleteUser rows', async () => {
        const acts = await page.locator('.activity-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.action));
        return acts.length > 0 && acts.every((a) => a === 'iam:DeleteUser');
      }, 5000);
      assert((await page.locator('.activity-table tbody tr').first().innerText()).includes(userName),
        'the newest DeleteUser by you is not the one of this test');
      await shot(`activity-filtered-${w}`);
    });

    await check(`people_pages_fit_the_window_${w}`, [`people_page_lists_users_${w}`], async () => {
      eq(overflow.join('; '), '', 'pages or tables wider than their frame');
      eq((await browser.errors()).join('; '), '', 'script errors or CSP violations');
    });
  } finally {
    await api.call('iam/DeleteUser', {UserName: userName}).catch(() => {});
    await browser.close();
  }
}

async function main() {
  const env = testEnvironment('people');
  if (!env) return;
  const {base, admin} = env;
  await scenario(base, admin, 1400);
  await scenario(base, admin, 800);
}

runMain('people_test', main);
