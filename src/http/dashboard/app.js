// The dashboard: jobs with live progress, starting work, and the broker for admins. It reads
// state over the HTTP API and follows changes over STOMP (stomp.js), so a bar moves as chunks
// finish and catches up after a lost connection without going back.

import { ChildJobs, renderExtraction } from './extraction.js';
import { Stomp } from './stomp.js';

const $ = (selector, root = document) => root.querySelector(selector);
const STATUS_WORDS = {
  pending: 'queued',
  waiting: 'waiting for its child jobs',
  processing: 'running',
  paused: 'paused',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
};
const FINISHED = new Set(['completed', 'failed', 'cancelled']);

const state = {
  credentials: null, // {login, passcode}
  admin: false,
  jobs: new Map(), // id -> job (as GET /api/jobs/{id}), with `seq`
  watched: new Map(), // id -> subscription id
  timeline: null, // {id, events: [], sub}
  stomp: null,
  rates: { messages: [], jobs: [], last: null },
  shownResult: null, // the result object on the job's page, drawn once
  children: null, // ChildJobs: the job's page's child jobs (an extract job's OCR)
};

// --- HTTP ------------------------------------------------------------------------------------

/** Credentials for the API, and the header that keeps the browser's own login dialog away. */
function authHeader(credentials = state.credentials) {
  const scripted = { 'X-Requested-With': 'stompede-dashboard' };
  if (!credentials) return scripted;
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${credentials.login}:${credentials.passcode}`)));
  return { ...scripted, Authorization: `Basic ${basic}` };
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeader(), ...(options.headers ?? {}) } });
  const type = response.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(body?.detail ?? `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function say(text, kind = 'info') {
  const line = $('#notice');
  line.textContent = text;
  line.dataset.kind = kind;
}

// --- Login -----------------------------------------------------------------------------------

async function tryLogin(credentials) {
  const response = await fetch('/api/jobs?limit=1', { headers: authHeader(credentials) });
  return response.ok;
}

async function start() {
  const saved = sessionStorage.getItem('stompede-login');
  if (saved && (await tryLogin(JSON.parse(saved)))) return enter(JSON.parse(saved));
  // Open mode takes any name: the page uses one name for STOMP and HTTP alike.
  const guest = { login: localStorage.getItem('stompede-guest') ?? `guest-${Math.random().toString(36).slice(2, 8)}`, passcode: '' };
  const open = await fetch('/api/jobs?limit=1', { headers: authHeader(null) });
  if (open.ok && (await tryLogin(guest))) {
    localStorage.setItem('stompede-guest', guest.login);
    return enter(guest);
  }
  $('#login').hidden = false;
  $('#login-form').addEventListener('submit', async event => {
    event.preventDefault();
    const credentials = { login: $('#login-user').value.trim(), passcode: $('#login-password').value };
    if (await tryLogin(credentials)) {
      sessionStorage.setItem('stompede-login', JSON.stringify(credentials));
      $('#login').hidden = true;
      enter(credentials);
    } else {
      $('#login-error').textContent = 'Wrong user name or password.';
    }
  });
}

async function enter(credentials) {
  state.credentials = credentials;
  $('#who').textContent = credentials.login;
  $('#main').hidden = false;
  try {
    await api('/api/sessions');
    state.admin = true;
  } catch {
    state.admin = false;
  }
  $('#broker').hidden = !state.admin;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  state.stomp = new Stomp(url, credentials, {
    onConnect: connected,
    onDisconnect: () => setLink(false),
    onError: message => say(`The broker said: ${message}`, 'error'),
  });
  window.stompede = { stomp: state.stomp, state };
  state.stomp.subscribe('/user/queue/jobs', frame => discovered(JSON.parse(frame.body)));
  if (state.admin) state.stomp.subscribe('/topic/jobs/**', frame => discovered(JSON.parse(frame.body)));
  state.stomp.subscribe('/topic/stats', frame => stats(JSON.parse(frame.body)));
  wireForms();
  window.addEventListener('hashchange', route);
  setInterval(refreshBroker, 2000);
}

function setLink(up) {
  const link = $('#link');
  link.textContent = up ? 'live' : 'reconnecting…';
  link.dataset.up = String(up);
}

async function connected() {
  setLink(true);
  await loadJobs();
  route();
}

// --- Jobs ------------------------------------------------------------------------------------

async function loadJobs() {
  const query = new URLSearchParams({ limit: '200' });
  const type = $('#filter-type').value;
  const status = $('#filter-status').value;
  if (type) query.set('type', type);
  if (status) query.set('status', status);
  const page = await api(`/api/jobs?${query}`);
  const shown = new Set();
  for (const job of page.jobs) {
    shown.add(job.id);
    upsert(job);
  }
  for (const id of [...state.jobs.keys()]) {
    if (!shown.has(id)) forget(id);
  }
  render();
}

/** A job as the list knows it, merged only when it is newer (a bar never goes back). */
function upsert(job) {
  const known = state.jobs.get(job.id);
  if (known && known.seq >= job.seq) return;
  state.jobs.set(job.id, job);
  watch(job);
}

function forget(id) {
  state.jobs.delete(id);
  const sub = state.watched.get(id);
  if (sub) state.stomp.unsubscribe(sub);
  state.watched.delete(id);
}

/** Follows an unfinished job's topic from the last event seen. */
function watch(job) {
  if (FINISHED.has(job.status) || state.watched.has(job.id)) return;
  const sub = state.stomp.subscribe(
    `/topic/jobs/${job.id}`,
    frame => event(JSON.parse(frame.body), frame.headers),
    () => ({ 'since-seq': String(state.jobs.get(job.id)?.seq ?? 0) }),
  );
  state.watched.set(job.id, sub);
}

async function discovered(ev) {
  if (!ev.jobId || state.jobs.has(ev.jobId)) return event(ev, {});
  try {
    upsert(await api(`/api/jobs/${ev.jobId}`));
    render();
  } catch {
    /* not ours to see */
  }
}

/** Applies one job event to its row. */
function event(ev, headers) {
  if (headers.snapshot === 'true') return;
  // The job's page has a subscription of its own, replayed from its first event; taking the
  // row's events there too would skip the replay's earlier ones.
  const job = state.jobs.get(ev.jobId);
  if (!job || ev.seq <= job.seq) return;
  job.seq = ev.seq;
  job.status = ev.status ?? job.status;
  const p = job.progress ?? (job.progress = {});
  if (ev.chunkCount !== undefined) p.chunkCount = ev.chunkCount;
  if (ev.event === 'CHUNK_COMPLETED') p.chunksCompleted = Math.max(p.chunksCompleted ?? 0, ev.chunkIndex + 1);
  if (ev.event === 'PROGRESS_UPDATE') {
    p.percentage = ev.percentage;
    p.chunksCompleted = Math.max(p.chunksCompleted ?? 0, ev.chunksCompleted ?? 0);
    p.estimatedTimeRemainingMs = ev.estimatedTimeRemainingMs;
    p.step = ev.step;
  }
  if (ev.event === 'JOB_COMPLETED') {
    p.percentage = 100;
    job.result = ev.result;
  }
  if (ev.event === 'JOB_FAILED') job.error = { code: ev.code, message: ev.message };
  if (FINISHED.has(job.status)) {
    const sub = state.watched.get(job.id);
    if (sub) state.stomp.unsubscribe(sub);
    state.watched.delete(job.id);
  }
  renderRow(job);
  if (state.timeline?.id === job.id) renderResult(job);
}

function percentOf(job) {
  const p = job.progress ?? {};
  if (job.status === 'completed') return 100;
  if (p.chunkCount) return Math.round(((p.chunksCompleted ?? 0) * 100) / p.chunkCount);
  return Math.round(p.percentage ?? 0);
}

function eta(ms) {
  if (ms === undefined || ms === null) return '';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

const ACTIONS = {
  Pause: job => ['pending', 'processing'].includes(job.status),
  Resume: job => job.status === 'paused',
  Cancel: job => !FINISHED.has(job.status),
  Retry: job => ['failed', 'cancelled'].includes(job.status),
  Delete: job => FINISHED.has(job.status),
};

function render() {
  const body = $('#jobs-body');
  const ids = [...state.jobs.keys()].sort().reverse();
  body.replaceChildren(...ids.map(id => rowFor(state.jobs.get(id))));
  $('#jobs-empty').hidden = ids.length > 0;
}

function rowFor(job) {
  const row = document.createElement('tr');
  row.dataset.jobId = job.id;
  row.innerHTML = `
    <td><a href="#/jobs/${job.id}" class="id"></a></td>
    <td class="type"></td>
    <td class="status"></td>
    <td class="progress"><div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100"><span></span></div><small class="chunks"></small></td>
    <td class="eta"></td>
    <td class="error"></td>
    <td class="actions"></td>`;
  fillRow(row, job);
  return row;
}

function renderRow(job) {
  const row = document.querySelector(`tr[data-job-id="${job.id}"]`);
  if (row) fillRow(row, job);
  else render();
}

function fillRow(row, job) {
  const percent = percentOf(job);
  $('.id', row).textContent = job.id.slice(-8);
  $('.id', row).title = job.id;
  $('.type', row).textContent = job.type;
  $('.status', row).textContent = STATUS_WORDS[job.status] ?? job.status;
  $('.status', row).dataset.status = job.status;
  const bar = $('.bar', row);
  bar.setAttribute('aria-valuenow', String(percent));
  bar.setAttribute('aria-label', `job ${job.id.slice(-8)} ${percent}%`);
  $('span', bar).style.width = `${percent}%`;
  const p = job.progress ?? {};
  $('.chunks', row).textContent = p.chunkCount ? `${p.chunksCompleted ?? 0}/${p.chunkCount} chunks` : '';
  $('.eta', row).textContent = FINISHED.has(job.status) ? '' : eta(p.estimatedTimeRemainingMs);
  $('.error', row).textContent = job.error ? `${job.error.code}: ${job.error.message}` : '';
  const actions = $('.actions', row);
  actions.replaceChildren(
    ...Object.entries(ACTIONS)
      .filter(([, shown]) => shown(job))
      .map(([name]) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = name;
        button.addEventListener('click', () => control(job.id, name.toLowerCase()));
        return button;
      }),
  );
}

async function control(id, action) {
  try {
    if (action === 'delete') {
      await api(`/api/jobs/${id}`, { method: 'DELETE' });
      forget(id);
      render();
      say(`Job ${id.slice(-8)} deleted.`);
    } else {
      const job = await api(`/api/jobs/${id}/${action}`, { method: 'POST' });
      upsert(job);
      const known = state.jobs.get(id);
      if (known) watch(known);
      renderRow(state.jobs.get(id));
    }
  } catch (error) {
    say(`Could not ${action} job ${id.slice(-8)}: ${error.message}`, 'error');
  }
}

// --- One job's page --------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/jobs\/([0-9A-Z]+)$/);
  if (state.timeline && state.timeline.id !== match?.[1]) {
    state.stomp.unsubscribe(state.timeline.sub);
    state.timeline = null;
  }
  $('#job').hidden = !match;
  if (!match || state.timeline) return;
  const id = match[1];
  state.timeline = { id, events: [], lastSeq: 0 };
  $('#job-title').textContent = `Job ${id}`;
  $('#timeline').replaceChildren();
  $('#result').replaceChildren();
  state.shownResult = null;
  state.children ??= new ChildJobs($('#child-jobs'));
  state.children.clear();
  // Every event from the first; after a reconnection, from the last one shown.
  state.timeline.sub = state.stomp.subscribe(
    `/topic/jobs/${id}`,
    frame => timelineEvent(JSON.parse(frame.body)),
    () => ({ 'since-seq': String(state.timeline?.lastSeq ?? 0) }),
  );
  const job = state.jobs.get(id);
  if (job) renderResult(job);
}

function timelineEvent(ev) {
  const t = state.timeline;
  if (!t) return;
  // A child's events come on its parent's topic too, with the child's own id and seq.
  if (ev.parentJobId === t.id && ev.jobId !== t.id) return state.children.event(ev);
  if (ev.jobId !== t.id || ev.seq <= t.lastSeq) return;
  t.lastSeq = ev.seq;
  const item = document.createElement('li');
  item.dataset.seq = String(ev.seq);
  const time = new Date(ev.timestamp).toLocaleTimeString();
  const detail = ev.event === 'CHUNK_COMPLETED' ? ` ${ev.chunkIndex + 1}/${ev.chunkCount}` : ev.event === 'PROGRESS_UPDATE' ? ` ${ev.percentage}%` : '';
  item.textContent = `${time}  #${ev.seq}  ${ev.event}${detail}`;
  $('#timeline').append(item);
  if (ev.event === 'JOB_WAITING') followChildren(ev.children ?? []);
  if (FINISHED.has(ev.status) && ev.event.startsWith('JOB_')) {
    const job = state.jobs.get(ev.jobId) ?? { id: ev.jobId, type: ev.jobType, status: ev.status };
    if (ev.result) job.result = ev.result;
    renderResult(job);
  }
}

/** The children a job waits for, at their state now (a replay holds the parent's events only). */
async function followChildren(children) {
  for (const { jobId, jobType } of children) {
    state.children.add(jobId, jobType);
    try {
      state.children.add(jobId, jobType, await api(`/api/jobs/${jobId}`));
    } catch {
      /* its events still come on the parent's topic */
    }
  }
}

async function download(id, name) {
  const response = await fetch(`/api/jobs/${id}/files/${encodeURIComponent(name)}`, { headers: authHeader() });
  if (!response.ok) return say(`Could not download ${name}: ${response.status}`, 'error');
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function renderResult(job) {
  const box = $('#result');
  const result = job.result;
  if (!result) {
    state.shownResult = null;
    return box.replaceChildren();
  }
  // Drawn once: later events of a finished job must not reset what the reader chose.
  if (state.shownResult === result) return;
  state.shownResult = result;
  const parts = [];
  const counts = document.createElement('dl');
  counts.className = 'counts';
  for (const [key, value] of Object.entries(result)) {
    if (typeof value === 'number' || typeof value === 'string') {
      counts.insertAdjacentHTML('beforeend', '<dt></dt><dd></dd>');
      counts.lastElementChild.previousElementSibling.textContent = key;
      counts.lastElementChild.textContent = String(value);
    }
  }
  parts.push(counts);
  if (result.files && typeof result.files === 'object') {
    const list = document.createElement('ul');
    list.className = 'files';
    for (const name of Object.keys(result.files)) {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `Download ${name}`;
      button.addEventListener('click', () => download(job.id, name));
      item.append(button);
      list.append(item);
    }
    parts.push(list);
  }
  const mismatches = result.samples?.mismatches;
  if (mismatches?.length) {
    const pre = document.createElement('pre');
    pre.className = 'sample';
    pre.textContent = ['Mismatches (sample):', ...mismatches].join('\n');
    parts.push(pre);
  }
  if (job.type === 'extract') {
    parts.push(renderExtraction(result));
    box.replaceChildren(...parts);
    return;
  }
  if (Array.isArray(result.pages)) {
    const pages = document.createElement('div');
    pages.className = 'pages';
    for (const page of result.pages) {
      const figure = document.createElement('figure');
      figure.className = 'page';
      figure.dataset.page = String(page.page);
      const image = document.createElement('img');
      image.alt = `page ${page.page} of the input`;
      const text = document.createElement('pre');
      text.className = 'page-text';
      const caption = document.createElement('figcaption');
      caption.textContent = `Page ${page.page}: ${page.source === 'textLayer' ? 'text layer' : 'recognised'}, confidence ${page.confidence ?? '—'}`;
      figure.append(caption, image, text);
      pages.append(figure);
    }
    parts.push(pages);
    box.replaceChildren(...parts);
    showPages(job, pages);
    return;
  }
  box.replaceChildren(...parts);
}

/** Each OCR page's picture beside its text (text.txt holds the pages, a form feed between). */
async function showPages(job, pages) {
  try {
    if (job.result.files?.['text.txt']) {
      const response = await fetch(`/api/jobs/${job.id}/files/text.txt`, { headers: authHeader() });
      const texts = (await response.text()).split('\f');
      pages.querySelectorAll('.page-text').forEach((pre, i) => {
        pre.textContent = texts[i] ?? '';
      });
    }
    for (const figure of pages.querySelectorAll('figure.page')) {
      const response = await fetch(`/api/jobs/${job.id}/pages/${figure.dataset.page}`, { headers: authHeader() });
      if (response.ok) $('img', figure).src = URL.createObjectURL(await response.blob());
    }
  } catch (error) {
    say(`Could not show the pages: ${error.message}`, 'error');
  }
}

// --- Starting work ---------------------------------------------------------------------------

/** The column names in the first line of a CSV file. */
async function headerOf(file) {
  const head = await file.slice(0, 64 * 1024).text();
  const line = head.split(/\r?\n/)[0].replace(/^\uFEFF/, '');
  const delimiter = [';', '\t', '|', ','].reduce((best, d) => (line.split(d).length > line.split(best).length ? d : best), ',');
  return line.split(delimiter).map(c => c.trim().replace(/^"|"$/g, ''));
}

function fillKeys(input, select) {
  input.addEventListener('change', async () => {
    const file = input.files[0];
    select.replaceChildren();
    if (!file) return;
    for (const column of await headerOf(file)) {
      const option = document.createElement('option');
      option.value = option.textContent = column;
      select.append(option);
    }
  });
}

async function submitted(promise, what) {
  try {
    const accepted = await promise;
    say(`${what} started: job ${accepted.id.slice(-8)}.`);
    upsert(await api(`/api/jobs/${accepted.id}`));
    render();
    location.hash = `#/jobs/${accepted.id}`;
  } catch (error) {
    say(`${what} refused: ${error.message}`, 'error');
  }
}

/** An upload that started (or found) an extract job: follow that job on its page. */
async function extracted(promise) {
  try {
    const upload = await promise;
    const job = upload.job;
    say(
      job.reused
        ? `${upload.name} was already extracted: showing the earlier result (job ${job.id.slice(-8)}).`
        : `Extraction started: job ${job.id.slice(-8)}.`,
    );
    upsert(await api(`/api/jobs/${job.id}`));
    render();
    location.hash = `#/jobs/${job.id}`;
  } catch (error) {
    say(`Extraction refused: ${error.message}`, 'error');
  }
}

function wireForms() {
  fillKeys($('#bo-file'), $('#bo-key'));
  fillKeys($('#partner-file'), $('#partner-key'));
  $('#reconcile-form').addEventListener('submit', event => {
    event.preventDefault();
    const form = new FormData();
    form.append('boFile', $('#bo-file').files[0]);
    form.append('partnerFile', $('#partner-file').files[0]);
    form.append('boKey', $('#bo-key').value);
    form.append('partnerKey', $('#partner-key').value);
    submitted(api('/api/reconciliations', { method: 'POST', body: form }), 'Reconciliation');
  });
  $('#demo-form').addEventListener('submit', event => {
    event.preventDefault();
    const params = { chunks: Number($('#demo-chunks').value), chunkDelayMs: Number($('#demo-delay').value) };
    submitted(
      api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'demo', params }) }),
      'Demo job',
    );
  });
  $('#ocr-form').addEventListener('submit', async event => {
    event.preventDefault();
    const file = $('#ocr-file').files[0];
    const form = new FormData();
    form.append('file', file);
    try {
      const upload = await api('/api/uploads', { method: 'POST', body: form });
      const params = { upload: upload.id, languages: $('#ocr-languages').value || undefined };
      submitted(
        api('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'ocr', params }) }),
        'OCR',
      );
    } catch (error) {
      say(`Upload refused: ${error.message}`, 'error');
    }
  });
  $('#extract-form').addEventListener('submit', event => {
    event.preventDefault();
    const profiles = [...document.querySelectorAll('#extract-form input[name=profile]:checked')].map(box => box.value);
    if (!profiles.length) return say('Choose at least one profile to extract with.', 'error');
    const form = new FormData();
    form.append('file', $('#extract-file').files[0]);
    extracted(api(`/api/uploads?autoExtract=${encodeURIComponent(profiles.join(','))}`, { method: 'POST', body: form }));
  });
  for (const id of ['#filter-type', '#filter-status']) $(id).addEventListener('change', loadJobs);
  $('#logout').addEventListener('click', () => {
    sessionStorage.removeItem('stompede-login');
    state.stomp.close();
    location.reload();
  });
}

// --- The broker (admins) and the charts ------------------------------------------------------

function stats(figures) {
  state.lastStats = figures;
}

function pushRate(series, value) {
  series.push(value);
  if (series.length > 150) series.shift(); // five minutes at one sample every 2 s
}

function sparkline(svg, series, label) {
  const max = Math.max(1, ...series);
  const points = series.map((v, i) => `${(i * 300) / 149},${60 - (v * 56) / max}`).join(' ');
  svg.innerHTML = `<polyline fill="none" stroke="currentColor" stroke-width="2" points="${points}"></polyline>`;
  svg.setAttribute('aria-label', `${label}: ${series.at(-1)?.toFixed(1) ?? 0} per second`);
}

async function refreshBroker() {
  const done = state.lastStats?.byStatus?.completed ?? 0;
  let published = null;
  if (state.admin) {
    try {
      const [destinations, sessions] = await Promise.all([api('/api/destinations'), api('/api/sessions')]);
      published = destinations.counters?.messages_published ?? null;
      $('#sessions-count').textContent = String(destinations.sessions);
      const byTransport = {};
      for (const s of sessions.sessions ?? sessions) byTransport[s.transport ?? 'stomp'] = (byTransport[s.transport ?? 'stomp'] ?? 0) + 1;
      $('#sessions-by-transport').textContent = Object.entries(byTransport).map(([t, n]) => `${t}: ${n}`).join(', ');
      $('#queues-body').replaceChildren(
        ...destinations.queues.map(q => {
          const row = document.createElement('tr');
          for (const value of [q.name, q.depth, q.consumers, q.unacked]) {
            const cell = document.createElement('td');
            cell.textContent = String(value ?? '');
            row.append(cell);
          }
          return row;
        }),
      );
    } catch {
      /* the next refresh tries again */
    }
  }
  const now = Date.now();
  const last = state.rates.last;
  if (last) {
    const seconds = (now - last.at) / 1000;
    if (published !== null && last.published !== null) pushRate(state.rates.messages, Math.max(0, published - last.published) / seconds);
    pushRate(state.rates.jobs, Math.max(0, done - last.done) / seconds);
    if (state.admin) sparkline($('#chart-messages'), state.rates.messages, 'messages');
    sparkline($('#chart-jobs'), state.rates.jobs, 'jobs completed');
  }
  state.rates.last = { at: now, published, done };
}

start();
