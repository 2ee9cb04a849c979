// The console's shell: the header with the namespace and group switcher
// and the login, the store banner, and the hash router.
import { render, useState, useEffect } from './vendor/htm-preact-3.1.1.js';
import { html, Scope, href } from './lib.js';
import { call, get, token, ApiError } from './api.js';
import { Overview } from './overview.js';
import { Services, ServiceDetail } from './services.js';
import { Configs, ConfigDetail } from './configs.js';

const NS_KEY = 'junction.namespace';

function route() {
  const decode = (p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p; // a malformed escape: shown as it is
    }
  };
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decode);
}

function Login({ user, authOn, onLogin, onLogout }) {
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(null);
  if (user?.accessorId) {
    return html`<div class="login">
      <span title=${user.accessorId}>Token: ${user.description || user.accessorId.slice(0, 8)}${user.management ? ' (management)' : ''}</span>
      <button type="button" onClick=${onLogout}>Log out</button>
    </div>`;
  }
  if (!authOn) return html`<div class="login muted" title="junction server runs without --auth">Access control is off</div>`;
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    token.set(secret.trim());
    try {
      onLogin(await get('acl/self'));
      setSecret('');
    } catch (err) {
      token.set('');
      setError(err instanceof ApiError && err.status === 401 ? new ApiError(401, '', 'the server does not know this token') : err);
    }
  };
  return html`<form class="login" onSubmit=${submit} aria-label="Log in">
    <label for="token-input">Token</label>
    <input id="token-input" type="password" autocomplete="off" value=${secret} onInput=${(e) => setSecret(e.target.value)} placeholder="secret" required />
    <button type="submit" class="primary">Log in</button>
    ${error && html`<span class="error" role="alert">${error.explained}</span>`}
  </form>`;
}

function App() {
  const [path, setPath] = useState(route());
  const [namespace, setNamespace] = useState(localStorage.getItem(NS_KEY) || 'public');
  const [group, setGroup] = useState('');
  const [user, setUser] = useState(null);
  const [authOn, setAuthOn] = useState(false);
  const [banner, setBanner] = useState(null);
  const [needLogin, setNeedLogin] = useState(false);

  useEffect(() => {
    const onHash = () => setPath(route());
    const onUnauth = () => setNeedLogin(true);
    const onUnavailable = (e) => setBanner(e.detail);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('junction-unauthenticated', onUnauth);
    window.addEventListener('junction-unavailable', onUnavailable);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('junction-unauthenticated', onUnauth);
      window.removeEventListener('junction-unavailable', onUnavailable);
    };
  }, []);

  // Who the user is: with access control off, WhoAmI answers without a
  // token; with it on, a 401 asks for one.
  useEffect(() => {
    get('acl/self').then(
      (t) => {
        setUser(t.accessorId ? t : null);
        setAuthOn(!!t.accessorId);
      },
      (e) => {
        if (e.status === 401) setAuthOn(true);
      },
    );
  }, []);

  // While the store is unavailable, look again every few seconds.
  useEffect(() => {
    if (!banner) return;
    const t = setInterval(() => get('status').then(() => setBanner(null), () => {}), 3000);
    return () => clearInterval(t);
  }, [banner]);

  const changeNamespace = (ns) => {
    setNamespace(ns || 'public');
    localStorage.setItem(NS_KEY, ns || 'public');
  };
  const [screen, a, b] = path;
  let view;
  const key = `${namespace}/${group}/${user?.accessorId || ''}`;
  switch (screen) {
    case 'services':
      view = a && b ? html`<${ServiceDetail} key=${key} group=${a} service=${b} />` : html`<${Services} key=${key} />`;
      break;
    case 'configs':
      view = a && b ? html`<${ConfigDetail} key=${key} group=${a} dataId=${b} />` : html`<${Configs} key=${key} />`;
      break;
    default:
      view = html`<${Overview} key=${key} />`;
  }
  const nav = (name, label) =>
    html`<a href=${href(name)} aria-current=${(screen || '') === name ? 'page' : undefined}>${label}</a>`;
  return html`<${Scope.Provider} value=${{ namespace, group, user, authOn }}>
    <header>
      <a class="brand" href="#/">Junction</a>
      <nav aria-label="Screens">${nav('', 'Overview')}${nav('services', 'Services')}${nav('configs', 'Configs')}</nav>
      <form class="scope" aria-label="Namespace and group" onSubmit=${(e) => e.preventDefault()}>
        <label>Namespace <input name="namespace" value=${namespace} size="12" onChange=${(e) => changeNamespace(e.target.value.trim())} /></label>
        <label>Group <input name="group" value=${group} size="12" placeholder="all groups" onChange=${(e) => setGroup(e.target.value.trim())} /></label>
      </form>
      <${Login} user=${user} authOn=${authOn || needLogin}
        onLogin=${(t) => {
          setUser(t);
          setAuthOn(true);
          setNeedLogin(false);
        }}
        onLogout=${() => {
          token.set('');
          setUser(null);
        }} />
    </header>
    ${banner && html`<div class="banner" role="alert">The store is unavailable: ${banner.message}. Retrying…</div>`}
    ${needLogin && !user && html`<div class="banner warn" role="alert">This needs a token: log in above. (The server answered 401: no token, or one it does not know.)</div>`}
    <main>${view}</main>
  </${Scope.Provider}>`;
}

render(html`<${App} />`, document.getElementById('app'));

