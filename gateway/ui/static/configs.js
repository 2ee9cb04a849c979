// Configs: the list with search by name and content, and one item's
// editor, history, gray release and listeners.
import { useState, useEffect, useRef } from './vendor/htm-preact-3.1.1.js';
import { html, useScope, useAsync, usePaged, useAccess, ErrorNote, Loading, Confirm, DiffView, Field, href, denied, navigate, time } from './lib.js';
import { call, get, seg, watch, ApiError } from './api.js';

const TYPES = ['text', 'json', 'yaml', 'properties', 'xml', 'toml'];
const pattern = (q) => (!q ? '' : q.includes('*') ? q : `*${q}*`);

export function Configs() {
  const { namespace, group } = useScope();
  const [name, setName] = useState('');
  const [contains, setContains] = useState('');
  const [newGroup, setNewGroup] = useState(group || 'DEFAULT_GROUP');
  const [newId, setNewId] = useState('');
  const list = usePaged(
    (pageToken, signal) =>
      get(`namespaces/${seg(namespace)}/configs`, { group, name: pattern(name), contains, pageSize: 100, pageToken: pageToken || undefined }, signal).then(
        (r) => ({ items: r.configs, next: r.nextPageToken }),
      ),
    [namespace, group, name, contains],
  );
  const pages = list.pages;
  const items = pages.flat();
  return html`<section aria-labelledby="configs-title">
    <h1 id="configs-title">Configs <small class="muted">in ${namespace}${group ? ' / ' + group : ''}</small></h1>
    <div class="toolbar">
      <label>Name <input type="search" name="config-name" value=${name} placeholder="data id or pattern" onInput=${(e) => setName(e.target.value.trim())} /></label>
      <label>Content contains <input type="search" name="config-contains" value=${contains} onChange=${(e) => setContains(e.target.value)} /></label>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </div>
    <form class="toolbar" aria-label="New config" onSubmit=${(e) => {
      e.preventDefault();
      if (newId.trim()) navigate(href('configs', newGroup.trim() || 'DEFAULT_GROUP', newId.trim()).slice(1));
    }}>
      <label>Group <input name="new-group" value=${newGroup} onInput=${(e) => setNewGroup(e.target.value)} /></label>
      <label>Data id <input name="new-data-id" value=${newId} onInput=${(e) => setNewId(e.target.value)} required /></label>
      <button type="submit">New config</button>
    </form>
    ${list.loading && html`<${Loading} what="configs" />`}
    <${ErrorNote} error=${list.error} retry=${list.reload} />
    ${!list.loading && !list.error && items.length === 0 && html`<p class="muted">No configs${name || contains ? ' match' : ''}.</p>`}
    ${items.length > 0 &&
    html`<table class="grid" aria-label="Configs">
      <thead><tr><th scope="col">Data id</th><th scope="col">Group</th><th scope="col">Type</th><th scope="col">Size</th><th scope="col">Revision</th><th scope="col">Updated</th></tr></thead>
      <tbody>${items.map(
        (c) => html`<tr data-config=${c.dataId}>
          <td><a href=${href('configs', c.group, c.dataId)}>${c.dataId}</a></td>
          <td>${c.group}</td><td>${c.contentType}</td><td>${c.size}</td><td>${c.revision}</td><td>${time(c.updated)}</td>
        </tr>`,
      )}</tbody>
    </table>`}
    ${list.next && html`<button type="button" disabled=${list.loadingMore} onClick=${list.more}>${list.loadingMore ? 'Loading…' : 'Load more'}</button>`}
  </section>`;
}

/** errorLine finds the line a validation error names ("line 3, column 5"). */
const errorLine = (err) => {
  const m = err instanceof ApiError && err.field === 'content' && /line (\d+)/.exec(err.message);
  return m ? Number(m[1]) : 0;
};

export function ConfigDetail({ group, dataId }) {
  const { namespace } = useScope();
  const base = `namespaces/${seg(namespace)}/groups/${seg(group)}/configs/${seg(dataId)}`;
  const [tab, setTab] = useState('editor');
  const [mayRead, mayWrite] = useAccess([
    ['config', namespace, group, dataId, 'read'],
    ['config', namespace, group, dataId, 'write'],
  ]);
  // The stored item, reloaded after each change; null: it does not exist.
  const item = useAsync(
    // The release, even when a gray rule matches this browser: what the
    // editor starts from, and what a publish replaces.
    (signal) => get(base, { release: true }, signal).then((r) => r.config, (e) => (e.status === 404 ? null : Promise.reject(e))),
    [base],
  );
  // Someone else's change shows as a notice while the editor is open.
  const [remote, setRemote] = useState(null);
  useEffect(() => {
    const ctl = new AbortController();
    watch(base + ':watch', { signal: ctl.signal, onEvent: (ev) => setRemote(ev) });
    return () => ctl.abort();
  }, [base]);
  // The revision of this page's own last write: its event is no news.
  const [own, setOwn] = useState(0);
  const reload = (rev) => {
    if (rev) setOwn(Number(rev));
    item.reload();
  };
  // What the last action did: kept here, since the editor starts again
  // (keyed by the revision) after each write.
  const [notice, setNotice] = useState('');
  const stored = item.data;
  const changed = remote && item.data !== undefined && Number(remote.revision) > Math.max(own, Number(stored?.revision || 0)) &&
    (remote.type === 'DELETE' ? !!stored : remote.config && remote.config.revision !== stored?.revision);
  const tabs = [
    ['editor', 'Editor'],
    ['history', 'History'],
    ['gray', 'Gray release'],
    ['listeners', 'Listeners'],
  ];
  return html`<section aria-labelledby="config-title">
    <p><a href="#/configs">← Configs</a></p>
    <h1 id="config-title">${dataId} <small class="muted">${namespace} / ${group}</small></h1>
    ${mayRead === false && html`<div class="error" role="alert">Your token may not read this config.</div>`}
    ${item.loading && html`<${Loading} what="the config" />`}
    <${ErrorNote} error=${item.error} retry=${item.reload} />
    ${changed && html`<div class="banner warn" role="status">Changed on the server (revision ${remote.revision}).
      <button type="button" onClick=${() => reload()}>Load it</button></div>`}
    ${notice && html`<p role="status" class="ok notice">${notice}</p>`}
    <div role="tablist" aria-label="Config views" class="tabs">
      ${tabs.map(
        ([id, label]) => html`<button type="button" role="tab" id=${'tab-' + id} aria-selected=${tab === id} aria-controls=${'panel-' + id}
          onClick=${() => {
            setTab(id);
            setNotice('');
          }}>${label}</button>`,
      )}
    </div>
    <div role="tabpanel" id=${'panel-' + tab} aria-labelledby=${'tab-' + tab}>
      ${item.data !== undefined &&
      (tab === 'editor'
        ? html`<${Editor} key=${stored?.revision || 'new'} base=${base} dataId=${dataId} stored=${stored} mayWrite=${mayWrite} reload=${reload} onDone=${setNotice} />`
        : tab === 'history'
          ? html`<${History} base=${base} stored=${stored} mayWrite=${mayWrite} reload=${reload} />`
          : tab === 'gray'
            ? html`<${Gray} base=${base} stored=${stored} mayWrite=${mayWrite} reload=${reload} />`
            : html`<${Listeners} base=${base} />`)}
    </div>
  </section>`;
}

/** LineEditor is a textarea with line numbers; the line named bad is marked. */
function LineEditor({ value, onInput, bad, label, describedBy, readOnly }) {
  const gutter = useRef();
  const n = value.split('\n').length;
  return html`<div class="editor">
    <pre class="gutter" ref=${gutter} aria-hidden="true">${Array.from({ length: n }, (_, i) =>
      html`<span class=${i + 1 === bad ? 'bad' : ''}>${i + 1}</span>`)}</pre>
    <textarea name="content" aria-label=${label} spellcheck="false" rows=${Math.min(30, Math.max(8, n + 1))}
      value=${value} readOnly=${readOnly} aria-invalid=${bad ? 'true' : undefined} aria-describedby=${describedBy}
      onInput=${(e) => onInput(e.target.value)}
      onScroll=${(e) => (gutter.current.scrollTop = e.target.scrollTop)}></textarea>
  </div>`;
}

function Editor({ base, dataId, stored, mayWrite, reload, onDone }) {
  const [content, setContent] = useState(stored?.content || '');
  const [type, setType] = useState(stored?.contentType || 'text');
  const [message, setMessage] = useState('');
  const [validate, setValidate] = useState(true);
  const [review, setReview] = useState(null); // the diff shown before publish
  const [conflict, setConflict] = useState(null); // { theirs, diff }
  const [error, setError] = useState(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const setDone = onDone;
  const [rev, setRev] = useState(stored ? Number(stored.revision) : 0);
  const bad = errorLine(error);
  const why = denied(mayWrite, 'change this config');

  const showDiff = async () => {
    setError(null);
    setDone('');
    try {
      const r = await call('POST', base + '/diff', { body: { content } });
      setReview(r.diff);
    } catch (err) {
      setError(err);
    }
  };
  const publish = async (ifRevision) => {
    setError(null);
    try {
      const r = await call('PUT', base, {
        raw: content,
        query: { type, ifRevision, message, validate: validate ? undefined : 'false' },
      });
      setReview(null);
      setConflict(null);
      setDone('Published.');
      reload(r.config.revision);
    } catch (err) {
      setReview(null);
      if (err.status === 409) {
        // Someone else published first: show theirs beside ours.
        const theirs = await get(base, { release: true }).then((r) => r.config, () => null);
        const d = await call('POST', base + '/diff', { body: { content } }).then((r) => r.diff, () => '');
        setConflict({ theirs, diff: d, error: err });
        return;
      }
      setError(err);
    }
  };
  const remove = async (yes) => {
    setConfirmDelete(false);
    if (!yes) return;
    try {
      const r = await call('DELETE', base, { query: { ifRevision: rev, message } });
      setDone('Deleted.');
      reload(r.revision);
    } catch (err) {
      setError(err);
    }
  };

  if (conflict) {
    const theirs = conflict.theirs;
    return html`<div class="conflict" role="region" aria-label="Conflict">
      <div class="error" role="alert">${conflict.error.explained}</div>
      <${ErrorNote} error=${error} />
      <p>Another writer published ${theirs ? `revision ${theirs.revision}` : 'a delete'} while you edited. Compare, then choose.</p>
      <div class="two">
        <div><h3>Theirs (on the server)</h3><pre class="content" aria-label="Their version">${theirs ? theirs.content : '(deleted)'}</pre></div>
        <div><h3>Yours</h3><pre class="content" aria-label="Your version">${content}</pre></div>
      </div>
      <h3>From theirs to yours</h3>
      <${DiffView} diff=${conflict.diff} />
      <div class="actions">
        <button type="button" class="primary" disabled=${!mayWrite} title=${why} onClick=${() => {
          const r = theirs ? Number(theirs.revision) : 0;
          setRev(r);
          publish(r);
        }}>Publish mine over theirs</button>
        <button type="button" onClick=${() => {
          setConflict(null);
          reload();
        }}>Discard mine, load theirs</button>
        <button type="button" onClick=${() => setConflict(null)}>Keep editing</button>
      </div>
    </div>`;
  }

  return html`<div>
    <div class="toolbar">
      <label>Content type <select name="content-type" value=${type} onChange=${(e) => setType(e.target.value)}>
        ${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      <label><input type="checkbox" name="validate" checked=${validate} onChange=${(e) => setValidate(e.target.checked)} /> Validate as ${type}</label>
      <span class="muted">${stored ? `revision ${stored.revision} · md5 ${stored.md5}` : 'new: not yet published'}</span>
    </div>
    <${LineEditor} value=${content} onInput=${(v) => {
      setContent(v);
      setReview(null);
    }} bad=${bad} label=${'Content of ' + dataId} describedBy=${error ? 'editor-error' : undefined} readOnly=${mayWrite === false} />
    <div id="editor-error">
      ${bad > 0 && html`<p class="error" role="alert" data-line=${bad}>${error.message.replace(/^content: /, '')}</p>`}
      ${!bad && html`<${ErrorNote} error=${error} />`}
    </div>
    <${Field} label="Message" hint="kept with the version this change makes">
      <input name="message" value=${message} onInput=${(e) => setMessage(e.target.value)} maxlength="512" />
    </${Field}>
    ${review === null
      ? html`<div class="actions">
          <button type="button" class="primary" disabled=${!mayWrite} title=${why} onClick=${showDiff}>Review changes…</button>
          ${stored && html`<button type="button" class="danger" disabled=${!mayWrite} title=${why} onClick=${() => setConfirmDelete(true)}>Delete…</button>`}
        </div>`
      : html`<div class="review" role="region" aria-label="Review">
          <h3>Changes to publish</h3>
          <${DiffView} diff=${review} label="Changes to publish" />
          <div class="actions">
            <button type="button" class="primary" name="publish" disabled=${!mayWrite} title=${why} onClick=${() => publish(rev)}>Publish</button>
            <button type="button" onClick=${() => setReview(null)}>Back to editing</button>
          </div>
        </div>`}
    <${Confirm} open=${confirmDelete} title="Delete this config?" confirmLabel="Delete" danger onAnswer=${remove}>
      <p>${dataId} is deleted for every client. Its history keeps the content, so a rollback can bring it back.</p>
    </${Confirm}>
  </div>`;
}

function History({ base, stored, mayWrite, reload }) {
  const list = useAsync((signal) => get(base + '/history', null, signal), [base, stored?.revision]);
  const [from, setFrom] = useState(0);
  const [to, setTo] = useState(0);
  const [diff, setDiff] = useState(null);
  const [error, setError] = useState(null);
  const [rollback, setRollback] = useState(0);
  const versions = list.data?.versions || [];
  // The list is newest first; compare the last two by default.
  useEffect(() => {
    if (versions.length > 0) {
      setTo(Number(versions[0].number));
      setFrom(versions.length > 1 ? Number(versions[1].number) : 0);
    }
  }, [versions[0]?.number]);
  const compare = async () => {
    setError(null);
    try {
      setDiff(await get(base + '/diff', { from: from || undefined, to: to || undefined }));
    } catch (err) {
      setError(err);
    }
  };
  const doRollback = async (yes) => {
    const n = rollback;
    setRollback(0);
    if (!yes) return;
    setError(null);
    try {
      const r = await call('POST', base + '/rollback', { body: { number: n, ifRevision: stored ? stored.revision : 0 } });
      reload(r.config.revision);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const why = denied(mayWrite, 'change this config');
  return html`<div>
    ${list.loading && html`<${Loading} what="the history" />`}
    <${ErrorNote} error=${list.error || error} retry=${list.error && list.reload} />
    ${versions.length === 0 && !list.loading && html`<p class="muted">No versions yet.</p>`}
    ${versions.length > 0 &&
    html`<table class="grid" aria-label="Versions">
      <thead><tr><th scope="col">Version</th><th scope="col">Operation</th><th scope="col">Author</th><th scope="col">Time</th>
        <th scope="col">Message</th><th scope="col">From</th><th scope="col">To</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
      <tbody>${versions.map((v) => {
        const n = Number(v.number);
        return html`<tr data-version=${n}>
          <td>${n}</td><td>${v.op}</td><td>${v.author}</td><td>${time(v.time)}</td><td>${v.message}</td>
          <td><input type="radio" name="from" aria-label=${'compare from version ' + n} checked=${from === n} onChange=${() => setFrom(n)} /></td>
          <td><input type="radio" name="to" aria-label=${'compare to version ' + n} checked=${to === n} onChange=${() => setTo(n)} /></td>
          <td>${v.op !== 'delete' &&
            html`<button type="button" disabled=${!mayWrite} title=${why} onClick=${() => setRollback(n)}>Roll back to ${n}…</button>`}</td>
        </tr>`;
      })}</tbody>
    </table>
    <button type="button" onClick=${compare}>Compare</button>`}
    ${diff && html`<h3>Version ${diff.from?.number || '(none)'} → ${diff.to?.number}</h3><${DiffView} diff=${diff.diff} />`}
    <${Confirm} open=${rollback > 0} title=${`Roll back to version ${rollback}?`} confirmLabel="Roll back" onAnswer=${doRollback}>
      <p>Version ${rollback}'s content is published again, as a new version. It fails if someone changed the config meanwhile.</p>
    </${Confirm}>
  </div>`;
}

function Gray({ base, stored, mayWrite, reload }) {
  const cur = useAsync(
    (signal) => get(base + '/gray', null, signal).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    [base, stored?.revision],
  );
  const [content, setContent] = useState(stored?.content || '');
  const [labels, setLabels] = useState('');
  const [ips, setIps] = useState('');
  const [percent, setPercent] = useState('');
  const [error, setError] = useState(null);
  const [done, setDone] = useState('');
  const why = denied(mayWrite, 'change this config');
  const act = async (f, what) => {
    setError(null);
    setDone('');
    try {
      const r = await f();
      setDone(what);
      cur.reload();
      reload(r?.config?.revision);
    } catch (err) {
      setError(err);
    }
  };
  const publish = (e) => {
    e.preventDefault();
    if (!labels.trim() && !ips.trim() && !percent) {
      setError(new Error('Name the clients that get the gray: labels, IPs or a percent. Without a rule it would be a release for everyone.'));
      return;
    }
    act(
      () => call('PUT', base, { raw: content, query: { type: stored?.contentType, grayLabels: labels.trim(), grayIps: ips.trim() || undefined, grayPercent: percent || undefined } }),
      'Gray release published.',
    );
  };
  const g = cur.data;
  return html`<div>
    ${cur.loading && html`<${Loading} what="the gray release" />`}
    <${ErrorNote} error=${cur.error || error} />
    ${done && html`<p role="status" class="ok">${done}</p>`}
    ${g
      ? html`<div class="gray" role="region" aria-label="Current gray release">
          <h3>In gray release</h3>
          <dl class="facts">
            <dt>Labels</dt><dd>${Object.entries(g.rule?.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—'}</dd>
            <dt>IPs</dt><dd>${(g.rule?.ips || []).join(', ') || '—'}</dd>
            <dt>Percent</dt><dd>${g.rule?.percent || '—'}</dd>
            <dt>By</dt><dd>${g.author} · ${time(g.created)}</dd>
          </dl>
          <pre class="content" aria-label="Gray content">${g.content}</pre>
          <div class="actions">
            <button type="button" class="primary" disabled=${!mayWrite} title=${why}
              onClick=${() => act(() => call('POST', base + '/gray/promote', { body: {} }), 'Promoted: every client has it now.')}>Promote to everyone</button>
            <button type="button" class="danger" disabled=${!mayWrite} title=${why}
              onClick=${() => act(() => call('DELETE', base + '/gray'), 'Aborted: the matching clients are back on the release.')}>Abort</button>
          </div>
        </div>`
      : !cur.loading && html`<p class="muted">No gray release. Publish one to the clients that match a rule:</p>`}
    <form onSubmit=${publish} aria-label="Publish a gray release">
      <${Field} label="Client labels" hint="NAME=VALUE,…: clients with every one of them">
        <input name="gray-labels" value=${labels} onInput=${(e) => setLabels(e.target.value)} placeholder="env=canary" />
      </${Field}>
      <${Field} label="Client IPs" hint="comma-separated"><input name="gray-ips" value=${ips} onInput=${(e) => setIps(e.target.value)} /></${Field}>
      <${Field} label="Percent of client ids" hint="1 to 100, by a stable hash of the client id">
        <input name="gray-percent" type="number" min="0" max="100" value=${percent} onInput=${(e) => setPercent(e.target.value)} />
      </${Field}>
      <${LineEditor} value=${content} onInput=${setContent} label="Gray content" />
      <button type="submit" disabled=${!mayWrite || !stored} title=${why || (!stored ? 'publish a release first' : undefined)}>Publish gray</button>
    </form>
  </div>`;
}

function Listeners({ base }) {
  const list = useAsync((signal) => get(base + '/listeners', null, signal), [base]);
  const r = list.data;
  return html`<div>
    <div class="toolbar"><button type="button" onClick=${list.reload}>Refresh</button>
      ${r && html`<span class="muted">${r.listeners.length} listening, across ${r.gateways} gateway(s); current md5 ${r.currentMd5 || '—'}</span>`}</div>
    ${list.loading && html`<${Loading} what="the listeners" />`}
    <${ErrorNote} error=${list.error} retry=${list.reload} />
    ${r && r.listeners.length === 0 && html`<p class="muted">Nobody is watching this config.</p>`}
    ${r && r.listeners.length > 0 &&
    html`<table class="grid" aria-label="Listeners">
      <thead><tr><th scope="col">Client</th><th scope="col">Address</th><th scope="col">Labels</th><th scope="col">Since</th>
        <th scope="col">Has md5</th><th scope="col">Up to date</th><th scope="col">Gateway</th></tr></thead>
      <tbody>${r.listeners.map(
        (l) => html`<tr><td>${l.clientId}</td><td>${l.address}</td><td>${Object.entries(l.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')}</td>
          <td>${time(l.since)}</td><td>${l.md5}</td><td class=${l.upToDate ? 'ok' : 'warn'}>${l.upToDate ? 'yes' : 'no'}</td><td>${l.gateway}</td></tr>`,
      )}</tbody>
    </table>`}
  </div>`;
}
