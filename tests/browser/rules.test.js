#!/usr/bin/env node
// Browser test of the console's pull through cache rules, at 1400 px and 800 px:
// each rule's upstream health (healthy, failing since, rate-limited until), a
// validation's failure in words with its class, "Test connection" before a rule
// is saved (nothing stored), and every rule setting set and removed in the form
// (URL, refresh interval, not-found time, CA bundle, credentials).
//
// Environment: as console.test.js (PIER_URL, PIER_ADMIN_ENV, PIER_STATE_DIR,
// PIER_BUILD_DIR, PIER_TEST_DIR). Upstreams: the loopback docker-registry with
// Basic auth (upstream.py), a closed port, and a small server answering 429 with
// Retry-After (no real registry rate-limits on demand).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const crypto = require('crypto');
const {spawnSync} = require('child_process');
const {
  oneLine, check, assert, eq, waitFor, freePort, ConsoleApi, startUpstream, stopUpstream, startBrowser,
  runMain, testEnvironment,
} = require('./lib');

const VIEWPORTS = [{width: 1400, height: 900, name: '1400'}, {width: 800, height: 900, name: '800'}];

/** A server that answers every request 429 with Retry-After: 600. */
function startTooMany() {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      res.writeHead(429, {'Content-Type': 'application/json', 'Retry-After': '600'});
      res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

function selfSignedPem(dir) {
  const cert = path.join(dir, 'ca.pem');
  const p = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-subj', '/CN=pier-test-ca', '-keyout', path.join(dir, 'ca.key'), '-out', cert], {encoding: 'utf8', timeout: 60000});
  if (p.status !== 0) throw new Error(`openssl req failed: ${oneLine(p.stderr)}`);
  return fs.readFileSync(cert, 'utf8').trim();
}

async function main() {
  const env = testEnvironment('rules');
  if (!env) return;
  const {base, admin} = env;
  const run = crypto.randomBytes(3).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-rules-test-'));
  const created = new Set();
  const secrets = new Set();
  const apiAdmin = new ConsoleApi(base);
  let upstream = null;
  let tooMany = null;
  try {
    await check('rules_setup', [], async () => {
      await apiAdmin.login(admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
      upstream = await startUpstream();
      tooMany = await startTooMany();
    });
    if (!upstream) return;
    const up = upstream.info;
    const rateUrl = `http://127.0.0.1:${tooMany.address().port}`;
    const pem = selfSignedPem(tmp);

    for (const vp of VIEWPORTS) {
      const sfx = `_${vp.name}`;
      const p = (k) => `rh${run}${k}${vp.name}`;
      const ok = p('ok');
      const dead = p('dead');
      const rate = p('rate');
      const nocreds = p('anon');
      const deadUrl = `http://127.0.0.1:${await freePort()}`;

      await check(`rules_with_every_health_state${sfx}`, ['rules_setup'], async () => {
        const s = await apiAdmin.call('secretsmanager/CreateSecret', {Name: `ecr-pullthroughcache/${ok}`,
          SecretString: JSON.stringify({username: up.username, accessToken: up.password})});
        secrets.add(s.ARN);
        for (const [prefix, url, extra] of [[ok, up.url, {credentialArn: s.ARN}], [dead, deadUrl, {}],
          [rate, rateUrl, {}], [nocreds, up.url, {}]]) {
          await apiAdmin.ecr('CreatePullThroughCacheRule', {ecrRepositoryPrefix: prefix, upstreamRegistryUrl: url, ...extra});
          created.add(prefix);
        }
        for (const prefix of [ok, dead, rate]) await apiAdmin.ecr('ValidatePullThroughCacheRule', {ecrRepositoryPrefix: prefix});
      });

      const browser = await startBrowser({viewport: {width: vp.width, height: vp.height}, name: `rules${sfx}`});
      if (!browser) continue;
      const {page, go, heading, flashText, shot} = browser;
      try {
        await check(`rules_sign_in${sfx}`, ['chromium_starts'], async () => {
          await browser.signIn(base, admin.AWS_ACCESS_KEY_ID, admin.AWS_SECRET_ACCESS_KEY);
        });

        await check(`rules_list_shows_upstream_health${sfx}`, [`rules_sign_in${sfx}`, `rules_with_every_health_state${sfx}`], async () => {
          await go('#/rules');
          await heading('Pull through cache');
          const health = (prefix) => page.locator(`tr.rule-row[data-prefix="${prefix}"] .health`);
          await health(ok).waitFor();
          eq(await health(ok).getAttribute('data-state'), 'healthy', `state of ${ok}`);
          const okText = await health(ok).innerText();
          assert(/Healthy/.test(okText) && /last success/.test(okText) && /requests failed|no requests/.test(okText),
            `the healthy rule shows ${oneLine(okText)}`);
          eq(await health(dead).getAttribute('data-state'), 'failing', `state of ${dead}`);
          const deadText = await health(dead).innerText();
          assert(/Failing\s+since/.test(deadText) && /Unreachable/.test(deadText), `the failing rule shows ${oneLine(deadText)}`);
          eq(await health(rate).getAttribute('data-state'), 'rate-limited', `state of ${rate}`);
          const rateText = await health(rate).innerText();
          assert(/Rate-limited\s+until/.test(rateText) && /UTC \(in \d+ min\)/.test(rateText), `the rate-limited rule shows ${oneLine(rateText)}`);
          eq(await health(nocreds).getAttribute('data-state'), 'unknown', `state of ${nocreds}`);
          assert(await health(dead).isVisible(), 'the health of the failing rule is not visible');
          await shot(`rules-health${sfx}`);
        });

        await check(`validate_failure_in_words${sfx}`, [`rules_list_shows_upstream_health${sfx}`], async () => {
          await page.getByRole('button', {name: `Validate rule ${nocreds}`}).click();
          const result = page.locator(`tr.rule-row[data-prefix="${nocreds}"] + tr .validate-result`);
          await result.waitFor({timeout: 60000});
          eq(await result.getAttribute('data-failure-class'), 'auth-refused', 'failure class of a rule without credentials');
          const text = await result.innerText();
          assert(/Credentials needed/.test(text) && !/could not reach/i.test(text), `validation result ${oneLine(text)}`);
          // The row's health follows the validation at once.
          await waitFor('the health cell to say failing', async () =>
            (await page.locator(`tr.rule-row[data-prefix="${nocreds}"] .health`).getAttribute('data-state')) === 'failing');
          await page.getByRole('button', {name: `Validate rule ${rate}`}).click();
          const r2 = page.locator(`tr.rule-row[data-prefix="${rate}"] + tr .validate-result`);
          await r2.waitFor({timeout: 60000});
          eq(await r2.getAttribute('data-failure-class'), 'rate-limited', 'failure class of the 429 upstream');
          assert(/600 s/.test(await r2.innerText()), `the Retry-After is not told: ${oneLine(await r2.innerText())}`);
          await shot(`rules-validate${sfx}`);
        });

        await check(`test_connection_before_saving${sfx}`, [`rules_sign_in${sfx}`], async () => {
          const before = (await apiAdmin.call('secretsmanager/ListSecrets', {})).SecretList.length;
          const fresh = p('new');
          await go('#/rules/new');
          await heading('Create a pull through cache rule');
          await page.selectOption('select[name=upstreamRegistry]', 'oci');
          await page.fill('input[name=upstreamRegistryUrl]', up.url);
          await page.fill('input[name=ecrRepositoryPrefix]', fresh);
          await page.fill('input[name=username]', up.username);
          await page.fill('input[name=accessToken]', 'not-the-password');
          await page.getByRole('button', {name: 'Test connection'}).click();
          const result = page.locator('.test-connection-result');
          await result.waitFor({timeout: 60000});
          eq(await result.getAttribute('data-valid'), 'false', 'a wrong password');
          eq(await result.getAttribute('data-failure-class'), 'auth-refused', 'class of a wrong password');
          assert(/Credentials refused/.test(await result.innerText()), `test result ${oneLine(await result.innerText())}`);
          await shot(`rule-test-connection${sfx}`);
          await page.fill('input[name=accessToken]', up.password);
          await page.getByRole('button', {name: 'Test connection'}).click();
          await waitFor('a successful test', async () => (await result.getAttribute('data-valid')) === 'true', 60000);
          // Nothing was saved: no rule, no secret.
          const d = await apiAdmin.ecr('DescribePullThroughCacheRules', {});
          assert(!d.pullThroughCacheRules.some((r) => r.ecrRepositoryPrefix === fresh), 'testing created the rule');
          eq((await apiAdmin.call('secretsmanager/ListSecrets', {})).SecretList.length, before, 'number of secrets after testing');
          if (vp.name === '800') assert(!browser.overflow.some((o) => o.startsWith('rule-test-connection')), `the form overflows: ${browser.overflow}`);
        });

        const edit = async () => {
          await go('#/rules');
          await heading('Pull through cache');
          await page.getByRole('link', {name: `Edit rule ${ok}`}).click();
          await heading(`Edit rule ${ok}`);
        };
        const describe = async () => (await apiAdmin.ecr('DescribePullThroughCacheRules', {ecrRepositoryPrefixes: [ok]})).pullThroughCacheRules[0];

        await check(`rule_form_sets_every_setting${sfx}`, [`rules_list_shows_upstream_health${sfx}`], async () => {
          await edit();
          eq(await page.inputValue('input[name=refreshInterval]'), '1d', 'the refresh field of a new rule');
          eq(await page.inputValue('input[name=negativeCache]'), '5m', 'the not-found field of a new rule');
          eq(await page.inputValue('textarea[name=caBundle]'), '', 'the CA bundle field of a new rule');
          const shown = await page.locator('.rule-health .health').getAttribute('data-state');
          eq(shown, 'healthy', 'the edit page shows the health');
          // Wrong values are refused next to their fields.
          await page.fill('input[name=refreshInterval]', 'soon');
          await page.fill('textarea[name=caBundle]', 'not a certificate');
          await page.getByRole('button', {name: 'Save changes'}).click();
          await page.locator('input[name=refreshInterval] ~ .field-error').waitFor();
          await page.locator('textarea[name=caBundle] ~ .field-error').waitFor();
          const newUrl = up.url.replace('127.0.0.1', 'localhost');
          await page.fill('input[name=upstreamRegistryUrl]', newUrl);
          await page.fill('input[name=refreshInterval]', '30m');
          await page.fill('input[name=negativeCache]', '0');
          await page.fill('textarea[name=caBundle]', pem);
          await shot(`rule-edit-settings${sfx}`);
          if (vp.name === '800') assert(!browser.overflow.some((o) => o.startsWith('rule-edit-settings')), `the form overflows: ${browser.overflow}`);
          await page.getByRole('button', {name: 'Save changes'}).click();
          await heading('Pull through cache');
          assert((await flashText()).includes(`${ok} was saved`), `flash: ${await flashText()}`);
          const d = await describe();
          eq(d.pierRefreshSeconds, 1800, 'pierRefreshSeconds after 30m');
          eq(d.pierNegativeSeconds, 0, 'pierNegativeSeconds after 0');
          eq((d.pierCaBundle || '').trim(), pem, 'pierCaBundle');
          eq(d.upstreamRegistryUrl, newUrl, 'the new URL');
          eq(d.pierHasCredentials, true, 'credentials kept');
          // The form reads them back.
          await edit();
          eq(await page.inputValue('input[name=refreshInterval]'), '30m', 'the refresh field');
          eq(await page.inputValue('input[name=negativeCache]'), '0s', 'the not-found field');
          eq(await page.inputValue('input[name=upstreamRegistryUrl]'), newUrl, 'the URL field');
        });

        await check(`rule_form_removes_every_setting${sfx}`, [`rule_form_sets_every_setting${sfx}`], async () => {
          await edit();
          await page.check('input[name=removeCredentials]');
          // Tried before saving: the upstream wants credentials.
          await page.getByRole('button', {name: 'Test connection'}).click();
          const result = page.locator('.test-connection-result');
          await result.waitFor({timeout: 60000});
          eq(await result.getAttribute('data-failure-class'), 'auth-refused', 'a test without the credentials');
          await page.fill('textarea[name=caBundle]', '');
          await page.fill('input[name=upstreamRegistryUrl]', up.url);
          await page.fill('input[name=refreshInterval]', '');
          await page.getByRole('button', {name: 'Save changes'}).click();
          await heading('Pull through cache');
          const d = await describe();
          eq(d.pierHasCredentials, false, 'credentials removed');
          eq(d.credentialArn, undefined, 'credentialArn removed');
          eq(d.pierCaBundle, undefined, 'the CA bundle removed');
          eq(d.pierRefreshSeconds, 86400, 'refresh back to the default');
          eq(d.upstreamRegistryUrl, up.url, 'the URL back');
          const row = page.locator(`tr.rule-row[data-prefix="${ok}"]`);
          await row.waitFor();
          assert(/None/.test(await row.locator('td').nth(1).innerText()), `credentials cell: ${oneLine(await row.innerText())}`);
          await shot(`rules-after-removal${sfx}`);
        });

        await check(`no_script_errors_rules${sfx}`, ['chromium_starts'], async () => {
          const all = await browser.errors();
          assert(!all.length, all.join('; '));
        });
      } finally {
        await browser.close();
      }
    }
  } finally {
    for (const prefix of created) await apiAdmin.ecr('DeletePullThroughCacheRule', {ecrRepositoryPrefix: prefix}).catch(() => {});
    for (const arn of secrets) await apiAdmin.call('secretsmanager/DeleteSecret', {SecretId: arn, ForceDeleteWithoutRecovery: true}).catch(() => {});
    if (tooMany) tooMany.close();
    await stopUpstream(upstream);
    fs.rmSync(tmp, {recursive: true, force: true});
  }
}

runMain('rules', main);
