// Services: the list of a namespace's services, and one service's
// instances, live from the watch stream.
import { useState, useEffect, useMemo } from './vendor/htm-preact-3.1.1.js';
import { html, useScope, useAsync, usePaged, useAccess, ErrorNote, Loading, Confirm, Field, href, denied, time } from './lib.js';
import { call, get, seg, watch } from './api.js';

/** pattern turns a search into a name pattern: "pay" finds "*pay*". */
const pattern = (q) => (!q ? '' : q.includes('*') ? q : `*${q}*`);

export function Services() {
  const { namespace, group } = useScope();
  const [q, setQ] = useState('');
  const list = usePaged(
    (pageToken, signal) =>
      get(`namespaces/${seg(namespace)}/services`, { group, name: pattern(q), pageSize: 100, pageToken: pageToken || undefined }, signal).then(
        (r) => ({ items: r.services, next: r.nextPageToken }),
      ),
    [namespace, group, q],
  );
  const pages = list.pages;
  // Live counts: the listed services' summaries on one watch stream per
  // page (the first three pages; a browser holds few streams at once).
  const [live, setLive] = useState({});
  useEffect(() => {
    const ctl = new AbortController();
    for (const page of pages.slice(0, 3)) {
      if (!page?.length) continue;
      watch(`namespaces/${seg(namespace)}/services:watch`, {
        signal: ctl.signal,
        query: { services: page.map((s) => `${s.group}/${s.service}`) },
        onEvent: (sum) => setLive((l) => ({ ...l, [`${sum.group}/${sum.service}`]: sum })),
      });
    }
    return () => ctl.abort();
  }, [pages]);
  const services = pages.flat().map((s) => live[`${s.group}/${s.service}`] || s);
  return html`<section aria-labelledby="services-title">
    <h1 id="services-title">Services <small class="muted">in ${namespace}${group ? ' / ' + group : ''}</small></h1>
    <div class="toolbar">
      <label>Search <input type="search" name="service-search" value=${q} placeholder="name or pattern (pay*)" onInput=${(e) => setQ(e.target.value.trim())} /></label>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </div>
    ${list.loading && html`<${Loading} what="services" />`}
    <${ErrorNote} error=${list.error} retry=${list.reload} />
    ${!list.loading && !list.error && services.length === 0 && html`<p class="muted">No services${q ? ' match' : ''}.</p>`}
    ${services.length > 0 &&
    html`<table class="grid" aria-label="Services">
      <thead><tr><th scope="col">Service</th><th scope="col">Group</th><th scope="col">Instances</th><th scope="col">Healthy / total</th></tr></thead>
      <tbody>${services.map(
        (s) => html`<tr data-service=${s.service}>
          <td><a href=${href('services', s.group, s.service)}>${s.service}</a></td>
          <td>${s.group}</td>
          <td>${s.instances}</td>
          <td class=${s.healthy < s.instances ? 'warn' : 'ok'}>${s.healthy} / ${s.instances}</td>
        </tr>`,
      )}</tbody>
    </table>`}
    ${list.next && html`<button type="button" disabled=${list.loadingMore} onClick=${list.more}>${list.loadingMore ? 'Loading…' : 'Load more'}</button>`}
  </section>`;
}

const ROW = 34; // px: the height of an instance row (style.css agrees)
const VISIBLE = 16; // rows in view

/**
 * useInstances follows a service's instances on the watch stream: a RESET
 * replaces everything seen, a PUT or DELETE changes one instance.
 */
function useInstances(namespace, group, service) {
  const [state, setState] = useState({ map: new Map(), live: 'connecting', error: null });
  useEffect(() => {
    const ctl = new AbortController();
    // Events change one map; the page renders at most every 30 ms, however
    // many arrived (a burst of registrations on a large service).
    const map = new Map();
    let frame = 0;
    const flush = () => {
      frame = 0;
      setState({ map: new Map(map), live: 'live', error: null });
    };
    watch(`namespaces/${seg(namespace)}/groups/${seg(group)}/services/${seg(service)}/instances:watch`, {
      signal: ctl.signal,
      onEvent: (ev) => {
        if (ev.type === 'RESET') {
          map.clear();
          for (const i of ev.instances || []) map.set(i.id, i);
        } else if (ev.type === 'PUT' && ev.instance) {
          map.set(ev.instance.id, ev.instance);
        } else if (ev.type === 'DELETE' && ev.instance) {
          map.delete(ev.instance.id);
        }
        frame ||= setTimeout(flush, 30);
      },
      onState: (live, error) => setState((s) => ({ ...s, live, error: error || null })),
    });
    return () => {
      ctl.abort();
      clearTimeout(frame);
    };
  }, [namespace, group, service]);
  return state;
}

export function ServiceDetail({ group, service }) {
  const { namespace } = useScope();
  const { map, live, error } = useInstances(namespace, group, service);
  const [cluster, setCluster] = useState('');
  const [health, setHealth] = useState('');
  const [selected, setSelected] = useState('');
  const [scroll, setScroll] = useState(0);
  const [mayWrite] = useAccess([['service', namespace, group, service, 'write']]);
  const all = useMemo(() => [...map.values()].sort((a, b) => (a.id < b.id ? -1 : 1)), [map]);
  const clusters = useMemo(() => [...new Set(all.map((i) => i.cluster))].sort(), [all]);
  const shown = all.filter(
    (i) => (!cluster || i.cluster === cluster) && (!health || (health === 'healthy' ? i.healthy : !i.healthy)),
  );
  const healthy = all.filter((i) => i.healthy).length;
  // A virtual list: only the rows in view are in the page, so 10,000
  // instances cost what 16 do.
  const first = Math.max(0, Math.floor(scroll / ROW) - 4);
  const rows = shown.slice(first, first + VISIBLE + 8);
  const inst = map.get(selected);
  return html`<section aria-labelledby="service-title">
    <p><a href="#/services">← Services</a></p>
    <h1 id="service-title">${service} <small class="muted">${namespace} / ${group}</small></h1>
    <p class="live" role="status" data-live=${live}>
      ${live === 'live' ? '● live' : live === 'failed' ? 'stopped' : '○ ' + live}
      ${' · '}<span data-testid="counts">${healthy} healthy / ${all.length} total</span>
    </p>
    <${ErrorNote} error=${error} />
    <${Settings} namespace=${namespace} group=${group} service=${service} mayWrite=${mayWrite} />
    <div class="toolbar">
      <label>Cluster <select name="cluster" value=${cluster} onChange=${(e) => setCluster(e.target.value)}>
        <option value="">all</option>${clusters.map((c) => html`<option value=${c}>${c}</option>`)}
      </select></label>
      <label>Health <select name="health" value=${health} onChange=${(e) => setHealth(e.target.value)}>
        <option value="">all</option><option value="healthy">healthy</option><option value="unhealthy">unhealthy</option>
      </select></label>
      <span class="muted">${shown.length} shown</span>
    </div>
    <div class="split">
      <div class="vlist" role="grid" aria-label="Instances" aria-rowcount=${shown.length} tabindex="0"
        style=${{ height: ROW * VISIBLE + 'px' }} onScroll=${(e) => setScroll(e.target.scrollTop)}
        onKeyDown=${(e) => {
          const i = shown.findIndex((x) => x.id === selected);
          if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
            e.preventDefault();
            const at = Math.min(shown.length - 1, Math.max(0, i + (e.key === 'ArrowDown' ? 1 : -1)));
            if (!shown[at]) return;
            setSelected(shown[at].id);
            // Keep the selected row in view (and so rendered).
            const g = e.currentTarget;
            if (at * ROW < g.scrollTop) g.scrollTop = at * ROW;
            else if ((at + 1) * ROW > g.scrollTop + g.clientHeight) g.scrollTop = (at + 1) * ROW - g.clientHeight;
          }
        }}>
        <div style=${{ height: shown.length * ROW + 'px', position: 'relative' }}>
          ${rows.map(
            (i, k) => html`<div role="row" class=${'irow' + (i.id === selected ? ' sel' : '')} data-instance=${i.id}
              aria-rowindex=${first + k + 1} aria-selected=${i.id === selected}
              style=${{ top: (first + k) * ROW + 'px' }} onClick=${() => setSelected(i.id)}>
              <span role="gridcell" class="addr">${i.ip}:${i.port}</span>
              <span role="gridcell">${i.cluster}</span>
              <span role="gridcell">w ${i.weight}</span>
              <span role="gridcell" class=${i.healthy ? 'ok' : 'bad'}>${i.healthy ? 'healthy' : 'unhealthy'}</span>
              <span role="gridcell" class=${i.enabled ? '' : 'warn'}>${i.enabled ? 'enabled' : 'maintenance'}</span>
              <span role="gridcell" class="muted">${i.ephemeral ? 'ephemeral' : 'persistent'}</span>
            </div>`,
          )}
        </div>
      </div>
      ${inst
        ? html`<${InstancePanel} key=${inst.id} inst=${inst} namespace=${namespace} group=${group} service=${service}
            mayWrite=${mayWrite} onGone=${() => setSelected('')} />`
        : html`<p class="muted panel">Select an instance (click, or the arrow keys in the list) to see and change it.</p>`}
    </div>
  </section>`;
}

function Settings({ namespace, group, service, mayWrite }) {
  const path = `namespaces/${seg(namespace)}/groups/${seg(group)}/services/${seg(service)}/settings`;
  const cur = useAsync((signal) => get(path, null, signal), [path]);
  const [value, setValue] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const shown = value ?? String(cur.data?.protectThreshold ?? '');
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    setSaved(false);
    if (shown.trim() === '') return setError(new Error('Give a protect threshold from 0 to 1.'));
    try {
      await call('PUT', path, { body: { protectThreshold: Number(shown) } });
      setSaved(true);
      setValue(null);
      cur.reload();
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="toolbar" onSubmit=${save} aria-label="Service settings">
    <label>Protect threshold <input name="protect-threshold" type="number" min="0" max="1" step="0.05" required value=${shown}
      onInput=${(e) => setValue(e.target.value)} /></label>
    <button type="submit" disabled=${!mayWrite} title=${denied(mayWrite, 'change this service')}>Save</button>
    <small class="muted">0 to 1: when fewer than this share are healthy, healthy-only queries return every instance.</small>
    ${saved && html`<span role="status" class="ok">Saved.</span>`}
    <${ErrorNote} error=${error || cur.error} />
  </form>`;
}

const metaText = (m) =>
  Object.entries(m || {})
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');

function InstancePanel({ inst, namespace, group, service, mayWrite, onGone }) {
  const path = `namespaces/${seg(namespace)}/groups/${seg(group)}/services/${seg(service)}/instances/${seg(inst.id)}`;
  const [weight, setWeight] = useState(String(inst.weight));
  const [meta, setMeta] = useState(metaText(inst.metadata));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState(false);
  // A change from elsewhere (the watch) shows its new values in the
  // fields the user has not touched.
  const [touched, setTouched] = useState({});
  useEffect(() => {
    if (!touched.weight) setWeight(String(inst.weight));
    if (!touched.meta) setMeta(metaText(inst.metadata));
  }, [inst.revision]);
  const healthInfo = useAsync((signal) => get(path + '/health', null, signal), [path, inst.revision]);
  // A weight or a maintenance toggle sets one field, whatever else
  // changed meanwhile; metadata replaces the whole map, so it is guarded by
  // the revision shown (a conflict says someone changed it first).
  const patch = async (body, field) => {
    setError(null);
    setBusy(true);
    try {
      await call('PATCH', path, { body: field === 'meta' ? { ...body, ifRevision: inst.revision } : body });
      if (field) setTouched((t) => ({ ...t, [field]: false }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const saveMeta = (e) => {
    e.preventDefault();
    const entries = {};
    for (const line of meta.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const at = t.indexOf('=');
      if (at <= 0) {
        setError(new Error(`"${t}" is not NAME=VALUE`));
        return;
      }
      entries[t.slice(0, at).trim()] = t.slice(at + 1).trim();
    }
    patch({ metadata: { entries } }, 'meta');
  };
  const deregister = async (yes) => {
    setConfirm(false);
    if (!yes) return;
    try {
      await call('DELETE', path);
      onGone();
    } catch (err) {
      setError(err);
    }
  };
  const why = denied(mayWrite, 'change this service');
  const check = healthInfo.data?.check;
  return html`<aside class="panel" aria-label=${'Instance ' + inst.id}>
    <h2>${inst.ip}:${inst.port}</h2>
    <dl class="facts">
      <dt>ID</dt><dd>${inst.id}</dd>
      <dt>Cluster</dt><dd>${inst.cluster}</dd>
      <dt>Kind</dt><dd>${inst.ephemeral ? `ephemeral (session ${inst.session || '—'})` : 'persistent'}</dd>
      <dt>Healthy</dt><dd class=${inst.healthy ? 'ok' : 'bad'}>${inst.healthy ? 'yes' : 'no'}</dd>
      <dt>Revision</dt><dd>${inst.revision}</dd>
    </dl>
    <${ErrorNote} error=${error} />
    <form onSubmit=${(e) => {
      e.preventDefault();
      if (weight.trim() === '') return setError(new Error('Give a weight: 0 to 10000 (0 takes it out of the traffic).'));
      patch({ weight: Number(weight) }, 'weight');
    }}>
      <${Field} label="Weight" hint="0 to 10000">
        <input name="weight" type="number" min="0" max="10000" step="any" required value=${weight}
          onInput=${(e) => {
            setWeight(e.target.value);
            setTouched((t) => ({ ...t, weight: true }));
          }} />
      </${Field}>
      <button type="submit" disabled=${!mayWrite || busy} title=${why}>Set weight</button>
    </form>
    <div class="actions">
      <button type="button" name="maintenance" aria-pressed=${!inst.enabled} disabled=${!mayWrite || busy} title=${why}
        onClick=${() => patch({ enabled: !inst.enabled })}>${inst.enabled ? 'Disable (maintenance)' : 'Enable'}</button>
      ${!inst.ephemeral &&
      html`<button type="button" class="danger" disabled=${!mayWrite} title=${why} onClick=${() => setConfirm(true)}>Deregister…</button>`}
    </div>
    <form onSubmit=${saveMeta}>
      <${Field} label="Metadata" hint="one NAME=VALUE a line; replaces all of it">
        <textarea name="metadata" rows="4" value=${meta} onInput=${(e) => {
          setMeta(e.target.value);
          setTouched((t) => ({ ...t, meta: true }));
        }}></textarea>
      </${Field}>
      <button type="submit" disabled=${!mayWrite || busy} title=${why}>Save metadata</button>
    </form>
    <h3>Health check</h3>
    ${healthInfo.loading && html`<${Loading} />`}
    ${healthInfo.data &&
    (check
      ? html`<p>${check.kind} ${check.target} · run by ${healthInfo.data.runner || 'no gateway yet'}</p>
          <ul class="results">${(healthInfo.data.history || []).slice(-10).reverse().map(
            (r) => html`<li class=${r.pass ? 'ok' : 'bad'}>${time(r.at)} ${r.pass ? 'pass' : 'fail'} ${r.output}</li>`,
          )}</ul>`
      : html`<p class="muted">No health check: its health is set by hand or by its session.</p>`)}
    <${Confirm} open=${confirm} title="Deregister this instance?" confirmLabel="Deregister" danger onAnswer=${deregister}>
      <p>${inst.ip}:${inst.port} (${inst.id}) is removed from ${service}. Clients stop seeing it at once.</p>
    </${Confirm}>
  </aside>`;
}
