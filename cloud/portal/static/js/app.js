// The portal's shell: sign-in, the left navigation and hash routing (#/machines, #/runs/<id>, ...).
// Each page module exports render(view, ctx); the view element is fresh for every navigation, so
// a page whose data arrives after the user has moved on writes into a detached element. When the
// user moves on, the page's ctx.signal is aborted (its requests are abandoned) and its
// ctx.onCleanup functions run; one registered after that (a page still in its first load) runs at
// once, and ctx.isCurrent() says false, so no timer outlives its page.
import {ApiError, clearToken, getToken, setToken, setUnauthenticatedHandler, whoAmIWith} from './api.js';
import {h, icon, replace} from './dom.js';
import {errorBanner, loading, NOT_A_LOGIN} from './ui.js';
import * as machines from './pages/machines.js';
import * as groups from './pages/groups.js';
import * as clusters from './pages/clusters.js';
import * as connections from './pages/connections.js';
import * as flows from './pages/flows.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';

const NAV = [
  {href: '#/machines', label: 'Machines', icon: 'machine', section: 'machines'},
  {href: '#/groups', label: 'Machine groups', icon: 'group', section: 'groups'},
  {href: '#/clusters', label: 'Gateway clusters', icon: 'cluster', section: 'clusters'},
  {href: '#/connections', label: 'Connections', icon: 'connection', section: 'connections'},
  {href: '#/flows', label: 'Flows', icon: 'flow', section: 'flows'},
  {href: '#/runs', label: 'Runs', icon: 'run', section: 'runs'},
];

// [pattern, module, export, title]; ":name" segments become ctx.params.name.
const ROUTES = [
  ['machines', machines, 'renderList', 'Machines'],
  ['machines/:id', machines, 'renderDetail', 'Machine'],
  ['groups', groups, 'renderList', 'Machine groups'],
  ['groups/:id', groups, 'renderDetail', 'Machine group'],
  ['clusters', clusters, 'renderList', 'Gateway clusters'],
  ['clusters/:id', clusters, 'renderDetail', 'Gateway cluster'],
  ['connections', connections, 'renderList', 'Connections'],
  ['connections/new', connections, 'renderNew', 'New connection'],
  ['flows', flows, 'renderList', 'Flows'],
  ['flows/new', flows, 'renderNew', 'Upload a flow'],
  ['flows/:id', flows, 'renderDetail', 'Flow'],
  ['flows/:id/edit', flows, 'renderEdit', 'New flow version'],
  ['runs', runs, 'renderList', 'Runs'],
  ['runs/queue', runs, 'renderQueue', 'Run queue'],
  ['runs/new', runs, 'renderNew', 'Start a run'],
  ['runs/:id', run, 'renderDetail', 'Run'],
];

// page: the page showing now, {controller, cleanups, ended}; null before the first route and
// after sign-out.
const state = {user: null, page: null};

// The hash's path segments, decoded, and its query. A segment that is not valid percent-encoding
// (#/runs/%E0) makes the hash `malformed`: no route matches it.
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, queryText = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  const query = new URLSearchParams(queryText);
  try {
    return {segments: parts.map(decodeURIComponent), query, malformed: false};
  } catch {
    return {segments: parts, query, malformed: true};
  }
}

function matchRoute(segments) {
  for (const [pattern, module, exportName, title] of ROUTES) {
    const parts = pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i].startsWith(':')) params[parts[i].slice(1)] = segments[i];
      else if (parts[i] !== segments[i]) ok = false;
    }
    // A literal route ("runs/new") wins over a parameter route ("runs/:id") by coming first.
    if (ok) return {render: module[exportName], title, params, section: parts[0]};
  }
  return null;
}

function runCleanup(fn) {
  try {
    fn();
  } catch (e) {
    console.error('cleanup failed', e);
  }
}

// Ends the current page: abandons its requests and runs its cleanups.
function runCleanups() {
  const page = state.page;
  state.page = null;
  if (!page) return;
  page.ended = true;
  page.controller.abort();
  for (const fn of page.cleanups.splice(0)) runCleanup(fn);
}

function shell() {
  let root = document.getElementById('shell');
  if (root) return root;
  const user = state.user;
  root = h('div', {id: 'shell', class: 'shell'},
    h('header', {class: 'topbar'},
      h('a', {class: 'brand', href: '#/machines'},
        h('img', {src: '/static/img/logo.svg', alt: '', width: 28, height: 28}),
        h('span', {text: 'Tether'})),
      h('div', {class: 'topbar-right'},
        h('span', {class: 'user-chip', title: `user id ${user.userId}`},
          h('span', {class: 'avatar', text: (user.name || '?').slice(0, 1).toUpperCase()}),
          h('span', {class: 'user-name', text: user.name}),
          user.admin ? h('span', {class: 'badge badge-normal', text: 'admin'}) : null),
        h('button', {class: 'btn btn-ghost', type: 'button', onclick: signOut}, icon('signout'), 'Sign out'))),
    h('nav', {class: 'sidenav', 'aria-label': 'Main'},
      h('ul', {}, NAV.map((item) =>
        h('li', {}, h('a', {href: item.href, class: 'nav-link', dataset: {section: item.section}},
          icon(item.icon), h('span', {text: item.label}))))),
      h('div', {class: 'sidenav-foot'},
        icon('lock'),
        h('span', {text: 'Passwords are sealed in this browser to the desktop\u2019s key; the cloud stores only ciphertext.'}))),
    h('main', {id: 'main', class: 'main', tabindex: '-1'}));
  replace(document.getElementById('app'), root);
  return root;
}

async function route() {
  runCleanups();
  if (!state.user) return;
  const {segments, query, malformed} = parseHash();
  if (!segments.length) {
    location.replace('#/machines');
    return;
  }
  shell();
  const match = malformed ? null : matchRoute(segments);
  for (const link of document.querySelectorAll('.nav-link')) {
    const active = match && link.dataset.section === match.section;
    link.classList.toggle('active', Boolean(active));
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  const view = h('div', {class: 'view'});
  replace(main, view);
  if (!match) {
    document.title = 'Not found · Tether';
    replace(view, errorBanner({code: 'NOT_FOUND', message: `There is no page at #/${segments.join('/')}.`},
                              {title: 'Page not found'}));
    return;
  }
  document.title = `${match.title} · Tether`;
  view.append(loading());
  const page = {controller: new AbortController(), cleanups: [], ended: false};
  state.page = page;
  const ctx = {
    params: match.params,
    query,
    user: state.user,
    signal: page.controller.signal,
    // A page that is already gone (the user moved on during its first load) gets no timers.
    onCleanup: (fn) => {
      if (page.ended) runCleanup(fn);
      else page.cleanups.push(fn);
    },
    isCurrent: () => !page.ended,
    navigate: (hash) => { location.hash = hash; },
    setTitle: (title) => { if (!page.ended) document.title = `${title} · Tether`; },
  };
  try {
    await match.render(view, ctx);
  } catch (e) {
    if (page.ended) return;  // the user moved on (its requests were abandoned: CANCELLED)
    if (e instanceof ApiError && e.status === 401) return;  // the sign-in page is showing
    if (!(e instanceof ApiError)) console.error(e);
    replace(view, errorBanner(e, {title: 'This page could not be loaded'}));
  }
}

function signOut() {
  runCleanups();
  clearToken();
  state.user = null;
  showSignIn();
}

function showSignIn(message) {
  runCleanups();
  state.user = null;
  document.title = 'Sign in · Tether';
  const tokenInput = h('input', {
    id: 'token', name: 'token', type: 'password', class: 'input', ...NOT_A_LOGIN,
    spellcheck: 'false', required: true, placeholder: 'tt_…', 'aria-describedby': 'token-help',
  });
  const errorEl = h('div', {class: 'error-slot', 'aria-live': 'polite'});
  const submit = h('button', {class: 'btn btn-primary btn-block', type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'signin-form', novalidate: true, autocomplete: 'off'},
    h('label', {for: 'token', text: 'API token'}),
    tokenInput,
    h('p', {id: 'token-help', class: 'field-help'},
      'The token you got from ', h('code', {text: 'tetherctl'}), ' or from your administrator. ',
      'It is kept in this tab only (sessionStorage) and sent as a bearer header.'),
    errorEl,
    submit);
  if (message) replace(errorEl, errorBanner({code: 'UNAUTHENTICATED', message}, {title: 'Signed out'}));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) {
      replace(errorEl, errorBanner({code: 'REQUIRED', message: 'Enter your API token.'}, {title: 'Missing token'}));
      tokenInput.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const answer = await whoAmIWith(token);
      setToken(token);
      tokenInput.value = '';
      await start(answer.user);
    } catch (e) {
      const title = e.status === 401 ? 'This token was not accepted' : 'Sign-in failed';
      replace(errorEl, errorBanner(e, {title}));
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  replace(document.getElementById('app'),
    h('div', {class: 'signin-page'},
      h('div', {class: 'signin-card'},
        h('div', {class: 'signin-brand'},
          h('img', {src: '/static/img/logo.svg', alt: '', width: 40, height: 40}),
          h('div', {}, h('h1', {text: 'Tether'}), h('p', {class: 'muted', text: 'Desktop automation without inbound ports'}))),
        form)));
  tokenInput.focus();
}

async function start(user) {
  state.user = user;
  document.getElementById('shell')?.remove();
  await route();
}

async function boot() {
  setUnauthenticatedHandler(() => {
    if (state.user) showSignIn('Your token is no longer valid. Sign in again.');
  });
  window.addEventListener('hashchange', () => { route(); });
  const token = getToken();
  if (!token) {
    showSignIn();
    return;
  }
  replace(document.getElementById('app'), h('div', {class: 'signin-page'}, loading('Signing in…')));
  try {
    const answer = await whoAmIWith(token);
    await start(answer.user);
  } catch (e) {
    if (e.status === 401) clearToken();
    showSignIn(e.status === 401 ? 'Your token is no longer valid. Sign in again.' : e.message);
  }
}

boot();
