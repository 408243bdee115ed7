// Shared by the demo page and the dashboard: tokens, small DOM helpers, and an EventSource
// wrapper that reports its state and remembers the last event id.

import { setStreamCookie } from '/client.js';

/** The router mints development tokens for this page (auth.dev_tokens, and this machine's
 * browser); the server fills this in, and the key the mint route asks for. */
export const devTokens = document.body.dataset.devTokens === 'on';
const devKey = document.body.dataset.devKey || '';

export const $ = (selector) => document.querySelector(selector);

/** Shows the elements meant for this router's token mode, hides the others. */
export function applyTokenMode() {
  for (const el of document.querySelectorAll('[data-dev-only]')) el.hidden = !devTokens;
  for (const el of document.querySelectorAll('[data-dev-off]')) el.hidden = devTokens;
}

/** `h('li', {class: 'x', dataset: {id: 1}}, child…)`: an element, text set safely. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value);
  }
  for (const child of children) if (child != null) el.append(child);
  return el;
}

/** The `message` of a JSON error answer, else the status. */
export async function errorOf(response) {
  try {
    const body = await response.json();
    return body.message || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** POST /api/v1/dev/token: a development token for `userId` with `role`. */
export async function mintToken(userId, role) {
  const response = await fetch('/api/v1/dev/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Dev-Token-Key': devKey },
    body: JSON.stringify({ userId, role }),
  });
  if (!response.ok) throw new Error(await errorOf(response));
  const body = await response.json();
  return body.token;
}

/** The claims of a JWT, read without verifying (the router verifies); null if unreadable. */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

/** "as u1 (user), expires 14:02" for a token, or why it will not do. */
export function describeToken(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.sub) return { ok: false, text: 'this does not look like a token' };
  const expires = new Date(claims.exp * 1000);
  if (expires < new Date()) return { ok: false, text: `token of ${claims.sub} has expired` };
  return {
    ok: true,
    claims,
    text: `as ${claims.sub} (${claims.role}), expires ${expires.toLocaleString()}`,
  };
}

/** hh:mm:ss.mmm of an RFC 3339 time (or of now). */
export function clock(iso) {
  const d = iso ? new Date(iso) : new Date();
  if (Number.isNaN(d.getTime())) return String(iso ?? '');
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Keeps at most `max` children in `list`, dropping the oldest (the bottom ones). */
export function trim(list, max) {
  while (list.children.length > max) list.lastElementChild.remove();
}

/** Drops the "nothing yet" placeholder of a list, if still there. */
export function clearEmpty(list) {
  for (const el of list.querySelectorAll(':scope > .empty')) el.remove();
}

/**
 * An SSE stream of the router (`path`). EventSource cannot set headers, so the token goes
 * into the stream cookie first (HttpOnly, scoped to `path`), never into the URL, where
 * proxies and access logs would keep it. The browser reconnects by itself, sending the
 * cookie and `Last-Event-ID`; this tells
 * `onState(state, detail)` about every step: `connecting`, `open` (detail.reconnect,
 * detail.resumedFrom), `reconnecting`, `closed` (detail.reason), `idle`. Frames with an
 * `eventType` are events (`onEvent(envelope, id)`); the rest are control frames
 * (`onControl(frame, id)`: connection_established, heartbeat, resync).
 */
export class RouterStream {
  constructor(path, token, { onState, onEvent, onControl }) {
    Object.assign(this, { path, token, onState, onEvent, onControl });
    this.source = null;
    this.opens = 0;
    this.lastId = '';
    this.generation = 0;
  }

  async open() {
    this.close(false);
    const generation = ++this.generation;
    this.onState('connecting', {});
    const refused = await setStreamCookie(this.token, this.path);
    // A later open() or close() took over while the cookie was being set.
    if (generation !== this.generation) return;
    if (refused) {
      this.onState('closed', { reason: refused });
      return;
    }
    const source = new EventSource(this.path);
    this.source = source;
    source.onopen = () => {
      this.opens += 1;
      this.onState('open', { reconnect: this.opens > 1, resumedFrom: this.lastId });
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.explainClose();
      } else {
        this.onState('reconnecting', { lastId: this.lastId });
      }
    };
    source.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      // Control frames carry no id, so lastEventId still names the previous event then.
      if (frame.eventType) {
        this.lastId = message.lastEventId;
        this.onEvent(frame, message.lastEventId);
      } else {
        if (frame.type === 'resync' && message.lastEventId) this.lastId = message.lastEventId;
        this.onControl(frame, message.lastEventId);
      }
    };
  }

  /**
   * EventSource gives up on an HTTP error without saying which. Ask the same URL once with
   * fetch to show the router's message (401, 403, 404, 429); a stream that opens is dropped.
   */
  async explainClose() {
    const source = this.source;
    const abort = new AbortController();
    let reason = 'the router closed the stream';
    try {
      const response = await fetch(this.path, {
        headers: { Authorization: `Bearer ${this.token}` },
        signal: abort.signal,
      });
      if (!response.ok) reason = `${response.status}: ${await errorOf(response)}`;
    } catch {
      reason = 'the router cannot be reached';
    } finally {
      abort.abort();
    }
    if (source === this.source) this.onState('closed', { reason });
  }

  close(report = true) {
    this.generation += 1;
    if (this.source) this.source.close();
    this.source = null;
    if (report) this.onState('idle', {});
  }
}

const STATE_TEXT = {
  idle: 'not connected',
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'reconnecting…',
  closed: 'closed',
};

/** Shows a RouterStream state on a `.state` badge. */
export function showState(badge, state) {
  badge.dataset.state = state;
  badge.textContent = STATE_TEXT[state] || state;
}
