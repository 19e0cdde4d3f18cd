// Pier console: session, navigation and the sign-in page. Pages live in
// pages/*.js; each renders into a container it is given.

import {api, setCsrfToken, onSessionExpired, ApiError} from './api.js';
import {h, clear, errorNotice, notice, field, pageHeader} from './dom.js';
import {overviewPage} from './pages/overview.js';
import {rulesPage, ruleFormPage} from './pages/rules.js';
import {permissionsPage} from './pages/permissions.js';
import {repositoriesPage, repositoryPage} from './pages/repositories.js';
import {templatesPage, templateFormPage} from './pages/templates.js';
import {storagePage} from './pages/storage.js';
import {peoplePage, personPage} from './pages/people.js';
import {activityPage} from './pages/activity.js';
import {imagePage} from './pages/image.js';

// title: the heading of the page when it cannot be shown (refused, failed).
const ROUTES = [
  {re: /^overview$/, nav: 'overview', page: overviewPage, title: 'Overview'},
  {re: /^rules$/, nav: 'rules', page: rulesPage, title: 'Pull through cache'},
  {re: /^rules\/new$/, nav: 'rules', page: ruleFormPage, title: 'Create a pull through cache rule'},
  {re: /^rules\/edit\/(.+)$/, nav: 'rules', page: ruleFormPage, title: 'Edit a pull through cache rule'},
  {re: /^permissions$/, nav: 'permissions', page: permissionsPage, title: 'Registry permissions'},
  {re: /^repositories$/, nav: 'repositories', page: repositoriesPage, title: 'Repositories'},
  {re: /^repositories\/(.+)$/, nav: 'repositories', page: repositoryPage, title: 'Repository'},
  {re: /^image\/([^/]+)\/(.+)$/, nav: 'repositories', page: imagePage, title: 'Image'},
  {re: /^templates$/, nav: 'templates', page: templatesPage, title: 'Creation templates'},
  {re: /^storage$/, nav: 'storage', page: storagePage, title: 'Storage'},
  {re: /^templates\/new$/, nav: 'templates', page: templateFormPage, title: 'Create a repository creation template'},
  {re: /^templates\/edit\/(.+)$/, nav: 'templates', page: templateFormPage, title: 'Edit a repository creation template'},
  {re: /^people$/, nav: 'people', page: peoplePage, title: 'Users and access keys'},
  {re: /^people\/(.+)$/, nav: 'people', page: personPage, title: 'User'},
  {re: /^activity$/, nav: 'activity', page: activityPage, title: 'Activity'},
];

const els = {
  page: document.getElementById('page'),
  flash: document.getElementById('flash'),
  nav: document.getElementById('sidenav'),
  session: document.getElementById('session'),
  user: document.getElementById('session-user'),
  signOut: document.getElementById('sign-out'),
  main: document.getElementById('main'),
};

let session = null;
let seq = 0;
let pendingFlash = null;
let leaveHandlers = [];
let registryInfo = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  return {path, query};
}

// ---- flash messages --------------------------------------------------------

function showFlash(kind, text) {
  clear(els.flash);
  if (!text) return;
  const close = h('button', {type: 'button', class: 'button button-small button-quiet', 'aria-label': 'Dismiss message'}, '×');
  const box = notice(kind, h('span', {class: 'flash-text'}, text), close);
  close.addEventListener('click', () => clear(els.flash));
  els.flash.appendChild(box);
}

// ---- the context pages get -------------------------------------------------

const ctx = {
  get session() { return session; },
  /** Message shown on the next page rendered (after navigate) or now. */
  flash(kind, text, now) {
    if (now) showFlash(kind, text);
    else pendingFlash = {kind, text};
  },
  navigate(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  },
  reload: () => render({keepFlash: true, keepFocus: true}),
  /** Run fn when the user leaves the current page. */
  onLeave(fn) { leaveHandlers.push(fn); },
  /** Account id and region for ARNs (DescribeRegistry, and the region of an existing ARN). */
  async registry() {
    if (registryInfo) return registryInfo;
    const account = (/^arn:aws:iam::([0-9]{12}):/.exec(session.principal) || [])[1] || '111122223333';
    const info = {account, region: 'us-east-1'};
    try {
      const r = await api.ecr('DescribeRegistry', {});
      if (r.registryId) info.account = r.registryId;
    } catch (e) { /* keep the account of the principal */ }
    try {
      const r = await api.ecr('DescribeRepositories', {maxResults: 1});
      const arn = r.repositories && r.repositories[0] && r.repositories[0].repositoryArn;
      const m = /^arn:aws:ecr:([^:]+):/.exec(arn || '');
      if (m) info.region = m[1];
    } catch (e) { /* us-east-1, Pier's default */ }
    registryInfo = info;
    return info;
  },
  registryHost: () => location.host,
};

// ---- navigation ------------------------------------------------------------

function setNav(current) {
  for (const a of els.nav.querySelectorAll('a[data-nav]')) {
    if (a.dataset.nav === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render(opts) {
  opts = opts || {};
  const mySeq = ++seq;
  for (const fn of leaveHandlers) {
    try { fn(); } catch (e) { /* a page's cleanup must not stop navigation */ }
  }
  leaveHandlers = [];
  if (!session) {
    signInPage();
    return;
  }
  const {path, query} = parseHash();
  let route = null;
  let m = null;
  for (const r of ROUTES) {
    m = r.re.exec(path);
    if (m) {
      route = r;
      break;
    }
  }
  if (!route) {
    location.replace('#/overview');
    return;
  }
  setNav(route.nav);
  const params = m.slice(1).map((p) => decodeURIComponent(p));
  const container = h('div', {class: 'page'});
  const slow = setTimeout(() => {
    if (mySeq === seq) {
      clear(els.page).appendChild(h('p', {class: 'loading', role: 'status'}, 'Loading…'));
    }
  }, 150);
  try {
    await route.page(container, {params, query, ctx, current: () => mySeq === seq});
  } catch (e) {
    if (e instanceof ApiError && e.type === 'SessionExpired') return;
    // A refusal is not a failure: say which permission is missing, not "try again".
    clear(container).appendChild(pageHeader(route.title));
    if (e instanceof ApiError && e.type === 'AccessDeniedException') {
      container.appendChild(notice('error', h('span', {class: 'page-denied'},
        h('strong', 'You may not see this page. '), e.message)));
      return finish(mySeq, container, opts);
    }
    // A made-up name in the address (a rule, a template): nothing to try again.
    if (e instanceof ApiError && /NotFoundException$/.test(e.type)) {
      container.appendChild(notice('warning', h('span', {class: 'not-found'}, e.message)));
      const back = els.nav.querySelector(`a[data-nav="${route.nav}"]`);
      if (back) container.appendChild(h('p', {}, h('a', {href: back.getAttribute('href')}, `Back to ${back.textContent}`)));
      return finish(mySeq, container, opts);
    }
    container.appendChild(errorNotice(e, 'This page could not be loaded'));
    container.appendChild(h('p', {}, h('button', {type: 'button', class: 'button', onclick: () => render()}, 'Try again')));
  } finally {
    clearTimeout(slow);
  }
  finish(mySeq, container, opts);
}

function finish(mySeq, container, opts) {
  if (mySeq !== seq) return;
  clear(els.page).appendChild(container);
  if (pendingFlash) {
    showFlash(pendingFlash.kind, pendingFlash.text);
    pendingFlash = null;
  } else if (!opts.keepFlash) {
    clear(els.flash);
  }
  const h1 = container.querySelector('h1');
  document.title = `${h1 ? h1.textContent : 'Pier'} – Pier console`;
  const lost = !document.activeElement || document.activeElement === document.body;
  if (h1 && !opts.initial && (!opts.keepFocus || lost)) h1.focus({preventScroll: Boolean(opts.keepFocus)});
  if (!opts.keepFocus) window.scrollTo(0, 0);
}

// ---- session ---------------------------------------------------------------

function setSession(s) {
  session = s;
  registryInfo = null;
  setCsrfToken(s ? s.csrfToken : '');
  els.nav.hidden = !s;
  els.session.hidden = !s;
  els.user.textContent = '';
  if (s) {
    els.user.appendChild(h('span', {class: 'session-name'}, s.user));
    els.user.title = s.principal;
  }
}

function signInPage(message) {
  setNav(null);
  document.title = 'Sign in – Pier console';
  const keyId = h('input', {type: 'text', name: 'accessKeyId', autocomplete: 'username', spellcheck: 'false',
    autocapitalize: 'off', required: true});
  const secret = h('input', {type: 'password', name: 'secretAccessKey', autocomplete: 'current-password', required: true});
  const submit = h('button', {type: 'submit', class: 'button button-primary'}, 'Sign in');
  const status = h('div', {class: 'signin-status', role: 'alert'});
  if (message) status.appendChild(notice(message.kind || 'info', message.text));
  const form = h('form', {class: 'signin-form', novalidate: true},
    h('h1', {tabindex: '-1'}, 'Sign in to Pier'),
    h('p', {class: 'muted'}, 'Use an access key of a Pier user (created with ', h('code', 'pierctl user create'),
      '), or the user name ', h('code', 'AWS'), ' and a login password (', h('code', 'aws ecr get-login-password'), ').'),
    status,
    field('Access key ID', keyId),
    field('Secret access key', secret),
    h('div', {class: 'form-actions'}, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    if (!keyId.value.trim() || !secret.value) {
      status.appendChild(notice('error', 'Enter the access key ID and the secret access key.'));
      (keyId.value.trim() ? secret : keyId).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const s = await api.login(keyId.value.trim(), secret.value);
      secret.value = '';
      setSession(s);
      const back = sessionStorage.getItem('pier.returnTo');
      sessionStorage.removeItem('pier.returnTo');
      if (back && back !== location.hash) location.hash = back;
      else render();
    } catch (e) {
      status.appendChild(e.status === 401
        ? notice('error', 'The access key ID or the secret access key is wrong.')
        : errorNotice(e, 'Sign-in failed'));
      secret.focus();
      secret.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  clear(els.flash);
  clear(els.page).appendChild(h('div', {class: 'signin'}, form));
  keyId.focus();
}

onSessionExpired(() => {
  if (!session) return;
  const here = location.hash;
  if (here) sessionStorage.setItem('pier.returnTo', here);
  setSession(null);
  seq += 1; // whatever page was loading is abandoned
  signInPage({kind: 'warning', text: 'Your session has ended. Sign in again to continue where you were.'});
});

els.signOut.addEventListener('click', async () => {
  els.signOut.disabled = true;
  try {
    await api.logout();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      showFlash('error', `Signing out failed: ${e.message}`);
      els.signOut.disabled = false;
      return;
    }
  }
  els.signOut.disabled = false;
  sessionStorage.removeItem('pier.returnTo');
  setSession(null);
  seq += 1;
  signInPage({kind: 'info', text: 'You are signed out.'});
});

window.addEventListener('hashchange', () => render());

async function boot() {
  try {
    setSession(await api.session());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      if (location.hash && location.hash !== '#/overview') sessionStorage.setItem('pier.returnTo', location.hash);
      setSession(null);
      signInPage();
      return;
    }
    clear(els.page).appendChild(errorNotice(e, 'The console cannot reach Pier'));
    els.page.appendChild(h('p', {}, h('button', {type: 'button', class: 'button', onclick: boot}, 'Try again')));
    return;
  }
  if (!location.hash) history.replaceState(null, '', '#/overview');
  render({initial: true});
}

boot();
