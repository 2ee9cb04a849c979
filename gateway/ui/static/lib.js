// Small pieces the screens share: the scope (namespace and group), access
// checks, error and loading states, a confirmation dialog, a diff view.
import { html, useState, useEffect, useRef, createContext, useContext } from './vendor/htm-preact-3.1.1.js';
import { call, ApiError } from './api.js';

export { html };

/** Scope holds the namespace and group the screens show, and the user. */
export const Scope = createContext(null);
export const useScope = () => useContext(Scope);

/** navigate moves to a screen (hash routing: the server serves one page). */
export const navigate = (to) => {
  location.hash = to;
};

/** href makes a screen's address from its path segments, each escaped. */
export const href = (...parts) => '#/' + parts.map((p) => encodeURIComponent(p)).join('/');

/**
 * useAsync runs load(signal) when deps change and keeps its result:
 * { data, error, loading, reload }. A newer run aborts the older.
 */
export function useAsync(load, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, error: null, loading: false }),
      (error) => !ctl.signal.aborted && error.name !== 'AbortError' && setState({ data: undefined, error, loading: false }),
    );
    return () => ctl.abort();
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

/**
 * usePaged lists a page at a time: fetchPage(pageToken, signal) returns
 * { items, next }. It returns { pages, next, loading, loadingMore, error,
 * more, reload }; more() appends the next page, once at a time, and a
 * page answered for an older query (deps) is dropped.
 */
export function usePaged(fetchPage, deps) {
  const [st, setSt] = useState({ pages: [], next: '', loading: true, loadingMore: false, error: null });
  const gen = useRef(0);
  const [n, setN] = useState(0);
  useEffect(() => {
    const my = ++gen.current;
    const ctl = new AbortController();
    setSt((s) => ({ ...s, loading: true, error: null }));
    fetchPage('', ctl.signal).then(
      (r) => my === gen.current && setSt({ pages: [r.items], next: r.next, loading: false, loadingMore: false, error: null }),
      (e) => my === gen.current && e.name !== 'AbortError' && setSt({ pages: [], next: '', loading: false, loadingMore: false, error: e }),
    );
    return () => ctl.abort();
  }, [...deps, n]);
  const more = () => {
    if (st.loadingMore || !st.next) return;
    const my = gen.current;
    setSt((s) => ({ ...s, loadingMore: true }));
    fetchPage(st.next).then(
      (r) => my === gen.current && setSt((s) => ({ ...s, pages: [...s.pages, r.items], next: r.next, loadingMore: false })),
      (e) => my === gen.current && setSt((s) => ({ ...s, loadingMore: false, error: e })),
    );
  };
  return { ...st, more, reload: () => setN((x) => x + 1) };
}

/**
 * useAccess asks the server which of checks the user's token allows
 * (POST /v1/acl/self/check) and returns one boolean per check; undefined
 * while it asks. Each check: [kind, namespace, group, name, action].
 */
export function useAccess(checks) {
  const { user } = useScope();
  const key = JSON.stringify(checks);
  const [allowed, setAllowed] = useState(undefined);
  useEffect(() => {
    const ctl = new AbortController();
    setAllowed(undefined);
    call('POST', 'acl/self/check', {
      body: { checks: checks.map(([kind, namespace, group, name, action]) => ({ kind, namespace, group, name, action })) },
      signal: ctl.signal,
    }).then(
      (r) => setAllowed(r.allowed),
      () => !ctl.signal.aborted && setAllowed(checks.map(() => false)),
    );
    return () => ctl.abort();
  }, [key, user?.accessorId]);
  return allowed || checks.map(() => undefined);
}

/** ErrorNote shows an error in plain words; retry, when given, is a button. */
export function ErrorNote({ error, retry }) {
  if (!error) return null;
  const text = error instanceof ApiError ? error.explained : String(error.message || error);
  return html`<div class="error" role="alert">
    <span>${text}</span>
    ${retry && html` <button type="button" onClick=${retry}>Try again</button>`}
  </div>`;
}

/** Loading is what a screen shows while it loads. */
export const Loading = ({ what }) => html`<p class="loading" role="status" aria-live="polite">Loading ${what || ''}…</p>`;

/** Denied explains a disabled action. */
export const denied = (ok, what) => (ok === false ? `Your token may not ${what}` : undefined);

/**
 * Confirm is a modal dialog (the browser's own <dialog>: it keeps the
 * focus, and Escape cancels). It shows while open; onAnswer(true|false).
 */
export function Confirm({ open, title, children, confirmLabel, danger, onAnswer }) {
  const ref = useRef();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby="confirm-title" onCancel=${(e) => {
    e.preventDefault();
    onAnswer(false);
  }}>
    <h2 id="confirm-title">${title}</h2>
    <div>${children}</div>
    <div class="actions">
      <button type="button" onClick=${() => onAnswer(false)}>Cancel</button>
      <button type="button" class=${danger ? 'danger' : 'primary'} onClick=${() => onAnswer(true)}>${confirmLabel || 'OK'}</button>
    </div>
  </dialog>`;
}

/** DiffView shows a unified diff with added and removed lines marked. */
export function DiffView({ diff, label }) {
  if (!diff) return html`<p class="muted">No differences.</p>`;
  const lines = diff.replace(/\n$/, '').split('\n');
  return html`<pre class="diff" aria-label=${label || 'Differences'} tabindex="0">${lines.map((l) => {
    const cls = l.startsWith('+++') || l.startsWith('---') ? 'hdr' : l[0] === '+' ? 'add' : l[0] === '-' ? 'del' : l[0] === '@' ? 'hunk' : '';
    return html`<span class=${cls}>${l || ' '}</span>`;
  })}</pre>`;
}

/** time formats a protobuf timestamp (RFC 3339) for people. */
export const time = (ts) => (ts ? new Date(ts).toLocaleString() : '');

/** Field is a labelled form control. */
export const Field = ({ label, children, hint }) =>
  html`<label class="field"><span>${label}</span>${children}${hint && html`<small>${hint}</small>`}</label>`;
