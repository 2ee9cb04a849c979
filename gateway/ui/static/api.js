// The console's only way to the server: the public REST API under /v1,
// with the token the user logged in with.

const TOKEN_KEY = 'junction.token';

/** ApiError is a failed call: its HTTP status and the API's error body. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.field = field || '';
  }
  /** A plain sentence for the user, for the statuses that need one. */
  get explained() {
    switch (this.status) {
      case 401:
        return `Not logged in, or the token is no longer valid (${this.message}). Log in with a token.`;
      case 403:
        return `Your token may not do this: ${this.message}`;
      case 409:
        return `Someone else changed it first: ${this.message}`;
      case 503:
        return `The store is unavailable: ${this.message}`;
      case 0:
        return `The server cannot be reached: ${this.message}`;
    }
    return this.message;
  }
}

/** The token kept for this browser tab (sessionStorage: gone with the tab). */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY)),
};

/** seg joins path segments, each escaped. */
export const seg = (...parts) => parts.map((p) => encodeURIComponent(p)).join('/');

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null) continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return '/v1/' + path + (s ? '?' + s : '');
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

async function failure(res) {
  let body = {};
  try {
    body = await res.json();
  } catch {
    /* not JSON: the status says enough */
  }
  const err = new ApiError(res.status, body.code, body.message, body.field);
  if (res.status === 401) window.dispatchEvent(new CustomEvent('junction-unauthenticated', { detail: err }));
  if (res.status === 503) window.dispatchEvent(new CustomEvent('junction-unavailable', { detail: err }));
  return err;
}

/**
 * call makes one request and returns its JSON answer. opts: query, body
 * (sent as JSON), raw (sent as it is, with contentType), signal.
 */
export async function call(method, path, opts = {}) {
  const init = { method, headers: headers(), signal: opts.signal };
  if (opts.raw !== undefined) {
    init.body = opts.raw;
    init.headers['Content-Type'] = opts.contentType || 'text/plain; charset=utf-8';
  } else if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url(path, opts.query), init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'UNREACHABLE', e.message);
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  return res.json();
}

// A stream's error carries its gRPC code: the HTTP status the API gives it.
const GRPC_HTTP = { 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 10: 409, 11: 410, 12: 501, 14: 503, 16: 401 };

export const get = (path, query, signal) => call('GET', path, { query, signal });

/**
 * watch follows a REST watch stream (one JSON object per line) and calls
 * onEvent with each event. After a break it resumes from the last revision
 * seen (the server answers with a RESET when it cannot replay from there),
 * retrying with a growing pause; onState hears 'live', 'reconnecting' with
 * the error, or 'failed' with an error that retrying cannot fix (401, 403,
 * 404, 400). Abort the signal to stop.
 */
export async function watch(path, { onEvent, onState, signal, query }) {
  let revision = 0;
  let pause = 250;
  while (!signal.aborted) {
    let reader;
    try {
      const res = await fetch(url(path, { ...query, revision: revision || undefined }), { headers: headers(), signal });
      if (!res.ok) throw await failure(res);
      onState?.('live');
      reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.error) {
            const err = new ApiError(GRPC_HTTP[msg.error.code] || 500, '', msg.error.message);
            if (err.status === 401) window.dispatchEvent(new CustomEvent('junction-unauthenticated', { detail: err }));
            throw err;
          }
          const ev = msg.result;
          if (ev.revision) revision = Number(ev.revision);
          pause = 250;
          onEvent(ev);
        }
      }
      throw new ApiError(0, 'CLOSED', 'the watch stream ended');
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && [400, 401, 403, 404].includes(e.status)) {
        onState?.('failed', e);
        return;
      }
      onState?.('reconnecting', e);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 5000);
    } finally {
      // A stream left for any reason is closed: a browser holds few.
      reader?.cancel().catch(() => {});
    }
  }
}
