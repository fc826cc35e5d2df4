// The status page's job rows, as HTML. One function for both sides: the
// server renders the first page with it (the table works without
// JavaScript), and the browser re-renders a row with it when the live stream
// says the job changed. Plain ES2020, no DOM and no Node APIs.

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values. */
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** "850 ms", "12.4 s", "3 min 5 s", "2 h 10 min", as the CLI writes durations. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

/** How long ago, coarse: "45 s", "12 min", "5 h 3 min", "3 d 4 h". */
export function formatAge(ms) {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

const zoneFormats = new Map();
/**
 * Texts already made, by zone and time: formatToParts is the dearest call in a
 * row (half of the server's render of 1,000 rows), and the next runs repeat
 * (jobs share schedules, and a next run stays the same until it passes).
 */
const zoneTexts = new Map();
const ZONE_TEXTS_MAX = 4096;

/** "2026-11-25 03:00 CET": a time as read in a zone (the job's schedule zone). */
export function formatInZone(iso, timeZone) {
  if (!iso) return '';
  const key = `${timeZone} ${iso}`;
  let text = zoneTexts.get(key);
  if (text === undefined) {
    text = formatInZoneNow(iso, timeZone);
    if (zoneTexts.size >= ZONE_TEXTS_MAX) zoneTexts.clear();
    zoneTexts.set(key, text);
  }
  return text;
}

function formatInZoneNow(iso, timeZone) {
  let format = zoneFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    });
    zoneFormats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName ?? timeZone}`;
}

/**
 * Percent and ETA from a progress report, when it has a percentage. A target
 * that knows its own rate reports `etaMs` (a CNPG clone: the copy starts well
 * after the phase does); otherwise the ETA is the phase's pace so far.
 */
export function progressOf(current, now) {
  const progress = current?.progress;
  const percent = progress?.percent;
  if (typeof percent !== 'number') return undefined;
  if (typeof progress.etaMs === 'number') {
    const reportedAt = progress.at ? Date.parse(progress.at) : NaN;
    const since = Number.isFinite(reportedAt) ? Math.max(0, now - reportedAt) : 0;
    return { percent: Math.max(0, Math.min(100, percent)), etaMs: Math.max(0, progress.etaMs - since) };
  }
  const started = current.phaseStartedAt ? Date.parse(current.phaseStartedAt) : NaN;
  const elapsed = now - started;
  const etaMs = percent > 0 && percent < 100 && Number.isFinite(elapsed) ? (elapsed * (100 - percent)) / percent : undefined;
  return { percent: Math.max(0, Math.min(100, percent)), etaMs };
}

const STATUS_WORDS = {
  queued: 'queued',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  interrupted: 'interrupted',
  skipped: 'skipped',
  cancelled: 'cancelled',
};

/** A status as a badge: a word and a colour (the word carries the meaning; colour is a second cue). */
export function statusBadge(status) {
  const word = STATUS_WORDS[status] ?? String(status);
  return `<span class="badge badge-${escapeHtml(word)}">${escapeHtml(word)}</span>`;
}

/** The cell that says what the job is doing now, with a progress bar when the target reports a percentage. */
export function currentCell(job, now) {
  const current = job.current;
  if (!current) {
    return job.lastRun ? statusBadge(job.lastRun.status) : '<span class="muted">never ran</span>';
  }
  const phase = current.phase ? ` <span class="phase">${escapeHtml(current.phase)}</span>` : '';
  const progress = progressOf(current, now);
  let bar = '';
  if (progress) {
    const eta = progress.etaMs !== undefined ? `, about ${formatDuration(progress.etaMs)} left` : '';
    const label = `${progress.percent}%${eta}`;
    bar = `<div class="progress"><progress max="100" value="${progress.percent}" aria-label="${escapeHtml(`${job.name}: ${current.phase ?? 'run'} ${label}`)}">${progress.percent}%</progress><span class="progress-text">${escapeHtml(label)}</span></div>`;
  } else if (current.progress?.phase) {
    bar = `<div class="progress-text">${escapeHtml(current.progress.phase)}</div>`;
  }
  return `${statusBadge(current.status)}${phase}${bar}`;
}

function lastRunCell(job) {
  const last = job.lastRun;
  if (!last) return '<span class="muted">none</span>';
  const facts = [];
  if (last.durationMs !== null && last.durationMs !== undefined) facts.push(`took ${formatDuration(last.durationMs)}`);
  if (last.downtimeMs !== null && last.downtimeMs !== undefined) facts.push(`down ${formatDuration(last.downtimeMs)}`);
  if (last.errorClass) facts.push(escapeHtml(last.errorClass));
  const when = last.finishedAt
    ? `<time datetime="${escapeHtml(last.finishedAt)}" data-age="${escapeHtml(last.finishedAt)}"></time> ago`
    : '';
  return `<a href="#/runs/${escapeHtml(last.id)}" class="run-link">${statusBadge(last.status)}${last.dryRun ? ' <span class="muted">(dry run)</span>' : ''}</a> ${when}<div class="muted small">${facts.join(' · ')}</div>`;
}

/** Fills the `data-age` times with "5 min", counted from `now`. */
export function fillAges(html, now) {
  return html.replace(/<time datetime="([^"]*)" data-age="[^"]*"><\/time>/g, (whole, iso) => {
    const at = Date.parse(iso.replace(/&amp;/g, '&'));
    return Number.isFinite(at) ? whole.replace('></time>', `>${formatAge(now - at)}</time>`) : whole;
  });
}

/**
 * One job's row. Actions (refresh, cancel, suspend) are added by the page's
 * script for a write token; without JavaScript the row is read-only.
 */
export function renderJobRow(job, now) {
  const name = escapeHtml(job.name);
  const age = job.dataTakenAt
    ? `<time datetime="${escapeHtml(job.dataTakenAt)}" data-age="${escapeHtml(job.dataTakenAt)}"></time>`
    : '<span class="muted">no copy yet</span>';
  const next = job.suspended
    ? '<span class="muted">suspended</span>'
    : job.nextRunAt
      ? `<time datetime="${escapeHtml(job.nextRunAt)}">${escapeHtml(formatInZone(job.nextRunAt, job.timezone))}</time>`
      : `<span class="muted">${job.schedule ? 'none' : 'manual only'}</span>`;
  const row = `<tr id="job-${name}" data-job="${name}" data-running="${job.current ? 'true' : 'false'}" data-suspended="${job.suspended ? 'true' : 'false'}">
<th scope="row" data-label="Job"><a href="#/jobs/${name}">${name}</a><div class="muted small">${escapeHtml(job.targetKind)}${job.schedule ? ` · <code>${escapeHtml(job.schedule)}</code> ${escapeHtml(job.timezone)}` : ''}</div></th>
<td data-label="Status" class="status-cell">${currentCell(job, now)}</td>
<td data-label="Data age">${age}</td>
<td data-label="Last run">${lastRunCell(job)}</td>
<td data-label="Next run">${next}</td>
<td data-label="Suspended">${job.suspended ? '<span class="badge badge-suspended">suspended</span>' : 'no'}</td>
<td data-label="Actions" class="actions"></td>
</tr>`;
  return fillAges(row, now);
}

export const JOB_TABLE_HEAD =
  '<thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Data age</th><th scope="col">Last run</th><th scope="col">Next run (job’s zone)</th><th scope="col">Suspended</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>';
