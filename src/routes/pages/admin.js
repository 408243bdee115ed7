// The operations dashboard (GET /admin): the operations feed, connections now, delivery rate
// and latency from /metrics, alerts from the feed, the latest audit rows.
import {
  $, applyTokenMode, clearEmpty, clock, describeToken, errorOf, h, mintToken, RouterStream,
  showState, trim,
} from './common.js';

const STORED_TOKEN = 'nft-event-router.admin.token';
const STATS_EVERY_MS = 2000;
const METRICS_EVERY_MS = 2000;
const AUDIT_EVERY_MS = 5000;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const MAX_FEED = 200;
const MAX_RESOLVED = 5;
const DELIVERED = 'nft_router_events_delivered_total';
const LATENCY_SUM = 'nft_router_delivery_latency_seconds_sum';
const LATENCY_COUNT = 'nft_router_delivery_latency_seconds_count';

let token = null;
let feed = null;
let timers = [];
let auditSoon = null;
const alerts = new Map();
const resolved = [];
const rateSeries = [];
const latencySeries = [];
let lastSample = null;

function fail(message) {
  $('#auth-error').textContent = message;
}

function bearer() {
  return { headers: { Authorization: `Bearer ${token}` } };
}

/** Runs `task` now and every `ms` after it finished, until the dashboard is stopped. */
function every(ms, task) {
  const slot = { id: null };
  const run = async () => {
    await task();
    if (timers.includes(slot)) slot.id = setTimeout(run, ms);
  };
  timers.push(slot);
  run();
}

function stop() {
  for (const slot of timers) clearTimeout(slot.id);
  timers = [];
  if (feed) feed.close();
  feed = null;
}

function start(newToken) {
  fail('');
  const about = describeToken(newToken);
  $('#claims').textContent = about.text;
  if (!about.ok) {
    fail(about.text);
    return;
  }
  if (about.claims.role !== 'admin') fail(`this token's role is ${about.claims.role}: the dashboard needs admin`);
  stop();
  token = newToken;
  sessionStorage.setItem(STORED_TOKEN, token);
  openFeed();
  every(STATS_EVERY_MS, pollStats);
  every(METRICS_EVERY_MS, pollMetrics);
  every(AUDIT_EVERY_MS, pollAudit);
}

// ---- connections now -------------------------------------------------------------------------

async function pollStats() {
  try {
    const response = await fetch('/api/v1/admin/sse-stats', bearer());
    if (!response.ok) {
      fail(`statistics: ${await errorOf(response)}`);
      if (response.status === 401 || response.status === 403) stop();
      return;
    }
    const stats = await response.json();
    $('#connections').textContent = String(stats.totalConnections);
    $('#users').textContent = String(stats.uniqueUsers);
    $('#average').textContent = Number(stats.averageConnectionsPerUser || 0).toFixed(2);
    $('#stats-age').textContent = `at ${clock()}`;
    const rows = Object.entries(stats.connectionsPerUser || {})
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 10)
      .map(([user, n]) => h('tr', {}, h('td', { text: user, title: user }), h('td', { text: String(n) })));
    $('#per-user').replaceChildren(...(rows.length ? rows
      : [h('tr', { class: 'empty' }, h('td', { colspan: '2', text: 'No open streams.' }))]));
    // The instances of the cluster (just this one without a bus), draining ones marked.
    const instances = (stats.instances || []).map((i) => h('tr', {},
      h('td', { text: i.instanceId + (i.draining ? ' (draining)' : ''), title: i.instanceId }),
      h('td', { text: String(i.totalConnections) }),
      h('td', { text: String(i.uniqueUsers) })));
    $('#instances').replaceChildren(...instances);
  } catch {
    $('#stats-age').textContent = `router unreachable at ${clock()}`;
  }
}

// ---- delivery charts from /metrics -----------------------------------------------------------

/** Prometheus text → metric name → value summed over its label sets. */
function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (Number.isFinite(value)) sums.set(m[1], (sums.get(m[1]) || 0) + value);
  }
  return sums;
}

async function pollMetrics() {
  let sums;
  try {
    const response = await fetch('/metrics');
    if (!response.ok) {
      $('#metrics-note').textContent = `/metrics answered ${response.status}: no charts yet.`;
      drawCharts(Date.now());
      return;
    }
    sums = parseMetrics(await response.text());
  } catch {
    $('#metrics-note').textContent = 'the router is unreachable.';
    drawCharts(Date.now());
    return;
  }
  const now = Date.now();
  const sample = {
    t: now,
    delivered: sums.get(DELIVERED),
    latencySum: sums.get(LATENCY_SUM),
    latencyCount: sums.get(LATENCY_COUNT),
  };
  const missing = [DELIVERED, LATENCY_COUNT].filter((name) => !sums.has(name));
  $('#metrics-note').textContent = missing.length
    ? `Not exported by this router (yet): ${missing.join(', ')}.`
    : '';
  const prev = lastSample;
  lastSample = sample;
  if (prev) {
    const seconds = (sample.t - prev.t) / 1000;
    // A counter that went down means the router restarted: no rate across that gap.
    if (sample.delivered != null && prev.delivered != null && sample.delivered >= prev.delivered && seconds > 0) {
      rateSeries.push({ t: now, v: (sample.delivered - prev.delivered) / seconds });
    }
    const count = (sample.latencyCount ?? 0) - (prev.latencyCount ?? 0);
    const sum = (sample.latencySum ?? 0) - (prev.latencySum ?? 0);
    if (sample.latencyCount != null && prev.latencyCount != null && count >= 0) {
      latencySeries.push({ t: now, v: count > 0 ? (sum / count) * 1000 : null });
    }
  }
  drawCharts(now);
}

/** Drops points older than the window, shows the latest figures, redraws both charts. */
function drawCharts(now) {
  for (const series of [rateSeries, latencySeries]) {
    while (series.length && series[0].t < now - CHART_WINDOW_MS) series.shift();
  }
  const last = (series) => series.length ? series[series.length - 1].v : null;
  const rate = last(rateSeries);
  const latency = [...latencySeries].reverse().find((p) => p.v != null);
  $('#rate-now').textContent = rate == null ? '–' : `${rate.toFixed(1)} /s`;
  $('#latency-now').textContent = latency ? `${latency.v.toFixed(2)} ms` : '–';
  drawChart($('#chart-rate'), rateSeries, now, '/s');
  drawChart($('#chart-latency'), latencySeries, now, 'ms');
}

/** The smallest 1, 2 or 5 × 10^n at or above `v`: a round top for the y axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

/** A line chart of `points` ({t, v}; v null = gap) over the last CHART_WINDOW_MS. */
function drawChart(canvas, points, now, unit) {
  const style = getComputedStyle(document.documentElement);
  const color = style.getPropertyValue('--accent').trim() || '#3566d6';
  const muted = style.getPropertyValue('--muted').trim() || '#888';
  const line = style.getPropertyValue('--line').trim() || '#ddd';
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 44;
  const top = 6;
  const plotW = width - left - 4;
  const plotH = height - top - 16;
  const values = points.map((p) => p.v).filter((v) => v != null);
  const max = niceMax(Math.max(0, ...values));
  ctx.font = '10px system-ui, sans-serif';
  ctx.fillStyle = muted;
  ctx.strokeStyle = line;
  ctx.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH * (1 - f);
    ctx.beginPath();
    ctx.moveTo(left, y + 0.5);
    ctx.lineTo(left + plotW, y + 0.5);
    ctx.stroke();
    ctx.fillText(`${+(max * f).toPrecision(3)} ${unit}`, 2, y + 3);
  }
  ctx.fillText('−5 min', left, height - 3);
  ctx.fillText('now', left + plotW - 18, height - 3);
  if (!values.length) {
    ctx.fillText('no data yet', left + plotW / 2 - 25, top + plotH / 2 - 4);
    return;
  }
  const x = (t) => left + plotW * (1 - (now - t) / CHART_WINDOW_MS);
  const y = (v) => top + plotH * (1 - v / max);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  for (const p of points) {
    if (p.v == null) {
      drawing = false;
      continue;
    }
    if (drawing) ctx.lineTo(x(p.t), y(p.v));
    else ctx.moveTo(x(p.t), y(p.v));
    drawing = true;
  }
  ctx.stroke();
  // A point with no drawn neighbour (the first sample, or one between gaps) would not show
  // as a line: mark it, and the latest one, with a dot.
  ctx.fillStyle = color;
  points.forEach((p, i) => {
    const alone = !(points[i - 1]?.v != null || points[i + 1]?.v != null);
    if (p.v != null && (alone || i === points.length - 1)) {
      ctx.beginPath();
      ctx.arc(x(p.t), y(p.v), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
}

// ---- operations feed and alerts --------------------------------------------------------------

function openFeed() {
  feed = new RouterStream('/api/v1/admin/operations', token, {
    onState: (state, detail) => {
      showState($('#feed-state'), state);
      const note = $('#feed-notice');
      if (state === 'open') {
        note.textContent = detail.reconnect && detail.resumedFrom
          ? `Reconnected at ${clock()}, resumed from ${detail.resumedFrom}.`
          : `Connected at ${clock()}.`;
      } else if (state === 'reconnecting') {
        note.textContent = `Connection lost at ${clock()}; reconnecting.`;
      } else if (state === 'closed') {
        note.textContent = `Feed closed: ${detail.reason}.`;
      }
    },
    onEvent: feedEvent,
    onControl: () => {},
  });
  feed.open();
}

/** One-line summary of an event's data: the fields an operator scans for. */
function summary(data) {
  if (!data || typeof data !== 'object') return String(data ?? '');
  return Object.entries(data)
    .filter(([, v]) => v == null || typeof v !== 'object')
    .map(([k, v]) => `${k}=${v}`)
    .join('  ');
}

function feedEvent(envelope, id) {
  const list = $('#feed');
  clearEmpty(list);
  list.prepend(h('li', { class: 'event fresh', dataset: { eventId: envelope.eventId, cursor: id } },
    h('div', { class: 'meta' },
      h('span', { class: 'type', text: envelope.eventType }),
      h('time', { datetime: envelope.timestamp, text: clock(envelope.timestamp) }),
      h('span', { text: `user ${envelope.userId}` }),
      h('span', { text: `from ${envelope.source}` })),
    h('code', { text: summary(envelope.data), title: JSON.stringify(envelope.data, null, 2) })));
  trim(list, MAX_FEED);
  if (envelope.eventType === 'system_alert') {
    alerts.set(envelope.data.name, { ...envelope.data, since: envelope.timestamp });
    renderAlerts();
  } else if (envelope.eventType === 'system_alert_resolved') {
    alerts.delete(envelope.data.name);
    resolved.unshift({ ...envelope.data, at: envelope.timestamp });
    resolved.length = Math.min(resolved.length, MAX_RESOLVED);
    renderAlerts();
  }
  // The audit consumer writes shortly after the event: look again soon, once per burst.
  if (!auditSoon) auditSoon = setTimeout(() => { auditSoon = null; pollAudit(); }, 1000);
}

function renderAlerts() {
  const active = [...alerts.values()].map((a) => h('li', { class: `sev-${a.severity}`, dataset: { alert: a.name } },
    h('strong', { text: a.name }),
    ` ${a.value} (threshold ${a.threshold}) · ${a.severity} · since ${clock(a.since)}`));
  $('#alerts').replaceChildren(...(active.length ? active : [h('li', { class: 'empty', text: 'No active alerts.' })]));
  const done = resolved.map((a) => h('li', {},
    h('strong', { text: a.name }), ` back to ${a.value} (threshold ${a.threshold}) at ${clock(a.at)}`));
  $('#resolved').replaceChildren(...(done.length ? done : [h('li', { class: 'empty', text: '–' })]));
}

// ---- audit -----------------------------------------------------------------------------------

async function pollAudit() {
  try {
    const response = await fetch('/api/v1/admin/audit?limit=20', bearer());
    if (!response.ok) {
      $('#audit-error').textContent = `audit: ${await errorOf(response)}`;
      return;
    }
    $('#audit-error').textContent = '';
    const page = await response.json();
    const rows = (page.entries || []).map((e) => h('tr', { dataset: { eventId: e.eventId } },
      h('td', { text: clock(e.occurredAt), title: e.occurredAt }),
      h('td', { text: e.eventType }),
      h('td', { text: e.userId, title: e.userId }),
      h('td', { text: e.source }),
      h('td', { text: e.correlationId || '' }),
      h('td', { text: e.eventId, title: e.eventId })));
    $('#audit').replaceChildren(...(rows.length ? rows
      : [h('tr', { class: 'empty' }, h('td', { colspan: '6', text: 'No audit rows yet.' }))]));
  } catch {
    $('#audit-error').textContent = 'audit: the router is unreachable';
  }
}

// ---- start -----------------------------------------------------------------------------------

async function mint(event) {
  event.preventDefault();
  fail('');
  try {
    const minted = await mintToken($('#admin-user').value.trim(), 'admin');
    $('#token').value = minted;
    start(minted);
  } catch (e) {
    fail(`Could not mint a token: ${e.message}`);
  }
}

applyTokenMode();
$('#mint-form').addEventListener('submit', mint);
$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  start($('#token').value.trim());
});
const stored = sessionStorage.getItem(STORED_TOKEN);
if (stored && describeToken(stored).ok) {
  $('#token').value = stored;
  start(stored);
}
