import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildPlan, renderPlanText, renderRunText, serialize } from '../../src/cli/render.js';
import { parseConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import type { JobConfig } from '../../src/config/types.js';
import { formatDuration } from '../../src/duration.js';
import { FAILURE_HINTS } from '../../src/failures.js';
import { failRun, newRun, RECREATE_PHASES as PHASES, startPhase, succeedPhase } from '../../src/run/record.js';
import { planSteps } from '../../src/runner/phases/index.js';
import { asLocalJob, LocalTarget } from '../../src/targets/local/index.js';

function jobFrom(yamlJob: string, env: NodeJS.ProcessEnv = { PW: 'x' }): JobConfig {
  const config = parseConfig(`jobs:\n${yamlJob}`, { source: 'test.yaml', baseDir: '/etc/db-refresher', env });
  const job = config.jobs[0];
  if (!job) throw new Error('no job parsed');
  return job;
}

const manualJob = `
  - name: qa
    description: Nightly QA copy
    source: { host: db.example.com, user: replicator, password: { env: PW } }
    target: { kind: local, dataDir: /srv/qa, port: 5433 }
`;

const scheduledJob = `
  - name: reports
    schedule: '0 3 * * 6'
    timezone: Europe/Berlin
    suspend: true
    source: { host: db.example.com, port: 6432, user: replicator, password: { env: PW }, sql: { user: reader } }
    target: { kind: local, dataDir: /srv/reports, port: 5434 }
    verify:
      sizeTolerancePercent: 5
      databases:
        - { name: app }
        - { name: billing }
`;

function planFor(yamlJob: string) {
  const job = jobFrom(yamlJob);
  const target = new LocalTarget({ job: asLocalJob(job), jobPath: 'jobs[0]' }).describe();
  return { job, target, plan: buildPlan(job, target, planSteps(job, target)) };
}

describe('buildPlan and renderPlanText', () => {
  it('lists the phases in order, and only teardown, clone, start and the private window (masking included) change the target', () => {
    const { plan } = planFor(manualJob);
    expect(plan.steps.map((s) => s.phase)).toEqual([...PHASES]);
    expect(plan.steps.filter((s) => s.destructive).map((s) => s.phase)).toEqual([
      'teardown',
      'clone',
      'start',
      'neutralise',
      'prepare',
      'mask',
      'open',
    ]);

    const text = renderPlanText(plan);
    const lines = text.split('\n');
    const start = lines.indexOf('Steps:');
    expect(start).toBeGreaterThan(0);
    const steps = lines.slice(start + 1, start + 1 + PHASES.length);
    PHASES.forEach((phase, i) => {
      expect(steps[i]).toMatch(new RegExp(`^  ${i + 1}\\. ${phase}\\b`));
      expect(steps[i]?.includes('[changes the target]')).toBe(
        ['teardown', 'clone', 'start', 'neutralise', 'prepare', 'mask', 'open'].includes(phase),
      );
    });
  });

  it("uses the target's own words for the target-specific steps", () => {
    const { plan, target } = planFor(manualJob);
    const text = renderPlanText(plan);
    expect(text).toContain(`Target:   ${target.summary}`);
    expect(target.summary).toContain('/srv/qa');
    expect(target.summary).toContain('127.0.0.1:5433');
    for (const step of [target.steps.teardown, target.steps.clone, target.steps.start]) expect(text).toContain(step);
  });

  it('says nothing has been changed, and shows "manual runs only" without a schedule', () => {
    const { plan } = planFor(manualJob);
    expect(plan.schedule).toBeNull();
    const text = renderPlanText(plan);
    expect(text.split('\n')[0]).toBe('Plan for job "qa" (nothing has been changed)');
    expect(text).toContain('Nightly QA copy');
    expect(text).toMatch(/^Schedule: .*manual runs only$/m);
  });

  it('describes the source, its authentication and the SQL user', () => {
    const { plan } = planFor(manualJob);
    expect(plan.source).toEqual({
      host: 'db.example.com',
      port: 5432,
      user: 'replicator',
      sslmode: 'prefer',
      auth: 'password',
      sqlUser: 'replicator',
    });
    expect(renderPlanText(plan)).toContain('replicator@db.example.com:5432');
  });

  it('with no databases listed, snapshots all connectable databases', () => {
    const { plan } = planFor(manualJob);
    expect(plan.verify.databases).toBe('all connectable databases on the source');
    expect(plan.steps.find((s) => s.phase === 'snapshot')?.action).toContain('all connectable databases on the source');
    expect(plan.steps.find((s) => s.phase === 'snapshot')?.action).not.toContain('on the source on the source');
    expect(plan.steps.find((s) => s.phase === 'verify')?.action).toContain('within 10%');
  });

  it('a cnpg job without a source says which Kubernetes Secret the password comes from, not "no secret configured"', () => {
    const job = jobFrom(`
  - name: qa
    target:
      kind: cnpg
      namespace: qa
      clusterName: qa-db
      values:
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: prod } }
        externalClusters:
          - name: prod
            connectionParameters: { host: prod-rw.production.svc, user: streaming_replica }
            password: { name: prod-replica, key: password }
`);
    expect(buildPlan(job, { kind: 'cnpg', summary: '', details: {}, steps: { teardown: '', clone: '', start: '' } }, []).source.auth).toBe(
      'password from Secret qa/prod-replica key password, read at run time',
    );
  });

  it('shows a schedule with its time zone and suspension, the listed databases and the tolerance', () => {
    const { plan } = planFor(scheduledJob);
    expect(plan.schedule).toEqual({ expression: '0 3 * * 6', timezone: 'Europe/Berlin', suspended: true });
    expect(plan.source.sqlUser).toBe('reader');
    const text = renderPlanText(plan);
    expect(text).toMatch(/^Schedule: 0 3 \* \* 6 \(Europe\/Berlin\), suspended$/m);
    expect(text).not.toContain('manual runs only');
    expect(plan.steps.find((s) => s.phase === 'snapshot')?.action).toContain('app, billing');
    expect(plan.steps.find((s) => s.phase === 'verify')?.action).toContain('within 5%');
  });
});

describe('renderRunText', () => {
  const T0 = new Date('2024-03-01T10:00:00.000Z');
  const at = (ms: number) => new Date(T0.getTime() + ms);

  function failedRun() {
    const job = jobFrom(manualJob);
    let run = newRun({
      id: '20240301T100000000Z-abcdef',
      job: 'qa',
      trigger: { kind: 'cli' },
      dryRun: false,
      now: T0,
      source: { host: 'db.example.com', port: 5432, user: 'replicator' },
      target: new LocalTarget({ job: asLocalJob(job), jobPath: 'jobs[0]' }).describe(),
    });
    let t = 0;
    for (const phase of ['preflight', 'snapshot', 'teardown'] as const) {
      run = startPhase(run, phase, at(t));
      t += 500;
      run = succeedPhase(run, phase, at(t));
    }
    run = startPhase(run, 'clone', at(t));
    return failRun(
      run,
      {
        phase: 'clone',
        class: 'disk-full',
        message: 'pg_basebackup failed (exit 1): No space left on device',
        hint: FAILURE_HINTS['disk-full'],
        details: ['pg_basebackup: error: could not write to file "base/1/1259": No space left on device'],
      },
      at(65_000),
    );
  }

  it('shows the status, the failed phase and class, the message, the hint and the details', () => {
    const text = renderRunText(failedRun());
    const lines = text.split('\n');
    expect(lines[0]).toBe('Run 20240301T100000000Z-abcdef of job "qa": FAILED in 1 min 5 s');
    expect(text).toContain('Failed in clone: disk-full');
    expect(text).toContain('  pg_basebackup failed (exit 1): No space left on device');
    expect(text).toContain(`What to do: ${FAILURE_HINTS['disk-full']}`);
    expect(text).toContain('could not write to file "base/1/1259"');
  });

  it('marks each phase: succeeded, failed, and skipped with the reason', () => {
    const lines = renderRunText(failedRun()).split('\n');
    const phaseLine = (name: string) => lines.find((l) => l.trimStart().slice(2).startsWith(`${name} `));
    expect(phaseLine('teardown')).toMatch(/✓ teardown\s+500 ms$/);
    expect(phaseLine('clone')).toMatch(/✗ clone\s+1 min 4 s$/);
    expect(phaseLine('start')).toMatch(/- start\s+skipped \(clone failed\)$/);
    expect(phaseLine('verify')).toMatch(/- verify\s+skipped \(clone failed\)$/);
  });
});

describe('formatDuration', () => {
  it.each([
    [undefined, ''],
    [0, '0 ms'],
    [999, '999 ms'],
    [1000, '1.0 s'],
    [1500, '1.5 s'],
    [59_000, '59.0 s'],
    [60_000, '1 min 0 s'],
    [61_000, '1 min 1 s'],
    [125_000, '2 min 5 s'],
    [3_540_000, '59 min 0 s'],
    [3_600_000, '1 h 0 min'],
    [3_900_000, '1 h 5 min'],
  ])('%s ms → %j', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  // Known bug (reported, not fixed here): seconds are rounded after minutes are taken,
  // so 1 min 59.5 s prints as "1 min 60 s" instead of carrying into the minutes, and
  // 59.96 s prints as "60.0 s". These tests start failing once that is fixed: turn them into plain `it`.
  it('carries rounded seconds into the minutes (119 500 ms is 2 min 0 s)', () => {
    expect(formatDuration(119_500)).toBe('2 min 0 s');
  });

  it('never shows 60 seconds (59 960 ms is 1 min 0 s)', () => {
    expect(formatDuration(59_960)).toBe('1 min 0 s');
  });
});

describe('serialize', () => {
  const hidden = 'hunter2-do-not-print';
  const value = {
    job: 'qa',
    password: new Secret(hidden, 'env:PW'),
    nested: { list: [new Secret(hidden, 'file:/run/secrets/pw')] },
  };

  it('json keeps the structure and shows placeholders instead of secret values', () => {
    const text = serialize(value, 'json');
    expect(text).not.toContain(hidden);
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({
      job: 'qa',
      password: '[secret env:PW]',
      nested: { list: ['[secret file:/run/secrets/pw]'] },
    });
  });

  it('yaml keeps the structure and shows placeholders instead of secret values', () => {
    const text = serialize(value, 'yaml');
    expect(text).not.toContain(hidden);
    expect(parseYaml(text)).toEqual({
      job: 'qa',
      password: '[secret env:PW]',
      nested: { list: ['[secret file:/run/secrets/pw]'] },
    });
  });

  it('a whole loaded job serializes without its password in either format', () => {
    const job = jobFrom(manualJob, { PW: hidden });
    expect(job.source.password?.reveal()).toBe(hidden);
    for (const format of ['json', 'yaml'] as const) {
      const text = serialize(job, format);
      expect(text).not.toContain(hidden);
      expect(text).toContain('[secret env:PW]');
    }
  });
});
