#!/usr/bin/env node
// Browser test of mirror mode on the console's rules page: the rule form sets the
// registries a rule mirrors and the default mirror (through the ECR extension fields),
// the list shows them, and a registry another rule mirrors is refused next to the field.
// Environment as for console.test.js (lib.js).
'use strict';

const crypto = require('crypto');
const {check, assert, eq, ConsoleApi, startBrowser, runMain, testEnvironment} = require('./lib');

async function main() {
  const env = testEnvironment('mirror');
  if (!env) return;
  const {base, admin} = env;
  const run = crypto.randomBytes(4).toString('hex');
  const first = `mi${run}`;
  const second = `mi${run}b`;
  const api = new ConsoleApi(base);
  const browser = await startBrowser({name: 'mirror'});
  if (!browser) return;
  const {page, go, heading, shot} = browser;

  const editRule = async (prefix) => {
    await go('#/rules');
    await heading('Pull through cache');
    await page.getByRole('link', {name: `Edit rule ${prefix}`, exact: true}).click();
    await heading(`Edit rule ${prefix}`);
  };

  try {
    await check('mirror_rules_exist_without_mirrors', ['chromium_starts'], async () => {
      await api.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      for (const p of [first, second]) {
        await api.ecr('CreatePullThroughCacheRule', {ecrRepositoryPrefix: p, upstreamRegistryUrl: 'http://127.0.0.1:9'});
      }
      await browser.signIn(base, admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      await go('#/rules');
      await heading('Pull through cache');
      // A rule that mirrors nothing says nothing about mirrors.
      await page.locator(`tr.rule-row[data-prefix="${first}"]`).waitFor();
      eq(await page.locator(`tr.rule-row[data-prefix="${first}"] .mirror-cell`).count(), 0,
        'mirror lines in the row of a rule that mirrors nothing');
    });

    await check('rule_form_sets_mirrors_and_default_mirror', ['mirror_rules_exist_without_mirrors'], async () => {
      await editRule(first);
      eq(await page.inputValue('input[name=mirrorRegistries]'), '', 'the mirrors field of a rule without mirrors');
      // Not a host name: refused next to the field before anything is sent.
      await page.fill('input[name=mirrorRegistries]', 'https://docker.io');
      await page.getByRole('button', {name: 'Save changes'}).click();
      const err = page.locator('input[name=mirrorRegistries] ~ .field-error');
      await err.waitFor();
      assert(/host name/.test(await err.innerText()), `the mirrors field says ${await err.innerText()}`);
      await page.fill('input[name=mirrorRegistries]', 'Docker.io, quay.io');
      await page.check('input[name=defaultMirror]');
      await shot('rule-mirrors-form');
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Pull through cache');
      const d = (await api.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [first]})).pullThroughCacheRules[0];
      eq(JSON.stringify(d.mirrorRegistries), JSON.stringify(['docker.io', 'quay.io']), 'mirrorRegistries after saving');
      eq(d.defaultMirror, true, 'defaultMirror after saving');
    });

    await check('rules_list_shows_mirrors_and_default', ['rule_form_sets_mirrors_and_default_mirror'], async () => {
      const cell = page.locator(`tr.rule-row[data-prefix="${first}"] .mirror-cell`);
      await cell.locator('.mirror-registry', {hasText: 'quay.io'}).waitFor();
      const names = await cell.locator('.mirror-registry').allInnerTexts();
      eq(JSON.stringify(names), JSON.stringify(['docker.io', 'quay.io']), 'the registries in the row');
      assert(/Default mirror/.test(await cell.innerText()), `no default-mirror badge: ${await cell.innerText()}`);
      await shot('rules-mirrors');
      // The edit form shows what is stored.
      await editRule(first);
      eq(await page.inputValue('input[name=mirrorRegistries]'), 'docker.io, quay.io', 'the mirrors field');
      eq(await page.isChecked('input[name=defaultMirror]'), true, 'the default-mirror box');
    });

    await check('rule_form_refuses_a_registry_another_rule_mirrors', ['rules_list_shows_mirrors_and_default'], async () => {
      await editRule(second);
      await page.fill('input[name=mirrorRegistries]', 'ghcr.io, docker.io');
      await page.getByRole('button', {name: 'Save changes'}).click();
      const err = page.locator('input[name=mirrorRegistries] ~ .field-error');
      await err.waitFor();
      const text = await err.innerText();
      assert(text.includes('docker.io') && text.includes(first), `the refusal does not name docker.io and ${first}: ${text}`);
      await shot('rule-mirrors-taken');
      const d = (await api.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [second]})).pullThroughCacheRules[0];
      assert(!('mirrorRegistries' in d), `the refused change was saved: ${JSON.stringify(d)}`);
      // Cleared on the first rule, the registry can move.
      await api.ecr('UpdatePullThroughCacheRule', {ecrRepositoryPrefix: first, mirrorRegistries: [], defaultMirror: false});
      await page.getByRole('button', {name: 'Save changes'}).click();
      await heading('Pull through cache');
      const after = (await api.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [second]})).pullThroughCacheRules[0];
      eq(JSON.stringify(after.mirrorRegistries), JSON.stringify(['ghcr.io', 'docker.io']), 'mirrorRegistries of the second rule');
      const errors = await browser.errors();
      assert(!errors.length, `script errors or CSP violations: ${errors.join('; ')}`);
      assert(!browser.overflow.length, `pages wider than the window: ${browser.overflow.join('; ')}`);
    });
  } finally {
    for (const p of [first, second]) {
      await api.ecr('DeletePullThroughCacheRule', {ecrRepositoryPrefix: p}).catch(() => {});
    }
    await api.call('logout', {}).catch(() => {});
    await browser.close();
  }
}

runMain('mirror_test', main);
