// The status page's script: sign-in with an API token (kept in sessionStorage
// only), live updates from GET /api/v1/events, the run and job pages, and the
// actions a write token may take. It uses the public API, nothing else.
import { escapeHtml, formatAge, formatDuration, formatInZone, progressOf, renderJobRow, statusBadge } from './render.js';

const TOKEN_KEY = 'db-refresher-token';
const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? '',
  me: undefined, // {name, readOnly, actions}
  jobs: new Map(),
  stream: undefined, // AbortController of the live stream
  retryMs: 1000,
  view: { kind: 'jobs' },
};

// ── API ────────────────────────────────────────────────────────────────────

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${state.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ── session ────────────────────────────────────────────────────────────────

function renderSession(message = '') {
  const box = $('#session');
  if (!state.me) {
    box.innerHTML = `<form id="signin" class="signin">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" required minlength="16" size="24">
<button type="submit">Sign in</button>
${message ? `<span class="error-text" role="alert">${escapeHtml(message)}</span>` : '<span class="muted small">kept in this tab only</span>'}
</form>`;
    $('#signin').addEventListener('submit', (event) => {
      event.preventDefault();
      signIn($('#token').value.trim());
    });
    return;
  }
  box.innerHTML = `<span>Signed in as <strong>${escapeHtml(state.me.name)}</strong>${state.me.readOnly ? ' <span class="badge badge-readonly">read-only</span>' : ''}</span>
<button type="button" id="signout" class="secondary">Forget token</button>`;
  $('#signout').addEventListener('click', signOut);
}

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api('GET', '/api/v1/whoami');
  } catch (error) {
    state.token = '';
    state.me = undefined;
    sessionStorage.removeItem(TOKEN_KEY);
    renderSession(error.status === 401 || error.status === 403 ? 'That token is not valid here.' : error.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  renderSession();
  await resync();
  connect();
  route();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = '';
  state.me = undefined;
  state.stream?.abort();
  state.stream = undefined;
  setLive('');
  renderSession();
  for (const row of document.querySelectorAll('#jobs td.actions')) row.textContent = '';
  route();
}

// ── jobs table ─────────────────────────────────────────────────────────────

/** Reads every job again (after sign-in and each reconnect, when events may have been missed). */
async function resync() {
  let cursor = '';
  const seen = [];
  do {
    const page = await api('GET', `/api/v1/jobs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const job of page.jobs) {
      seen.push(job);
      state.jobs.set(job.name, job);
    }
    cursor = page.nextCursor ?? '';
  } while (cursor);
  const body = $('#jobs tbody');
  body.innerHTML = seen.map((job) => renderJobRow(job, Date.now())).join('\n');
  for (const job of seen) addActions(job);
}

function updateJob(job) {
  state.jobs.set(job.name, job);
  const old = document.getElementById(`job-${job.name}`);
  if (!old) return;
  const focused = document.activeElement && old.contains(document.activeElement) ? document.activeElement.dataset.action : undefined;
  old.outerHTML = renderJobRow(job, Date.now());
  addActions(job);
  // Keep the keyboard where it was when the row is redrawn.
  if (focused) document.querySelector(`#job-${CSS.escape(job.name)} [data-action="${focused}"]`)?.focus();
  if (state.view.kind === 'job' && state.view.name === job.name) showJob(job.name);
}

function button(action, label, extra = '') {
  return `<button type="button" data-action="${action}" ${extra}>${escapeHtml(label)}</button>`;
}

function actionsFor(job) {
  if (!state.me || state.me.readOnly) return '';
  const parts = [];
  if (job.current) parts.push(button('cancel', 'Cancel', `data-run="${escapeHtml(job.current.id)}" class="danger"`));
  else parts.push(button('refresh', 'Refresh now'));
  parts.push(job.suspended ? button('resume', 'Resume', 'class="secondary"') : button('suspend', 'Suspend', 'class="secondary"'));
  if (state.me.actions?.rollback && !job.current) parts.push(button('rollback', 'Roll back', 'class="secondary"'));
  return parts.join(' ');
}

function addActions(job) {
  const cell = document.querySelector(`#job-${CSS.escape(job.name)} td.actions`);
  if (cell) cell.innerHTML = actionsFor(job);
}

// ── actions ────────────────────────────────────────────────────────────────

/** Asks for a reason in a dialog; resolves with it (possibly empty), or undefined when cancelled. */
function askReason(title, text, confirmLabel, danger = false) {
  return new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.setAttribute('aria-labelledby', 'dialog-title');
    dialog.innerHTML = `<form method="dialog">
<h2 id="dialog-title">${escapeHtml(title)}</h2>
<p>${escapeHtml(text)}</p>
<label for="reason">Reason <span class="muted">(recorded with the run)</span></label>
<textarea id="reason" name="reason" rows="2" maxlength="500"></textarea>
<div class="buttons"><button value="cancel" type="submit" class="secondary" formnovalidate>Back</button>
<button value="ok" type="submit" id="dialog-ok" ${danger ? 'class="danger"' : ''}>${escapeHtml(confirmLabel)}</button></div>
</form>`;
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      const reason = $('#reason', dialog).value.trim();
      const ok = dialog.returnValue === 'ok';
      dialog.remove();
      resolve(ok ? reason : undefined);
    });
    dialog.showModal();
    $('#reason', dialog).focus();
  });
}

function notice(html, kind = 'info') {
  const box = $('#notice');
  box.innerHTML = `<p class="notice notice-${kind}">${html}</p>`;
}

async function act(action, jobName, runId) {
  const job = state.jobs.get(jobName);
  try {
    if (action === 'refresh') {
      const reason = await askReason(`Refresh ${jobName} now?`, `The copy is torn down and cloned again from ${job?.targetKind ?? 'the source'}.`, 'Start refresh');
      if (reason === undefined) return;
      const res = await api('POST', `/api/v1/jobs/${encodeURIComponent(jobName)}/runs`, reason ? { reason } : {});
      notice(`Run <a href="#/runs/${escapeHtml(res.run.id)}">${escapeHtml(res.run.id)}</a> of ${escapeHtml(jobName)} is ${escapeHtml(res.run.status)}.`);
    } else if (action === 'cancel') {
      const reason = await askReason(`Cancel the run of ${jobName}?`, 'It stops at the next safe point.', 'Cancel run', true);
      if (reason === undefined) return;
      const res = await api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/cancel`, reason ? { reason } : {});
      notice(escapeHtml(res.message), 'warning');
    } else if (action === 'suspend' || action === 'resume') {
      const verb = action === 'suspend' ? 'Suspend' : 'Resume';
      const text = action === 'suspend' ? 'Scheduled runs are skipped until the job is resumed.' : 'Scheduled runs happen again.';
      const reason = await askReason(`${verb} ${jobName}?`, text, verb);
      if (reason === undefined) return;
      await api('POST', `/api/v1/jobs/${encodeURIComponent(jobName)}/${action}`, reason ? { reason } : {});
      notice(`${escapeHtml(jobName)} is ${action === 'suspend' ? 'suspended' : 'resumed'}.`);
    } else if (action === 'rollback') {
      const reason = await askReason(`Roll ${jobName} back?`, 'The previous copy takes the place of the current one.', 'Roll back', true);
      if (reason === undefined) return;
      const res = await api('POST', state.me.actions.rollback.replace('{job}', encodeURIComponent(jobName)), reason ? { reason } : {});
      notice(escapeHtml(res.message ?? `Rollback of ${jobName} started.`));
    }
  } catch (error) {
    notice(`${escapeHtml(action)} ${escapeHtml(jobName)}: ${escapeHtml(error.message)}`, 'error');
  }
}

document.addEventListener('click', (event) => {
  const target = event.target.closest('button[data-action]');
  if (!target) return;
  const row = target.closest('[data-job]');
  act(target.dataset.action, row?.dataset.job ?? target.dataset.job, target.dataset.run);
});

// ── live stream ────────────────────────────────────────────────────────────

function setLive(text, kind = '') {
  const box = $('#live');
  box.textContent = text;
  box.className = `live ${kind}`;
}

/** Reads GET /api/v1/events with the token (EventSource cannot send one), and reconnects when it drops. */
async function connect() {
  state.stream?.abort();
  const controller = new AbortController();
  state.stream = controller;
  try {
    const res = await fetch('/api/v1/events', { headers: { authorization: `Bearer ${state.token}` }, signal: controller.signal });
    if (res.status === 401 || res.status === 403) {
      signOut();
      renderSession('The token is no longer accepted.');
      return;
    }
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    setLive('live', 'live-on');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let first = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const type = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (type && data) onEvent(type, JSON.parse(data), first);
        if (type === 'hello') {
          if (!first) await resync();
          first = false;
          state.retryMs = 1000;
        }
        cut = buffer.indexOf('\n\n');
      }
    }
    throw new Error('the stream ended');
  } catch (error) {
    if (controller.signal.aborted) return;
    setLive(`reconnecting… (${error.message})`, 'live-off');
    const wait = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, 15_000);
    setTimeout(async () => {
      if (state.stream !== controller) return;
      try {
        await resync();
      } catch {
        // The next attempt says what is wrong.
      }
      connect();
    }, wait);
  }
}

function onEvent(type, data) {
  if (type === 'job') updateJob(data);
  if (type === 'run' && state.view.kind === 'run' && state.view.id === data.id) onRunUpdate(data);
}

// ── run and job pages ──────────────────────────────────────────────────────

function showView(kind) {
  $('#jobs-view').hidden = kind !== 'jobs';
  $('#detail-view').hidden = kind === 'jobs';
}

async function route() {
  const hash = location.hash;
  const run = /^#\/runs\/([0-9A-Za-z-]+)$/.exec(hash);
  const job = /^#\/jobs\/([a-z0-9-]+)$/.exec(hash);
  if ((run || job) && !state.me) {
    showView('detail');
    $('#detail-view').innerHTML = '<p><a href="#/">← Jobs</a></p><p>Sign in with an API token to see runs.</p>';
    return;
  }
  if (run) {
    state.view = { kind: 'run', id: run[1] };
    showView('run');
    await showRun(run[1]);
  } else if (job) {
    state.view = { kind: 'job', name: job[1] };
    showView('job');
    await showJob(job[1]);
  } else {
    state.view = { kind: 'jobs' };
    showView('jobs');
  }
}

window.addEventListener('hashchange', route);

function phaseTimeline(run) {
  const total = run.phases.reduce((sum, p) => sum + (p.durationMs ?? 0), 0) || 1;
  const rows = run.phases
    .map((p) => {
      const width = Math.max(1, Math.round(((p.durationMs ?? 0) / total) * 100));
      const live = p.status === 'running' && run.live?.progress ? liveProgress(run) : '';
      return `<tr class="phase-${escapeHtml(p.status)}"><th scope="row">${escapeHtml(p.name)}</th><td>${statusBadge(p.status)}</td>
<td>${escapeHtml(formatDuration(p.durationMs))}${p.reason ? ` <span class="muted small">${escapeHtml(p.reason)}</span>` : ''}${live}</td>
<td class="bar-cell" aria-hidden="true"><span class="bar bar-w${Math.min(100, Math.ceil(width / 5) * 5)} bar-${escapeHtml(p.status)}"></span></td></tr>`;
    })
    .join('');
  return `<table class="timeline"><caption>Phases</caption><thead><tr><th scope="col">Phase</th><th scope="col">Status</th><th scope="col">Duration</th><th scope="col"><span class="visually-hidden">Share of the run</span></th></tr></thead><tbody>${rows}</tbody></table>`;
}

function liveProgress(run) {
  const phase = run.phases.find((p) => p.status === 'running');
  const current = { phase: phase?.name, phaseStartedAt: phase?.startedAt, progress: run.live?.progress };
  const progress = progressOf(current, Date.now());
  if (progress) {
    const eta = progress.etaMs !== undefined ? `, about ${formatDuration(progress.etaMs)} left` : '';
    return `<div class="progress"><progress max="100" value="${progress.percent}" aria-label="${escapeHtml(`${phase?.name}: ${progress.percent}%`)}">${progress.percent}%</progress><span class="progress-text">${progress.percent}%${eta}</span></div>`;
  }
  return run.live?.progress?.phase ? `<div class="progress-text">${escapeHtml(run.live.progress.phase)}</div>` : '';
}

function checksList(title, checks) {
  if (!checks?.length) return '';
  const items = checks
    .map(
      (c) =>
        `<li class="${c.ok ? 'ok' : c.severity === 'warning' ? 'warn' : 'bad'}"><span class="mark">${c.ok ? '✓ passed' : c.severity === 'warning' ? '! warning' : '✗ failed'}</span> <strong>${escapeHtml(c.name)}</strong>: ${escapeHtml(c.message)}</li>`,
    )
    .join('');
  return `<h3>${escapeHtml(title)}</h3><ul class="checks">${items}</ul>`;
}

function bytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const tables = (f) => (f ? Object.values(f.tablesBySchema ?? {}).reduce((a, b) => a + b, 0) : '');

function verification(run) {
  const v = run.verification;
  if (!v) return '';
  const rows = v.databases
    .map(
      (d) =>
        `<tr><th scope="row">${escapeHtml(d.database)}</th><td>${bytes(d.source?.sizeBytes)}</td><td>${bytes(d.copy?.sizeBytes)}</td><td>${tables(d.source)}</td><td>${tables(d.copy)}</td><td>${d.checks.every((c) => c.ok) ? '✓ ok' : '✗ failed'}</td></tr>`,
    )
    .join('');
  return `<h3>Verification ${v.ok ? statusBadge('succeeded') : statusBadge('failed')}</h3>
<table class="verify"><caption class="visually-hidden">Source against copy, per database</caption><thead><tr><th scope="col">Database</th><th scope="col">Source size</th><th scope="col">Copy size</th><th scope="col">Source tables</th><th scope="col">Copy tables</th><th scope="col">Checks</th></tr></thead><tbody>${rows}</tbody></table>
${checksList('Verification checks', [...v.databases.flatMap((d) => d.checks), ...v.checks])}`;
}

/** Sections other parts of the record may carry (neutralisation, masking): shown as their own facts. */
function extraSections(run) {
  return ['neutralisation', 'neutralization', 'masking']
    .filter((key) => run[key])
    .map((key) => {
      const value = run[key];
      const checks = Array.isArray(value?.checks) ? value.checks : Array.isArray(value) ? value : undefined;
      if (checks?.every((c) => typeof c?.name === 'string' && typeof c?.ok === 'boolean')) return checksList(key, checks);
      return `<h3>${escapeHtml(key)}</h3><pre class="raw">${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;
    })
    .join('');
}

function renderRun(run) {
  const trigger = run.trigger ?? {};
  const who =
    trigger.kind === 'schedule' || trigger.kind === 'catch-up'
      ? `schedule <code>${escapeHtml(trigger.schedule ?? '')}</code> for ${escapeHtml(formatInZone(trigger.scheduledFor, trigger.timezone ?? 'UTC'))}`
      : `${escapeHtml(trigger.kind)} by ${escapeHtml(trigger.by ?? 'someone')}`;
  const error = run.error
    ? `<div class="error-box" role="alert"><h3>Failed in ${escapeHtml(run.error.phase)}: <code>${escapeHtml(run.error.class)}</code></h3>
<p>${escapeHtml(run.error.message)}</p><p><strong>What to do:</strong> ${escapeHtml(run.error.hint)}</p>
${run.error.details?.length ? `<details><summary>Evidence</summary><ul>${run.error.details.map((d) => `<li><code>${escapeHtml(d)}</code></li>`).join('')}</ul></details>` : ''}</div>`
    : '';
  const cancel =
    state.me && !state.me.readOnly && (run.status === 'running' || run.status === 'queued')
      ? button('cancel', 'Cancel run', `data-run="${escapeHtml(run.id)}" data-job="${escapeHtml(run.job)}" class="danger"`)
      : '';
  return `<p><a href="#/">← Jobs</a> · <a href="#/jobs/${escapeHtml(run.job)}">${escapeHtml(run.job)}</a></p>
<h2>Run <code>${escapeHtml(run.id)}</code> ${statusBadge(run.status)}${run.dryRun ? ' <span class="muted">(dry run)</span>' : ''}</h2>
<dl class="facts">
<dt>Job</dt><dd>${escapeHtml(run.job)}</dd>
<dt>Trigger</dt><dd>${who}${trigger.reason ? `: “${escapeHtml(trigger.reason)}”` : ''}</dd>
<dt>Target</dt><dd>${escapeHtml(run.target?.summary ?? '')}</dd>
<dt>Started</dt><dd>${run.startedAt ? `<time datetime="${escapeHtml(run.startedAt)}">${escapeHtml(new Date(run.startedAt).toLocaleString())}</time>` : 'not yet'}</dd>
${run.durationMs !== undefined ? `<dt>Duration</dt><dd>${escapeHtml(formatDuration(run.durationMs))}</dd>` : ''}
${run.skip ? `<dt>Skipped</dt><dd>${escapeHtml(run.skip.reason)}: ${escapeHtml(run.skip.detail ?? '')}</dd>` : ''}
${run.cancelled ? `<dt>Cancelled</dt><dd>by ${escapeHtml(run.cancelled.by)}${run.cancelled.reason ? `: “${escapeHtml(run.cancelled.reason)}”` : ''}</dd>` : ''}
${run.paused ? `<dt>Paused</dt><dd>${escapeHtml(run.paused.reason)} (next: ${escapeHtml(run.paused.nextPhase)})</dd>` : ''}
</dl>
<div class="run-actions">${cancel}</div>
${error}
${phaseTimeline(run)}
${checksList('Preflight checks', run.preflight)}
${verification(run)}
${extraSections(run)}`;
}

async function showRun(id) {
  const box = $('#detail-view');
  try {
    const run = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}`);
    if (state.view.kind !== 'run' || state.view.id !== id) return;
    state.view.run = run;
    box.innerHTML = renderRun(run);
  } catch (error) {
    box.innerHTML = `<p><a href="#/">← Jobs</a></p><p class="error-text" role="alert">${escapeHtml(error.message)}</p>`;
  }
}

let refetch;
function onRunUpdate(update) {
  const run = state.view.run;
  if (!run) return;
  if (update.event === 'progress') {
    run.live = { phase: update.phase, progress: update.progress };
    const phase = run.phases.find((p) => p.name === update.phase);
    if (phase) phase.status = 'running';
    $('#detail-view').innerHTML = renderRun(run);
    return;
  }
  // Phase boundaries and the end: read the record again (checks, verification, error), at most every 300 ms.
  clearTimeout(refetch);
  refetch = setTimeout(() => showRun(update.id), 300);
}

async function showJob(name) {
  const box = $('#detail-view');
  try {
    const [job, runs] = await Promise.all([
      api('GET', `/api/v1/jobs/${encodeURIComponent(name)}`),
      api('GET', `/api/v1/jobs/${encodeURIComponent(name)}/runs?limit=20`),
    ]);
    if (state.view.kind !== 'job' || state.view.name !== name) return;
    const item = state.jobs.get(name);
    const rows = runs.runs
      .map(
        (r) =>
          `<tr><th scope="row"><a href="#/runs/${escapeHtml(r.id)}"><code>${escapeHtml(r.id)}</code></a></th><td>${statusBadge(r.status)}</td><td>${escapeHtml(r.trigger.kind)}${r.trigger.by ? ` by ${escapeHtml(r.trigger.by)}` : ''}</td><td>${escapeHtml(formatDuration(r.durationMs))}</td><td>${r.error ? `<code>${escapeHtml(r.error.class)}</code>` : r.skip ? escapeHtml(r.skip.reason) : ''}</td></tr>`,
      )
      .join('');
    box.innerHTML = `<p><a href="#/">← Jobs</a></p>
<h2>${escapeHtml(job.name)} ${job.suspended ? '<span class="badge badge-suspended">suspended</span>' : ''}</h2>
${job.description ? `<p>${escapeHtml(job.description)}</p>` : ''}
<table class="jobs single" data-job="${escapeHtml(name)}"><tbody>${item ? renderJobRow(item, Date.now()) : ''}</tbody></table>
<dl class="facts">
<dt>Target</dt><dd>${escapeHtml(job.target.summary)}</dd>
<dt>Source</dt><dd>${escapeHtml(job.source.host)}:${escapeHtml(job.source.port)}</dd>
<dt>Schedule</dt><dd>${job.schedule ? `<code>${escapeHtml(job.schedule)}</code> in ${escapeHtml(job.timezone)}` : 'manual only'}</dd>
<dt>Next runs</dt><dd>${job.nextRuns.map((t) => escapeHtml(formatInZone(t, job.timezone))).join('<br>') || 'none'}</dd>
${job.suspension ? `<dt>${job.suspension.suspended ? 'Suspended' : 'Resumed'}</dt><dd>by ${escapeHtml(job.suspension.by)}, ${escapeHtml(formatAge(Date.now() - Date.parse(job.suspension.at)))} ago${job.suspension.reason ? `: “${escapeHtml(job.suspension.reason)}”` : ''}</dd>` : ''}
</dl>
${job.warnings.length ? `<h3>Schedule warnings</h3><ul>${job.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : ''}
<table class="runs"><caption>Recent runs</caption><thead><tr><th scope="col">Run</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Duration</th><th scope="col">Problem</th></tr></thead><tbody>${rows}</tbody></table>`;
    if (item) {
      const cell = $('td.actions', box);
      if (cell) cell.innerHTML = actionsFor(item);
    }
  } catch (error) {
    box.innerHTML = `<p><a href="#/">← Jobs</a></p><p class="error-text" role="alert">${escapeHtml(error.message)}</p>`;
  }
}

// Ages ("5 min") count up without a server round trip.
setInterval(() => {
  const now = Date.now();
  for (const time of document.querySelectorAll('time[data-age]')) {
    time.textContent = formatAge(now - Date.parse(time.dateTime));
  }
}, 15_000);

// ── start ──────────────────────────────────────────────────────────────────

document.documentElement.classList.add('js');
renderSession();
if (state.token) signIn(state.token);
else route();

