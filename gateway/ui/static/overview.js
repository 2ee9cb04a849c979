// Overview: the store, its declared capabilities, the cluster members and
// the gateway that runs the health checks.
import { html, useAsync, ErrorNote, Loading, time } from './lib.js';
import { get } from './api.js';

const CAPABILITIES = [
  ['nativeSessions', 'Native sessions', 'the store expires ephemeral instances itself'],
  ['nativeRevisions', 'Native revisions', 'revisions come from the store, not from Junction'],
  ['resumableWatch', 'Resumable watch', 'a watch resumes from a past revision'],
  ['watchHistory', 'Watch history', 'past events a resumed watch can replay'],
  ['linearizableReads', 'Linearizable reads', 'a read sees every write acknowledged before it'],
  ['nativeCas', 'Native compare-and-set', 'the store checks revisions itself'],
  ['configHistory', 'Config history', 'every version of a config is kept'],
  ['atomicHistory', 'Atomic history', 'a version is written in the same transaction as its change'],
  ['patchAnyOwner', 'Patch any owner', 'an ephemeral instance can be changed through any gateway'],
];

const yes = (v) => (typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v));

export function Overview() {
  const status = useAsync((signal) => get('status', null, signal), []);
  const members = useAsync(
    (signal) => get('members', null, signal).catch((e) => (e.status === 501 ? { notCluster: true } : Promise.reject(e))),
    [],
  );
  return html`<section aria-labelledby="overview-title">
    <h1 id="overview-title">Overview</h1>
    ${status.loading && html`<${Loading} what="the status" />`}
    <${ErrorNote} error=${status.error} retry=${status.reload} />
    ${status.data &&
    html`<dl class="facts">
        <dt>Backend</dt><dd data-testid="backend">${status.data.backend}</dd>
        <dt>Version</dt><dd>${status.data.version}</dd>
        <dt>Revision</dt><dd>${status.data.revision}</dd>
        <dt>Leader</dt><dd>${status.data.leader || '—'}</dd>
        <dt>This gateway</dt><dd>${status.data.gateway}</dd>
        <dt>Health checks run by</dt><dd data-testid="health-runner">${status.data.healthRunner || 'no gateway yet'}</dd>
      </dl>
      <h2>Capabilities</h2>
      <p class="muted">As the backend declares them. <code>junction conformance</code> measures what it really guarantees
        ${status.data.measured ? ': its figures are below.' : '; start the server with --guarantees REPORT.json to show them here.'}</p>
      <table class="grid" aria-label="Capabilities">
        <thead><tr><th scope="col">Capability</th><th scope="col">Declared</th><th scope="col">Meaning</th></tr></thead>
        <tbody>${CAPABILITIES.map(
          ([k, label, meaning]) => html`<tr><th scope="row">${label}</th><td>${yes(status.data.capabilities[k])}</td><td class="muted">${meaning}</td></tr>`,
        )}</tbody>
      </table>
      ${status.data.measured && html`<${Measured} m=${status.data.measured} />`}`}
    <h2>Cluster members</h2>
    ${members.loading && html`<${Loading} what="the members" />`}
    <${ErrorNote} error=${members.error} retry=${members.reload} />
    ${members.data?.notCluster && html`<p class="muted">This backend is not a built-in store cluster: its own servers are managed by the store.</p>`}
    ${members.data?.members &&
    html`<table class="grid" aria-label="Cluster members">
      <thead><tr><th scope="col">Member</th><th scope="col">Raft address</th><th scope="col">Role</th><th scope="col">Reachable</th></tr></thead>
      <tbody>${members.data.members.map(
        (m) => html`<tr>
          <td>${m.id}</td><td>${m.raftAddress}</td>
          <td>${m.leader ? 'leader' : m.voter ? 'follower' : 'non-voter'}</td>
          <td class=${m.reachable ? 'ok' : 'bad'}>${m.reachable ? 'yes' : 'no'}</td>
        </tr>`,
      )}</tbody>
    </table>`}
  </section>`;
}

/** Measured is a conformance report's column for this kind of store. */
function Measured({ m }) {
  return html`<h2>Measured guarantees</h2>
    <p class="muted">${m.label} — measured ${time(m.started)}${m.command ? html` by <code>${m.command}</code>` : ''}.</p>
    <table class="grid" aria-label="Measured guarantees">
      <thead><tr><th scope="col">Scenario</th><th scope="col">Verdict</th><th scope="col">Figures</th><th scope="col">Rule</th></tr></thead>
      <tbody>${m.results.map(
        (r) => html`<tr data-scenario=${r.scenario}>
          <th scope="row">${r.scenario}</th>
          <td class=${r.verdict === 'pass' ? 'ok' : r.verdict === 'fail' ? 'bad' : 'warn'}>${r.verdict}</td>
          <td>${r.figures}${r.detail && r.verdict !== 'pass' ? html`<br /><small>${r.detail}</small>` : ''}</td>
          <td class="muted">${r.rule}</td>
        </tr>`,
      )}</tbody>
    </table>`;
}
