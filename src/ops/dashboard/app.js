// The Spillway dashboard: plain DOM, no framework, no build step. Two pages,
// chosen by the URL's hash: the overview (#/) and one operation
// (#/operations/{id}). Everything shown comes from the admin API; text is set
// with textContent, never parsed as HTML.
import { api, token, Unauthorized } from './api.js';
import { legend, lineChart } from './charts.js';

const POLL_MS = 2_000;
/** Samples kept per chart: about ten minutes at one every two seconds. */
const MAX_SAMPLES = 300;

const main = document.getElementById('main');
const history = { backlog: new Map(), drain: new Map(), trips: new Map() };
/** Operations acted on from this page, followed until they end: id → last status seen. */
const followed = new Map();
let timer;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const ago = (iso) => {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${s % 60}s`
      : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
};
const pct = (rate) => `${Math.round(rate * 100)}%`;

function remember(map, key, point) {
  const points = map.get(key) ?? [];
  points.push(point);
  if (points.length > MAX_SAMPLES) points.shift();
  map.set(key, points);
}

function askForToken(message) {
  clearTimeout(timer);
  const form = document.getElementById('token-form').content.cloneNode(true);
  main.replaceChildren(form);
  const error = document.getElementById('token-error');
  if (message && token.get()) error.textContent = message;
  document.getElementById('token').addEventListener('submit', (event) => {
    event.preventDefault();
    token.set(new FormData(event.target).get('token').trim());
    route();
  });
}

async function overview() {
  const [health, dead] = await Promise.all([
    api('/api/health'),
    api('/api/operations?deadLettered=true&limit=100'),
  ]);
  const now = Date.now();
  const routes = health.ok ? health.body.routes : [];
  for (const r of routes) {
    remember(history.backlog, r.route, { t: now, v: r.backlog });
    const windowS = (r.windowMs ?? 10_000) / 1000;
    remember(history.drain, r.route, {
      t: now,
      v: (r.signals.replay.calls * (1 - r.signals.replay.errorRate)) / windowS,
    });
    remember(history.trips, r.route, { t: now, v: r.trips });
  }
  const series = (map) => routes.map((r) => ({ name: r.route, points: map.get(r.route) ?? [] }));
  const chart = (title, map, unit) => {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'chart');
    lineChart(svg, series(map), unit);
    return h('section', { class: 'card' }, h('h2', {}, title), svg, legend(series(map)));
  };
  main.replaceChildren(
    health.ok ? routesCard(routes, health.body.totals) : h('p', { class: 'error' }, health.body.detail),
    h(
      'div',
      { class: 'grid' },
      chart('Backlog (operations waiting)', history.backlog, 'ops'),
      chart('Drain rate (replays succeeding per second)', history.drain, '/s'),
      chart('Trips (since the process started)', history.trips, 'trips'),
    ),
    followedCard(),
    deadLettersCard(dead.ok ? dead.body.operations : [], dead.ok ? dead.body.nextCursor : null),
  );
  await followUp();
}

function routesCard(routes, totals) {
  return h(
    'section',
    { class: 'card', id: 'routes' },
    h('h2', {}, `Routes — ${totals.backlog} waiting, ${totals.deadLettered} dead-lettered`),
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...[
            'Route',
            'State',
            'For',
            'Reason',
            'Trips',
            'Calls',
            'Errors',
            'Slow',
            'Latency',
            'In flight',
            'Replays',
            'Backlog',
            'Dead',
            'Replay',
          ].map((t) => h('th', {}, t)),
        ),
      ),
      h(
        'tbody',
        {},
        routes.map((r) =>
          h(
            'tr',
            { 'data-route': r.route },
            h('td', {}, r.route),
            h('td', {}, h('span', { class: `state state-${r.state}` }, r.state)),
            h('td', {}, ago(r.since)),
            h('td', {}, r.reason),
            h('td', {}, r.trips),
            h('td', {}, r.signals.calls),
            h('td', {}, pct(r.signals.errorRate)),
            h('td', {}, pct(r.signals.slowRate)),
            h('td', {}, r.signals.latencyMs === undefined ? '-' : `${r.signals.latencyMs} ms`),
            h('td', {}, `${r.signals.inFlight}/${r.signals.concurrencyLimit}`),
            h(
              'td',
              {},
              r.signals.replay.calls === 0
                ? '-'
                : `${r.signals.replay.calls} (${pct(r.signals.replay.errorRate)} failed)`,
            ),
            h('td', { class: 'backlog' }, r.backlog),
            h('td', { class: 'dead' }, r.deadLettered),
            h('td', {}, r.replay, ' ', replayButton(r)),
          ),
        ),
      ),
    ),
  );
}

function replayButton(r) {
  const next = r.replay === 'paused' ? 'running' : 'paused';
  return h(
    'button',
    {
      type: 'button',
      onclick: async () => {
        await api(`/api/routes/${encodeURIComponent(r.route)}/replay`, {
          method: 'PUT',
          body: { replay: next },
        });
        route();
      },
    },
    next === 'paused' ? 'Pause' : 'Resume',
  );
}

function deadLettersCard(operations, nextCursor) {
  return h(
    'section',
    { class: 'card', id: 'dead-letters' },
    h('h2', {}, 'Dead letters'),
    operations.length === 0
      ? h('p', { class: 'muted' }, 'None.')
      : h(
          'table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Operation', 'Route', 'Request', 'Attempts', 'Dead-lettered', 'Why', ''].map((t) =>
                h('th', {}, t),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            operations.map((op) =>
              h(
                'tr',
                { 'data-operation-id': op.id },
                h('td', {}, h('a', { class: 'mono', href: `#/operations/${op.id}` }, op.id)),
                h('td', {}, op.route),
                h('td', { class: 'mono' }, `${op.method} ${op.path}`),
                h('td', {}, op.attempts),
                h('td', {}, `${ago(op.deadLetteredDateTime)} ago`),
                h('td', {}, op.lastError ? `${op.lastError.code}: ${op.lastError.message}` : '-'),
                h(
                  'td',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'redrive', onclick: () => redrive(op) }, 'Redrive'),
                  h('button', { type: 'button', class: 'discard', onclick: () => discard(op) }, 'Discard'),
                ),
              ),
            ),
          ),
        ),
    nextCursor ? h('p', { class: 'muted' }, 'More dead letters: spillway ops list --dead-lettered') : null,
  );
}

function followedCard() {
  if (followed.size === 0) return h('div');
  return h(
    'section',
    { class: 'card', id: 'followed' },
    h('h2', {}, 'Acted on from this page'),
    h(
      'table',
      {},
      h(
        'tbody',
        {},
        [...followed].map(([id, f]) =>
          h(
            'tr',
            { 'data-followed-id': id, 'data-status': f.status },
            h('td', {}, h('a', { class: 'mono', href: `#/operations/${id}` }, id)),
            h('td', {}, f.action),
            h('td', { class: `status-${f.status}` }, f.status),
          ),
        ),
      ),
    ),
  );
}

/** Re-reads the operations acted on until they end, so a redrive is seen to succeed (or fail again). */
async function followUp() {
  for (const [id, f] of followed) {
    if (['Succeeded', 'Failed', 'Canceled'].includes(f.status) && f.action !== 'redriven') continue;
    const res = await api(`/api/operations/${encodeURIComponent(id)}`);
    if (!res.ok) continue;
    if (f.status !== res.body.status) {
      f.status = res.body.status;
      const row = document.querySelector(`[data-followed-id="${CSS.escape(id)}"]`);
      if (row) {
        row.dataset.status = f.status;
        row.lastChild.textContent = f.status;
        row.lastChild.className = `status-${f.status}`;
      }
    }
    if (['Succeeded', 'Failed', 'Canceled'].includes(f.status)) f.action = `${f.action}, ended`;
  }
}

async function redrive(op) {
  let res = await api(`/api/operations/${encodeURIComponent(op.id)}/redrive`, { method: 'POST', body: {} });
  if (res.body.code === 'redrive-needs-confirmation') {
    if (!confirm(`${res.body.detail}\n\nRedrive it anyway?`)) return;
    res = await api(`/api/operations/${encodeURIComponent(op.id)}/redrive`, {
      method: 'POST',
      body: { includeOutcomeUnknown: true },
    });
  }
  if (!res.ok) return alert(res.body.detail);
  followed.set(op.id, { action: 'redriven', status: res.body.status });
  route();
}

async function discard(op) {
  if (!confirm(`Discard ${op.id}? It stays Failed and leaves the dead-letter list.`)) return;
  const res = await api(`/api/operations/${encodeURIComponent(op.id)}/discard`, { method: 'POST' });
  if (!res.ok) return alert(res.body.detail);
  followed.set(op.id, { action: 'discarded', status: res.body.status });
  route();
}

async function operationPage(id) {
  const res = await api(`/api/operations/${encodeURIComponent(id)}`);
  if (!res.ok) {
    main.replaceChildren(h('p', { class: 'error' }, res.body.detail), h('a', { href: '#/' }, 'Back'));
    return;
  }
  const op = res.body;
  const field = (name, value) =>
    value === undefined || value === null ? null : h('tr', {}, h('th', {}, name), h('td', {}, value));
  main.replaceChildren(
    h(
      'section',
      { class: 'card', id: 'operation', 'data-status': op.status },
      h(
        'h2',
        {},
        h('span', { class: 'mono' }, op.id),
        ' ',
        h('span', { class: `status-${op.status}` }, op.status),
      ),
      h(
        'table',
        {},
        h(
          'tbody',
          {},
          field('Request', `${op.method} ${op.path}${op.query ? `?${op.query}` : ''}`),
          field('Route', op.route),
          field('Attempts', op.attempts),
          field('Went async', op.failoverReason),
          field('Created', op.createdDateTime),
          field('Last action', op.lastActionDateTime),
          field('Next attempt', op.nextAttemptDateTime),
          field('Last error', op.lastError ? `${op.lastError.code}: ${op.lastError.message}` : undefined),
          field('Dead-lettered', op.deadLettered ? op.deadLetteredDateTime : undefined),
          field('Redriven', op.redrivenDateTime),
          field('Discarded', op.discardedDateTime),
          field('Result', op.resultStatus),
        ),
      ),
      op.deadLettered
        ? h(
            'p',
            { class: 'actions' },
            h('button', { type: 'button', class: 'redrive', onclick: () => redrive(op) }, 'Redrive'),
            h('button', { type: 'button', class: 'discard', onclick: () => discard(op) }, 'Discard'),
          )
        : null,
    ),
    h(
      'section',
      { class: 'card', id: 'attempts' },
      h('h2', {}, 'Attempts'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h('tr', {}, ...['#', 'Started', 'Took', 'Outcome', 'Upstream', 'Error'].map((t) => h('th', {}, t))),
        ),
        h(
          'tbody',
          {},
          op.attemptHistory.map((a) =>
            h(
              'tr',
              { 'data-attempt': a.attempt },
              h('td', {}, a.attempt),
              h('td', {}, a.startedDateTime),
              h('td', {}, `${a.durationMs} ms`),
              h('td', {}, a.outcome),
              h('td', {}, a.upstreamStatus ?? '-'),
              h('td', {}, a.error ?? '-'),
            ),
          ),
        ),
      ),
    ),
    h(
      'section',
      { class: 'card', id: 'events' },
      h('h2', {}, 'Events'),
      h(
        'table',
        {},
        h('thead', {}, h('tr', {}, ...['#', 'At', 'Status', 'Attempts'].map((t) => h('th', {}, t)))),
        h(
          'tbody',
          {},
          op.events.map((e) =>
            h(
              'tr',
              {},
              h('td', {}, e.seq),
              h('td', {}, e.dateTime),
              h('td', {}, e.status),
              h('td', {}, e.attempts),
            ),
          ),
        ),
      ),
    ),
    h('a', { href: '#/' }, '← All routes'),
  );
}

async function route() {
  clearTimeout(timer);
  const match = /^#\/operations\/(.+)$/.exec(location.hash);
  try {
    if (match) await operationPage(decodeURIComponent(match[1]));
    else await overview();
    document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.getElementById('forget-token').hidden = !token.get();
  } catch (error) {
    if (error instanceof Unauthorized) return askForToken(error.message);
    document.getElementById('updated').textContent = `cannot reach the admin API: ${error.message}`;
  }
  timer = setTimeout(route, POLL_MS);
}

document.getElementById('forget-token').addEventListener('click', () => {
  token.forget();
  askForToken();
});
window.addEventListener('hashchange', route);
route();
