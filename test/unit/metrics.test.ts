import { describe, expect, it } from 'vitest';
import { ServiceMetrics } from '../../src/observe/metrics.js';
import { newRun, RECREATE_PHASES, type RunRecord, skipPhase, startPhase, succeedPhase, succeedRun } from '../../src/run/record.js';

const T0 = Date.parse('2030-01-01T03:00:00Z');

function finishedRun(job: string, status: 'succeeded' | 'failed', dryRun = false): RunRecord {
  let run = newRun({
    id: `20300101T030000000Z-${job
      .padEnd(6, '0')
      .slice(0, 6)
      .replace(/[^0-9a-f]/g, 'a')}`,
    job,
    trigger: { kind: 'schedule' },
    dryRun,
    now: new Date(T0),
    source: { host: 'h', port: 5432, user: 'u' },
    target: { kind: 'local', summary: '', details: {}, steps: { teardown: '', clone: '', start: '' } },
  });
  let t = T0;
  for (const phase of RECREATE_PHASES) {
    // Six timed phases of 10 s each; the private window's phases (masking among them) take no time here.
    if (phase === 'neutralise' || phase === 'prepare' || phase === 'mask' || phase === 'open') {
      run = skipPhase(run, phase, 'nothing to do');
      continue;
    }
    run = startPhase(run, phase, new Date(t));
    t += 10_000;
    run = succeedPhase(run, phase, new Date(t));
  }
  run = { ...succeedRun(run, new Date(t)), snapshot: { takenAt: new Date(T0 + 20_000).toISOString(), databases: [] } };
  return status === 'succeeded' ? run : { ...run, status: 'failed' };
}

describe('ServiceMetrics', () => {
  it('counts runs by result, times runs and phases, and tracks the last success and the data age', async () => {
    let now = T0 + 60_000;
    let running = 1;
    const metrics = new ServiceMetrics({
      clock: { now: () => new Date(now) },
      jobs: ['qa', 'idle'],
      running: () => running,
      queued: () => 2,
    });
    const ok = finishedRun('qa', 'succeeded');
    for (const phase of ok.phases) metrics.onRunEvent({ type: 'phase-finished', run: ok, phase: phase.name });
    metrics.onRunEvent({ type: 'run-finished', run: ok });
    metrics.onRunEvent({ type: 'run-finished', run: finishedRun('qa', 'failed') });
    // Dry runs are not refreshes.
    metrics.onRunEvent({ type: 'run-finished', run: finishedRun('qa', 'succeeded', true) });
    metrics.skipped('qa', 'overlap');
    metrics.skipped('qa', 'missed', 3);
    now = T0 + 3600_000;
    running = 0;

    const text = await metrics.render();
    const line = (prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));
    expect(line('db_refresher_runs_total{job="qa",result="succeeded"}')).toMatch(/ 1$/);
    expect(line('db_refresher_runs_total{job="qa",result="failed"}')).toMatch(/ 1$/);
    expect(line('db_refresher_runs_total{job="idle",result="succeeded"}')).toMatch(/ 0$/);
    expect(line('db_refresher_run_duration_seconds_count{job="qa",result="succeeded"}')).toMatch(/ 1$/);
    expect(line('db_refresher_run_duration_seconds_sum{job="qa",result="succeeded"}')).toMatch(/ 60$/);
    expect(line('db_refresher_phase_duration_seconds_sum{job="qa",phase="clone",result="succeeded"}')).toMatch(/ 10$/);
    expect(line('db_refresher_last_success_timestamp_seconds{job="qa"}')).toBe(
      `db_refresher_last_success_timestamp_seconds{job="qa"} ${(T0 + 60_000) / 1000}`,
    );
    // Data age counts from the snapshot (T0 + 20 s), at scrape time.
    expect(line('db_refresher_data_age_seconds{job="qa"}')).toBe(`db_refresher_data_age_seconds{job="qa"} ${3600 - 20}`);
    expect(line('db_refresher_data_age_seconds{job="idle"}')).toBeUndefined();
    expect(line('db_refresher_runs_running ')).toBe('db_refresher_runs_running 0');
    expect(line('db_refresher_runs_queued ')).toBe('db_refresher_runs_queued 2');
    expect(line('db_refresher_skipped_runs_total{job="qa",reason="overlap"}')).toMatch(/ 1$/);
    expect(line('db_refresher_skipped_runs_total{job="qa",reason="missed"}')).toMatch(/ 1$/);
    expect(line('db_refresher_missed_runs_total{job="qa"}')).toMatch(/ 3$/);
    expect(metrics.contentType).toContain('text/plain');
  });

  it('seeds the last success from history', async () => {
    const metrics = new ServiceMetrics({ clock: { now: () => new Date(T0 + 120_000) }, jobs: ['qa'], running: () => 0, queued: () => 0 });
    metrics.seedLastSuccess(finishedRun('qa', 'succeeded'));
    metrics.seedLastSuccess(finishedRun('qa', 'failed'));
    const text = await metrics.render();
    expect(text).toContain('db_refresher_data_age_seconds{job="qa"} 100');
  });

  it('keeps registries apart, so two services in one process do not collide', async () => {
    const a = new ServiceMetrics({ clock: { now: () => new Date() }, jobs: ['x'], running: () => 0, queued: () => 0 });
    const b = new ServiceMetrics({
      clock: { now: () => new Date() },
      jobs: ['x'],
      running: () => 0,
      queued: () => 0,
      processMetrics: true,
    });
    a.skipped('x', 'overlap');
    expect(await b.render()).toContain('db_refresher_skipped_runs_total{job="x",reason="overlap"} 0');
    expect(await b.render()).toContain('process_resident_memory_bytes');
    expect(await a.render()).not.toContain('process_resident_memory_bytes');
  });

  it('exports what alerts need: info, next run, last run per result, never-succeeded as 0, downtime, notifications, leader', async () => {
    let leading = true;
    const metrics = new ServiceMetrics({
      clock: { now: () => new Date(T0 + 120_000) },
      jobs: ['qa', 'never'],
      running: () => 0,
      queued: () => 0,
      version: '1.2.3',
      jobInfo: [
        { job: 'qa', targetKind: 'cnpg', namespace: 'qa', cluster: 'cluster-qa', schedule: '@daily', intervalSeconds: 86_400 },
        { job: 'never', targetKind: 'local' },
      ],
      nextRun: (job) => (job === 'qa' ? new Date(T0 + 86_400_000) : undefined),
      notifications: () => ({ chat: { delivered: 4, failed: 1, dropped: 0 } }),
      leader: () => ({ pod: 'db-refresher-0', leading }),
    });
    const ok = finishedRun('qa', 'succeeded');
    metrics.onRunEvent({ type: 'run-finished', run: ok });
    metrics.seedLastRun(finishedRun('qa', 'failed'));
    const text = await metrics.render();
    const value = (series: string) =>
      text
        .split('\n')
        .find((l) => l.startsWith(`${series} `))
        ?.split(' ')[1];
    expect(value(`db_refresher_build_info{version="1.2.3",node="${process.versions.node}"}`)).toBe('1');
    expect(
      value('db_refresher_job_info{job="qa",target_kind="cnpg",namespace="qa",cluster="cluster-qa",schedule="@daily",strategy="recreate"}'),
    ).toBe('1');
    expect(value('db_refresher_schedule_interval_seconds{job="qa"}')).toBe('86400');
    expect(value('db_refresher_next_run_timestamp_seconds{job="qa"}')).toBe(String((T0 + 86_400_000) / 1000));
    expect(value('db_refresher_next_run_timestamp_seconds{job="never"}')).toBeUndefined();
    // A job that never succeeded has a series, at 0: "time() - last success" is then huge, not absent.
    expect(value('db_refresher_last_success_timestamp_seconds{job="never"}')).toBe('0');
    expect(value('db_refresher_last_run_timestamp_seconds{job="qa",result="succeeded"}')).toBe(String((T0 + 60_000) / 1000));
    expect(value('db_refresher_last_run_timestamp_seconds{job="qa",result="failed"}')).toBe(String((T0 + 60_000) / 1000));
    expect(value('db_refresher_last_run_timestamp_seconds{job="never",result="failed"}')).toBe('0');
    // recreate: teardown start (T0 + 20 s) to the end of start (T0 + 50 s).
    expect(value('db_refresher_target_downtime_seconds_sum{job="qa"}')).toBe('30');
    expect(value('db_refresher_notifications_total{target="chat",outcome="failed"}')).toBe('1');
    expect(value('db_refresher_notifications_total{target="chat",outcome="delivered"}')).toBe('4');
    expect(value('db_refresher_leader{pod="db-refresher-0"}')).toBe('1');
    leading = false;
    expect((await metrics.render()).includes('db_refresher_leader{pod="db-refresher-0"} 0')).toBe(true);
  });
});
