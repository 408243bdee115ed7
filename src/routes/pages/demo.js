// The client demo (GET /): a token, the user's event stream, events as they arrive.
import {
  $, applyTokenMode, clearEmpty, clock, describeToken, devTokens, errorOf, h, mintToken,
  showState, trim,
} from './common.js';
import { SharedStream } from '/client.js';

const ROLE_TEXT = {
  leader: 'holds the stream for all tabs',
  follower: 'shares the stream of another tab',
  none: '–',
};

const STORED_TOKEN = 'nft-event-router.demo.token';
const MAX_EVENTS = 200;

let stream = null;
let received = 0;
let reconnects = 0;
let serviceToken = null;

function fail(message) {
  $('#auth-error').textContent = message;
}

function notice(message) {
  $('#notice').textContent = message;
}

function connect(token) {
  fail('');
  const about = describeToken(token);
  $('#claims').textContent = about.text;
  if (!about.ok) {
    fail(about.text);
    return;
  }
  sessionStorage.setItem(STORED_TOKEN, token);
  if (stream) stream.close();
  received = 0;
  reconnects = 0;
  $('#count').textContent = '0';
  $('#reconnects').textContent = '0';
  $('#last-id').textContent = '–';
  $('#pub-user').value = about.claims.sub;
  // One stream per browser: the tabs of this user share it (client.js).
  stream = new SharedStream({
    token,
    onState: stateChanged,
    onEvent: showEvent,
    onControl: showControl,
    onRole: showRole,
  }).start();
}

function showRole(role) {
  const badge = $('#role');
  badge.dataset.role = role;
  badge.textContent = ROLE_TEXT[role] || role;
}

function stateChanged(state, detail) {
  showState($('#state'), state);
  if (state === 'open' && detail.reconnect) {
    reconnects += 1;
    $('#reconnects').textContent = String(reconnects);
    const note = detail.resumedFrom
      ? `Reconnected at ${clock()}: resumed from ${detail.resumedFrom}, missed events follow.`
      : `Reconnected at ${clock()}: no event seen before, live from now.`;
    notice(note);
    divider(detail.resumedFrom ? `reconnected · resumed from ${detail.resumedFrom}` : 'reconnected');
  } else if (state === 'open') {
    notice(`Connected at ${clock()}.`);
  } else if (state === 'reconnecting') {
    notice(`Connection lost at ${clock()}; the browser reconnects by itself` +
      (detail.lastId ? ` and resumes after ${detail.lastId}.` : '.'));
  } else if (state === 'closed') {
    notice(`Stream closed: ${detail.reason}.`);
  } else if (state === 'idle') {
    notice('');
  }
}

function divider(text) {
  const list = $('#events');
  clearEmpty(list);
  list.prepend(h('li', { class: 'divider', text: `— ${text} —` }));
}

function showEvent(envelope, id) {
  received += 1;
  $('#count').textContent = String(received);
  $('#last-id').textContent = id || '–';
  const list = $('#events');
  clearEmpty(list);
  const meta = h('div', { class: 'meta' },
    h('span', { class: 'type', text: envelope.eventType }),
    h('time', { datetime: envelope.timestamp, text: clock(envelope.timestamp) }),
    h('span', { class: 'cursor', title: 'cursor (the SSE id)', text: `#${id}` }),
    h('span', { text: `from ${envelope.source}` }),
    envelope.correlationId ? h('span', { text: `correlation ${envelope.correlationId}` }) : null);
  const item = h('li', { class: 'event fresh', dataset: { eventId: envelope.eventId, cursor: id } },
    meta, h('pre', { text: JSON.stringify(envelope.data, null, 2) }));
  list.prepend(item);
  trim(list, MAX_EVENTS);
}

function showControl(frame, id) {
  if (frame.type === 'heartbeat') {
    $('#heartbeat').textContent = clock(frame.timestamp);
  } else if (frame.type === 'resync') {
    $('#last-id').textContent = id || '–';
    divider(`resync: events were missed for good; fetch ${frame.snapshotUrl}`);
    notice(`The router could not resume exactly; the current state is at ${frame.snapshotUrl}.`);
  }
}

async function mint(event) {
  event.preventDefault();
  fail('');
  try {
    const token = await mintToken($('#user-id').value.trim(), 'user');
    $('#token').value = token;
    connect(token);
  } catch (e) {
    fail(`Could not mint a token: ${e.message}`);
  }
}

async function loadSamples() {
  const select = $('#pub-type');
  try {
    const response = await fetch('/assets/samples.json');
    const samples = await response.json();
    for (const type of Object.keys(samples)) select.append(h('option', { value: type, text: type }));
    const fill = () => {
      $('#pub-data').value = JSON.stringify(samples[select.value], null, 2);
    };
    select.addEventListener('change', fill);
    select.value = 'badge_earned' in samples ? 'badge_earned' : select.value;
    fill();
  } catch {
    $('#pub-result').textContent = 'could not load the sample events';
  }
}

async function publish(event) {
  event.preventDefault();
  const result = $('#pub-result');
  result.textContent = 'publishing…';
  let data;
  try {
    data = JSON.parse($('#pub-data').value);
  } catch (e) {
    result.textContent = `data is not JSON: ${e.message}`;
    return;
  }
  try {
    if (devTokens && !serviceToken) serviceToken = await mintToken('demo-page', 'service');
    const token = devTokens ? serviceToken : $('#pub-token').value.trim();
    const response = await fetch('/api/v1/events', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ eventType: $('#pub-type').value, userId: $('#pub-user').value.trim(), data }),
    });
    result.textContent = response.ok
      ? `accepted (${response.status}), cursor ${response.headers.get('X-Event-Cursor')}`
      : `refused: ${await errorOf(response)}`;
  } catch (e) {
    result.textContent = `failed: ${e.message}`;
  }
}

function start() {
  applyTokenMode();
  $('#mint-form').addEventListener('submit', mint);
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    connect($('#token').value.trim());
  });
  $('#disconnect').addEventListener('click', () => {
    if (stream) stream.close();
    stream = null;
  });
  $('#publish-form').addEventListener('submit', publish);
  loadSamples();
  const stored = sessionStorage.getItem(STORED_TOKEN);
  if (stored && describeToken(stored).ok) {
    $('#token').value = stored;
    connect(stored);
  }
}

start();
