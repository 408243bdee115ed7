// nft-event-router's browser client, served by the router at GET /client.js (an ES module, no
// build step): one event stream per browser, shared by all its tabs.
//
// Every tab of a user that opens a stream would otherwise hold its own connection, and over
// HTTP/1.1 a browser opens at most six per origin. Here the tabs elect one leader with a Web
// Lock: it holds the only EventSource and passes each frame to the other tabs over a
// BroadcastChannel. When the leader closes, its lock is released and the next tab waiting
// for it takes over, reopening the stream after the last cursor the tabs have seen, so no
// tab misses an event; every tab drops a cursor it has already seen, so none sees one twice.
//
//   import { SharedStream } from '/client.js';
//   const stream = new SharedStream({
//     token,                                   // the user's JWT
//     onEvent: (envelope, cursor) => { … },    // every event, once, in cursor order
//     onControl: (frame, cursor) => { … },     // heartbeat, resync, token_expired, …
//     onState: (state, detail) => { … },       // connecting, open, reconnecting, closed, idle
//     onRole: (role) => { … },                 // leader, follower, none
//   }).start();
//
// Same origin as the router, the token travels in the stream cookie (HttpOnly, never in a
// URL); from another origin (`base`), EventSource cannot send the cookie, so it goes as
// `?access_token=`. Without Web Locks or BroadcastChannel (an old browser, or a page that is
// not a secure context) each tab streams on its own.

const PREFIX = 'nft-event-router:stream:';

/** The claims of a JWT, unverified (only to name the stream); `{}` when unreadable. */
function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

/** Whether cursor `id` comes after `than` (cursors are the stream's sequence numbers). */
function after(id, than) {
  if (!id) return false;
  if (!than) return true;
  try {
    return BigInt(id) > BigInt(than);
  } catch {
    return id !== than;
  }
}

/**
 * Sets the stream cookie of `path` (the user stream or the operations feed) for `token`, at
 * the router `base` (default: this page's origin); what went wrong, as text, or null.
 */
export async function setStreamCookie(token, path, base = '') {
  const stream = path.startsWith('/api/v1/admin/') ? 'operations' : 'user';
  try {
    const response = await fetch(`${base}/api/v1/user/stream-cookie?stream=${stream}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    if (response.ok) return null;
    let message = response.statusText;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not JSON: the status text says enough
    }
    return `${response.status}: ${message}`;
  } catch {
    return 'the router cannot be reached';
  }
}

export class SharedStream {
  constructor({
    token,
    path = '/api/v1/user/nft-events',
    base = new URL(import.meta.url).origin,
    name,
    onEvent = () => {},
    onControl = () => {},
    onState = () => {},
    onRole = () => {},
  }) {
    Object.assign(this, { token, path, base, onEvent, onControl, onState, onRole });
    // Tabs share a stream when they stream the same path for the same user.
    this.name = PREFIX + (name || `${base}${path}:${claimsOf(token).sub || ''}`);
    this.lastId = '';
    this.role = 'none';
    this.state = 'idle';
    this.detail = {};
    this.source = null;
    this.opens = 0;
    this.channel = null;
    this.closed = false;
    this.abort = new AbortController();
    this.resign = null;
  }

  /** Joins the browser's other tabs; this tab leads once it holds the lock. */
  start() {
    if (typeof BroadcastChannel === 'undefined' || !navigator.locks) {
      this.lead();
      return this;
    }
    this.channel = new BroadcastChannel(this.name);
    this.channel.onmessage = (message) => this.heard(message.data);
    this.setRole('follower');
    this.onState('connecting', {});
    // The leader, if there is one, answers with its state and its cursor.
    this.post({ kind: 'hello' });
    navigator.locks
      .request(this.name, { signal: this.abort.signal }, () => {
        if (this.closed) return undefined;
        this.lead();
        // Held while this tab lives (or until close()); then the next tab waiting leads.
        return new Promise((resolve) => {
          this.resign = resolve;
        });
      })
      .catch(() => {}); // close() gave up the wait
    return this;
  }

  /** Stops streaming in this tab; if it led, the next tab takes over where it stood. */
  close() {
    if (this.closed) return;
    if (this.role === 'leader') this.post({ kind: 'cursor', id: this.lastId });
    this.closed = true;
    if (this.source) this.source.close();
    this.source = null;
    this.abort.abort();
    if (this.resign) this.resign();
    if (this.channel) this.channel.close();
    this.setRole('none');
    this.onState('idle', {});
  }

  get sameOrigin() {
    return this.base === globalThis.location?.origin;
  }

  async lead() {
    this.setRole('leader');
    this.announce('connecting', {});
    const refused = this.sameOrigin ? await this.setCookie() : null;
    if (this.closed) return;
    if (refused) {
      this.announce('closed', { reason: refused });
      return;
    }
    const query = new URLSearchParams();
    // The first request carries the cursor the tabs stand at; EventSource's own reconnects
    // send Last-Event-ID, which the router prefers.
    if (this.lastId) query.set('lastEventId', this.lastId);
    if (!this.sameOrigin) query.set('access_token', this.token);
    const search = query.toString();
    const source = new EventSource(`${this.base}${this.path}${search ? `?${search}` : ''}`);
    this.source = source;
    source.onopen = () => {
      this.opens += 1;
      this.announce('open', { reconnect: this.opens > 1, resumedFrom: this.lastId });
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.announce('closed', { reason: 'the router closed the stream' });
      } else {
        this.announce('reconnecting', { lastId: this.lastId });
      }
    };
    source.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      const shared = { kind: frame.eventType ? 'event' : 'control', id: message.lastEventId, frame };
      this.take(shared);
      this.post(shared);
    };
  }

  /** The stream cookie for this token; what went wrong, or null. */
  setCookie() {
    return setStreamCookie(this.token, this.path, this.base);
  }

  /** A frame, from this tab's stream or the leader's: each event once, in cursor order. */
  take({ kind, id, frame }) {
    if (kind === 'event') {
      if (!after(id, this.lastId)) return;
      this.lastId = id;
      this.onEvent(frame, id);
    } else {
      if (frame.type === 'resync' && id) this.lastId = id;
      this.onControl(frame, id);
    }
  }

  heard(message) {
    if (this.closed || !message) return;
    const leading = this.role === 'leader';
    switch (message.kind) {
      case 'event':
      case 'control':
        if (!leading) this.take(message);
        break;
      case 'state':
        if (!leading) this.onState(message.state, message.detail || {});
        break;
      case 'cursor':
        if (!leading && after(message.id, this.lastId)) this.lastId = message.id;
        break;
      case 'hello':
        if (leading) {
          this.post({ kind: 'cursor', id: this.lastId });
          this.post({ kind: 'state', state: this.state, detail: this.detail });
        }
        break;
      default:
    }
  }

  announce(state, detail) {
    this.state = state;
    this.detail = detail;
    this.onState(state, detail);
    this.post({ kind: 'state', state, detail });
  }

  post(message) {
    if (this.channel && !this.closed) this.channel.postMessage(message);
  }

  setRole(role) {
    this.role = role;
    this.onRole(role);
  }
}
