// Shared parts of the console's browser tests (every tests/browser/*.test.js):
// reporting ("ok - <name>" / "not ok - <name>: <reason>", then "N passed, N failed"),
// the environment, pierctl, a console API session in node, the loopback upstream
// (upstream.py), and a headless Chromium with the page helpers every test uses.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const crypto = require('crypto');
const {spawn, spawnSync} = require('child_process');

const HERE = __dirname;
const VIEWPORT = {width: 1366, height: 768};
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');
const PULL_ACTIONS = ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'];

// ---- reporting ----------------------------------------------------------------

let passed = 0;
let failed = 0;
const failedNames = new Set();

function oneLine(s) {
  // eslint-disable-next-line no-control-regex
  return String(s).replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim().slice(0, 900);
}

function report(name, error) {
  if (error) {
    failed += 1;
    failedNames.add(name);
    console.log(`not ok - ${name}: ${oneLine(error.message || error)}`);
  } else {
    passed += 1;
    console.log(`ok - ${name}`);
  }
}

/** Run one check; `needs` names checks that must have passed first. */
async function check(name, needs, fn) {
  const missing = (needs || []).filter((n) => failedNames.has(n) || !ran.has(n));
  if (missing.length) {
    report(name, new Error(`not run: it needs "${missing.join('", "')}"`));
    return false;
  }
  ran.add(name);
  try {
    await fn();
    report(name, null);
    return true;
  } catch (e) {
    report(name, e);
    return false;
  }
}
const ran = new Set();

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function eq(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

// ---- environment -----------------------------------------------------------------

function need(name) {
  const v = (process.env[name] || '').trim();
  if (!v) throw new Error(`precondition missing: ${name} is not set`);
  return v;
}

function readEnvFile(file) {
  const out = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/**
 * What every browser test needs from run.sh: the registry's URL (base, no trailing
 * slash) and the administrator's access key (admin, from PIER_ADMIN_ENV), plus the
 * other variables named in `more`. Null, with `<name>_test_environment` reported as
 * failed, when any of them is missing.
 */
function testEnvironment(name, more = []) {
  try {
    const base = need('PIER_URL').replace(/\/+$/, '');
    const admin = readEnvFile(need('PIER_ADMIN_ENV'));
    for (const v of ['PIER_TEST_DIR', ...more]) need(v);
    assert(admin.AWS_ACCESS_KEY_ID && admin.AWS_SECRET_ACCESS_KEY, `${process.env.PIER_ADMIN_ENV} lacks the access key`);
    return {base, admin};
  } catch (e) {
    report(`${name}_test_environment`, e);
    return null;
  }
}

/** The console's byte formatting (htdocs/console/dom.js formatBytes). */
function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + (timeoutMs || 10000);
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(150);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- Pier from node: pierctl, the console API, the registry ---------------------

function pierctl(args, input) {
  const exe = path.join(need('PIER_BUILD_DIR'), 'pierctl');
  const conf = path.join(need('PIER_STATE_DIR'), 'pier.conf');
  const p = spawnSync(exe, ['-c', conf, ...args], {input: input || '', encoding: 'utf8', timeout: 60000});
  return {code: p.status, stdout: p.stdout || '', stderr: (p.stderr || '') + (p.error ? String(p.error) : '')};
}

function pierctlOk(args, input) {
  const p = pierctl(args, input);
  if (p.code !== 0) throw new Error(`pierctl ${args.join(' ')} failed (${p.code}): ${oneLine(p.stderr)}`);
  return p.stdout;
}

/** A console API session in node (for setup checks and cleanup). */
class ConsoleApi {
  constructor(base) {
    this.base = base;
    this.cookie = '';
    this.csrf = '';
  }

  async login(keyId, secret) {
    const r = await fetch(`${this.base}/console/api/login`, {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({accessKeyId: keyId, secretAccessKey: secret})});
    const body = await r.json();
    if (r.status !== 200) throw new Error(`console login: ${r.status} ${JSON.stringify(body)}`);
    this.cookie = (r.headers.get('set-cookie') || '').split(';')[0];
    this.csrf = body.csrfToken;
    return body;
  }

  async call(what, input) {
    const r = await fetch(`${this.base}/console/api/${what}`, {method: 'POST',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': this.csrf, Cookie: this.cookie},
      body: JSON.stringify(input || {})});
    const body = await r.json().catch(() => ({}));
    if (r.status !== 200) {
      const e = new Error(`${what}: ${r.status} ${JSON.stringify(body)}`);
      e.type = body.error && body.error.type;
      throw e;
    }
    return body;
  }

  ecr(op, input) {
    return this.call(`ecr/${op}`, input);
  }
}

function basic(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

async function getManifest(base, repo, ref, auth) {
  const r = await fetch(`${base}/v2/${repo}/manifests/${ref}`, {headers: {Accept: MANIFEST_ACCEPT, Authorization: auth}});
  const text = await r.text();
  return {status: r.status, digest: r.headers.get('docker-content-digest'), text};
}

function skopeoPull(ref, creds, all, dest) {
  const args = ['--insecure-policy', 'copy', '--src-tls-verify=false', `--src-creds=${creds}`];
  if (all) args.push('--all');
  args.push(ref, `oci:${dest}:x`);
  const p = spawnSync('skopeo', args, {encoding: 'utf8', timeout: 180000});
  if (p.status !== 0) throw new Error(`skopeo copy ${ref} failed (${p.status}): ${oneLine((p.stderr || '') + (p.error || ''))}`);
}

// ---- the upstream ---------------------------------------------------------------

function startUpstream() {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [path.join(HERE, 'upstream.py')], {stdio: ['pipe', 'pipe', 'pipe'], env: process.env});
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`the upstream did not start in 120 s: ${oneLine(err).slice(-400)}`));
    }, 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      let info;
      try {
        info = JSON.parse(out.slice(0, nl));
      } catch (e) {
        reject(new Error(`the upstream printed ${out.slice(0, 200)}`));
        return;
      }
      if (info.error) reject(new Error(`the upstream did not start: ${info.error}`));
      else resolve({info, child});
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the upstream exited (${code}) before it was ready: ${oneLine(err).slice(-600)}`));
    });
  });
}

async function stopUpstream(up) {
  if (!up || up.child.exitCode !== null) return;
  const exited = new Promise((r) => up.child.once('exit', r));
  up.child.stdin.end();
  const t = setTimeout(() => up.child.kill('SIGTERM'), 20000);
  await exited;
  clearTimeout(t);
}

// ---- main -------------------------------------------------------------------------

// ---- the browser ------------------------------------------------------------------

/**
 * Start headless Debian Chromium (playwright-core) at `viewport` and return the page
 * with the helpers every test uses: go(hash), heading(text), flashText(), shot(name)
 * (screenshot into $PIER_TEST_DIR/screenshots, noting horizontal overflow and CSP
 * violations), overflow[] and scriptErrors[], and close(). Reports chromium_starts;
 * returns null when it cannot start.
 */
async function startBrowser(opts) {
  const o = opts || {};
  const viewport = o.viewport || VIEWPORT;
  const shots = path.join(need('PIER_TEST_DIR'), 'screenshots');
  fs.mkdirSync(shots, {recursive: true});
  const suffix = o.name ? `_${o.name}` : '';
  let chromium;
  try {
    ({chromium} = require('playwright-core'));
  } catch (e) {
    report(`chromium_starts${suffix}`, new Error(`playwright-core is not installed (run npm ci in ${HERE}): ${e.message}`));
    return null;
  }
  const executablePath = process.env.PIER_CHROMIUM || '/usr/bin/chromium';
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-console-chromium-'));
  let context;
  try {
    if (!fs.existsSync(executablePath)) throw new Error(`precondition missing: ${executablePath} (apt-get install chromium)`);
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      viewport,
      slowMo: Number(process.env.PIER_BROWSER_SLOWMO || 0),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    report(`chromium_starts${suffix}`, e);
    fs.rmSync(userDataDir, {recursive: true, force: true});
    return null;
  }
  report(`chromium_starts${suffix}`, null);
  ran.add('chromium_starts');

  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  const scriptErrors = [];
  const overflow = [];
  page.on('pageerror', (e) => scriptErrors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) scriptErrors.push(`console: ${m.text()}`);
  });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  const b = {
    context, page, viewport, scriptErrors, overflow,
    go: async (hash) => {
      await page.evaluate((h) => { location.hash = h; }, hash);
    },
    heading: async (text) => {
      await page.locator('#page h1', {hasText: text}).first().waitFor();
    },
    flashText: () => page.locator('#flash').innerText(),
    shot: async (name, shotOpts) => {
      if (!(shotOpts && shotOpts.keepScroll)) await page.evaluate(() => window.scrollTo(0, 0));
      await page.waitForTimeout(120); // let fonts and layout settle
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      if (width > viewport.width) overflow.push(`${name}: ${width}px wide`);
      // Tables scroll inside their frame when too wide: none should need to.
      const wide = await page.evaluate(() => [...document.querySelectorAll('.table-wrap')]
        .filter((w) => w.scrollWidth > w.clientWidth + 1).map((w) => `${w.scrollWidth}>${w.clientWidth}`));
      if (wide.length) overflow.push(`${name}: a table is wider than its frame (${wide.join(', ')})`);
      await page.screenshot({path: path.join(shots, `${name}.png`)});
      const csp = await page.evaluate(() => window.__csp || []);
      for (const v of csp) if (!scriptErrors.includes(v)) scriptErrors.push(v);
    },
    /** Sign in through the form with an access key; waits for the first page's heading. */
    signIn: async (base, keyId, secret, landing) => {
      await page.goto(`${base}/console/`);
      await b.heading('Sign in to Pier');
      await page.fill('input[name=accessKeyId]', keyId);
      await page.fill('input[name=secretAccessKey]', secret);
      await page.getByRole('button', {name: 'Sign in'}).click();
      await b.heading(landing || 'Overview');
    },
    /** The script errors and CSP violations seen so far (empty when clean). */
    errors: async () => {
      const csp = await page.evaluate(() => window.__csp || []).catch(() => []);
      return scriptErrors.concat(csp.filter((v) => !scriptErrors.includes(v)));
    },
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, {recursive: true, force: true});
    },
  };
  return b;
}

// ---- accessibility and narrow windows -----------------------------------------

let axeSource = null;

/**
 * Run axe-core (pinned in package.json) on the page as it is now and return its
 * violations of the given impacts (default: critical, serious and moderate) as
 * [{id, impact, help, targets}]. The source is evaluated through the DevTools
 * protocol (page.evaluate), not added as a <script>: the console's CSP refuses
 * inline scripts, and must keep refusing them while the check runs.
 */
async function axeViolations(page, opts) {
  const o = opts || {};
  const impacts = o.impacts || ['critical', 'serious', 'moderate'];
  if (!axeSource) axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!await page.evaluate(() => Boolean(window.axe))) await page.evaluate(axeSource);
  const found = await page.evaluate(async (exclude) => {
    const r = await window.axe.run({exclude}, {resultTypes: ['violations']});
    return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.slice(0, 4).map((n) => n.target.join(' '))}));
  }, o.exclude || []);
  return found.filter((v) => impacts.includes(v.impact));
}

/**
 * Throw (naming the rules and elements) when axe finds a violation of impact
 * critical, serious or moderate on the page; `name` says which page in the
 * message. For a check: await check('x', [...], () => axeCheck(page, 'rules at 800 px')).
 */
async function axeCheck(page, name, opts) {
  const found = await axeViolations(page, opts);
  if (found.length) {
    throw new Error(`${name}: ${found.map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.targets.join(' | ')}`).join('; ')}`);
  }
}

/**
 * The contrast ratio (WCAG 2) of the first element matching selector: its text
 * colour against the first opaque background of it or its ancestors. For text
 * axe does not check (inside aria-hidden parts, such as the editor's line numbers).
 */
async function contrastRatio(page, selector) {
  return page.locator(selector).first().evaluate((el) => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => {
        const x = v / 255;
        return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    let bg = null;
    for (let n = el; n && !bg; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) bg = c.slice(0, 3);
    }
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const b = lum(bg || [255, 255, 255]);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  });
}

/**
 * Throw when the page is wider than the window (a horizontal page scroll), or
 * when a button or link inside #page cannot be brought into the window: each is
 * scrolled into view (a table scrolls inside its frame) and must then lie
 * within the window's width. Scrolls back to the top afterwards.
 */
async function fitsWindow(page, name) {
  const r = await page.evaluate(() => {
    const width = window.innerWidth;
    const page = document.documentElement.scrollWidth;
    const out = [];
    for (const el of document.querySelectorAll('#page button, #page a, #page input, #page select, #page textarea, #sidenav a')) {
      if (!el.offsetParent || el.closest('[hidden]')) continue;
      el.scrollIntoView({block: 'nearest', inline: 'nearest'});
      const b = el.getBoundingClientRect();
      if (b.width > 0 && (b.left < -1 || b.right > width + 1)) {
        out.push(`${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') || el.textContent || el.name || '').trim().slice(0, 40)}" at ${Math.round(b.left)}..${Math.round(b.right)}`);
      }
    }
    for (const w of document.querySelectorAll('.table-wrap, .table-scroll')) w.scrollLeft = 0;
    window.scrollTo(0, 0);
    return {width, page, out};
  });
  if (r.page > r.width) throw new Error(`${name}: the page is ${r.page} px wide in a ${r.width} px window`);
  if (r.out.length) throw new Error(`${name}: out of reach: ${r.out.slice(0, 6).join('; ')}`);
}

/** Run a test file's main(): a 15-minute limit, then the "N passed, N failed" line. */
function runMain(name, main) {
  setTimeout(() => {
    report(`${name}_finishes_in_15_minutes`, new Error('still running; stopped'));
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(1);
  }, 15 * 60 * 1000).unref();
  main()
    .catch((e) => report(`${name}_crashed`, e))
    .finally(() => {
      console.log(`${passed} passed, ${failed} failed`);
      process.exitCode = failed ? 1 : 0;
    });
}

module.exports = {
  HERE, VIEWPORT, MANIFEST_ACCEPT, PULL_ACTIONS,
  oneLine, report, check, ran, assert, eq, need, readEnvFile, testEnvironment, formatBytes, sleep, waitFor, freePort,
  pierctl, pierctlOk, ConsoleApi, basic, getManifest, skopeoPull, startUpstream, stopUpstream,
  startBrowser, runMain, axeViolations, axeCheck, fitsWindow, contrastRatio,
};
