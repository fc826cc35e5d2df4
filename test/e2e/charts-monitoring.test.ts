/**
 * The chart's monitoring: the PrometheusRule's alerts checked and unit-tested with promtool (Debian's
 * `prometheus` package), the Grafana dashboard's queries checked against the metrics db-refresher
 * exports, and the objects two or more replicas need (leader election, PDB, RollingUpdate).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { ServiceMetrics } from '../../src/observe/metrics.js';
import { buildRenderer, type RenderedManifest, render, renderError } from '../charts/helpers.js';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'dbr-monitoring-'));
let counter = 0;

beforeAll(async () => {
  await buildRenderer();
}, 600_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function valuesFile(text: string): string {
  counter += 1;
  const file = path.join(tmp, `values-${counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

const JOBS = `
jobs:
  - name: qa-db
    schedule: "@daily"
    target:
      kind: cnpg
      namespace: qa
      clusterName: cluster-qa-db
      values:
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: src } }
        externalClusters: [{ name: src, connectionParameters: { host: db.example.com, user: r } }]
`;

const MONITORED = `${JOBS}
replicaCount: 2
leaderElection: { enabled: true }
prometheusRule: { enabled: true }
grafanaDashboard: { enabled: true }
serviceMonitor: { enabled: true }
`;

async function manifests(text: string): Promise<RenderedManifest[]> {
  return (await render('db-refresher', { valuesFiles: [valuesFile(text)], name: 'dbr', namespace: 'dbr' })).manifests;
}

function one(list: RenderedManifest[], kind: string, name?: string): RenderedManifest {
  const found = list.filter((m) => m.kind === kind && (!name || m.name === name));
  expect(found, kind).toHaveLength(1);
  return found[0] as RenderedManifest;
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const promtool = (args: string[]) =>
  run('promtool', args, { timeout: 60_000 }).catch((error: { stdout?: string; stderr?: string }) => {
    throw new Error(`promtool ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
  });

describe('alerting rules (promtool)', () => {
  let rulesFile: string;
  let rules: Rule[];

  beforeAll(async () => {
    const rule = one(await manifests(MONITORED), 'PrometheusRule').object as unknown as { spec: { groups: Array<{ rules: Rule[] }> } };
    rules = rule.spec.groups.flatMap((g) => g.rules);
    rulesFile = path.join(tmp, 'rules.yaml');
    writeFileSync(rulesFile, stringify(rule.spec));
  });

  it('the rendered rules pass `promtool check rules`, and each alert links to its runbook in the README', async () => {
    const { stdout } = await promtool(['check', 'rules', rulesFile]);
    expect(stdout).toMatch(/SUCCESS: 6 rules found/);
    expect(rules.map((r) => r.alert)).toEqual([
      'DbRefresherCopyStale',
      'DbRefresherNeverSucceeded',
      'DbRefresherLastRunFailed',
      'DbRefresherScheduleMissed',
      'DbRefresherNotificationsFailing',
      'DbRefresherNoLeader',
    ]);
    // The anchor exists: GitHub makes `#### DbRefresherCopyStale` into #dbrefreshercopystale.
    const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const anchors = new Set([...readme.matchAll(/^#{2,4} (\S+)$/gm)].map((m) => (m[1] ?? '').toLowerCase()));
    for (const r of rules) {
      expect(r.annotations.runbook_url).toMatch(new RegExp(`README\\.md#${r.alert.toLowerCase()}$`));
      expect(anchors, `README has no runbook section for ${r.alert}`).toContain(r.alert.toLowerCase());
    }
  });

  it('each alert fires on the series it is for and stays quiet otherwise (`promtool test rules`)', async () => {
    const expected = (alert: string, labels: Record<string, string>) => {
      const rule = rules.find((r) => r.alert === alert);
      if (!rule) throw new Error(`no rule ${alert}`);
      const annotations = Object.fromEntries(
        Object.entries(rule.annotations).map(([k, v]) => [
          k,
          v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_m, key: string) => labels[key] ?? ''),
        ]),
      );
      return { exp_labels: { ...rule.labels, ...labels }, exp_annotations: annotations };
    };
    // promtool's clock starts at 0: timestamps here are seconds since then.
    const tests = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          name: 'stale copy: last success at 60 s, daily-ish schedule of 1 h',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_last_success_timestamp_seconds{job="qa",pod="a"}', values: '60x200' },
            { series: 'db_refresher_last_success_timestamp_seconds{job="qa",pod="b"}', values: '0x200' },
            { series: 'db_refresher_schedule_interval_seconds{job="qa",pod="a"}', values: '3600x200' },
            // Refreshed every minute: never stale.
            { series: 'db_refresher_last_success_timestamp_seconds{job="fresh",pod="a"}', values: '60+60x200' },
            { series: 'db_refresher_schedule_interval_seconds{job="fresh",pod="a"}', values: '3600x200' },
          ],
          alert_rule_test: [
            { eval_time: '1h', alertname: 'DbRefresherCopyStale', exp_alerts: [] },
            { eval_time: '2h', alertname: 'DbRefresherCopyStale', exp_alerts: [expected('DbRefresherCopyStale', { job: 'qa' })] },
          ],
        },
        {
          name: 'never succeeded: only a job that has run',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_last_success_timestamp_seconds{job="broken"}', values: '0x30' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="broken",result="failed"}', values: '100x30' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="broken",result="succeeded"}', values: '0x30' },
            { series: 'db_refresher_last_success_timestamp_seconds{job="new"}', values: '0x30' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="new",result="failed"}', values: '0x30' },
          ],
          alert_rule_test: [
            { eval_time: '2m', alertname: 'DbRefresherNeverSucceeded', exp_alerts: [] },
            {
              eval_time: '10m',
              alertname: 'DbRefresherNeverSucceeded',
              exp_alerts: [expected('DbRefresherNeverSucceeded', { job: 'broken' })],
            },
          ],
        },
        {
          name: 'last run failed after the last success; not when a success came later',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_last_run_timestamp_seconds{job="qa",result="succeeded"}', values: '100x10' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="qa",result="failed"}', values: '200x10' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="qa",result="interrupted"}', values: '0x10' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="ok",result="succeeded"}', values: '300x10' },
            { series: 'db_refresher_last_run_timestamp_seconds{job="ok",result="failed"}', values: '200x10' },
          ],
          alert_rule_test: [
            { eval_time: '5m', alertname: 'DbRefresherLastRunFailed', exp_alerts: [expected('DbRefresherLastRunFailed', { job: 'qa' })] },
          ],
        },
        {
          name: 'a fire time passed with no run',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_next_run_timestamp_seconds{job="stuck"}', values: '300x30' },
            { series: 'db_refresher_next_run_timestamp_seconds{job="ontime"}', values: '600+60x30' },
          ],
          alert_rule_test: [
            { eval_time: '10m', alertname: 'DbRefresherScheduleMissed', exp_alerts: [] },
            {
              eval_time: '20m',
              alertname: 'DbRefresherScheduleMissed',
              exp_alerts: [expected('DbRefresherScheduleMissed', { job: 'stuck' })],
            },
          ],
        },
        {
          name: 'notifications failing',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_notifications_total{target="chat",outcome="failed"}', values: '0 0 0 1 1 1 1 1 1 1' },
            { series: 'db_refresher_notifications_total{target="mail",outcome="delivered"}', values: '0+1x10' },
            { series: 'db_refresher_notifications_total{target="mail",outcome="failed"}', values: '0x10' },
          ],
          alert_rule_test: [
            { eval_time: '2m', alertname: 'DbRefresherNotificationsFailing', exp_alerts: [] },
            {
              eval_time: '5m',
              alertname: 'DbRefresherNotificationsFailing',
              exp_alerts: [expected('DbRefresherNotificationsFailing', { target: 'chat' })],
            },
          ],
        },
        {
          name: 'no leader for a minute, and none at all without series',
          interval: '1m',
          input_series: [
            { series: 'db_refresher_leader{pod="a"}', values: '1 1 1 0 0 0 0 0' },
            { series: 'db_refresher_leader{pod="b"}', values: '0 0 0 0 0 0 0 0' },
          ],
          alert_rule_test: [
            { eval_time: '2m', alertname: 'DbRefresherNoLeader', exp_alerts: [] },
            { eval_time: '6m', alertname: 'DbRefresherNoLeader', exp_alerts: [expected('DbRefresherNoLeader', {})] },
            { eval_time: '20m', alertname: 'DbRefresherNoLeader', exp_alerts: [expected('DbRefresherNoLeader', {})] },
          ],
        },
      ],
    };
    const testFile = path.join(tmp, 'rules.test.yaml');
    writeFileSync(testFile, stringify(tests));
    const { stdout } = await promtool(['test', 'rules', testFile]);
    expect(stdout).toMatch(/SUCCESS/);
  });

  it('promtool catches a rule that would never fire as written (the test above can fail)', async () => {
    const broken = path.join(tmp, 'broken.test.yaml');
    writeFileSync(
      broken,
      stringify({
        rule_files: [rulesFile],
        tests: [
          {
            interval: '1m',
            input_series: [{ series: 'db_refresher_next_run_timestamp_seconds{job="ontime"}', values: '600+60x30' }],
            alert_rule_test: [
              {
                eval_time: '20m',
                alertname: 'DbRefresherScheduleMissed',
                exp_alerts: [{ exp_labels: { job: 'ontime', severity: 'critical' } }],
              },
            ],
          },
        ],
      }),
    );
    await expect(promtool(['test', 'rules', broken])).rejects.toThrow(/FAILED/);
  });
});

describe('Grafana dashboard', () => {
  it('is a ConfigMap with the grafana_dashboard label, and every query names a metric db-refresher exports', async () => {
    const cm = one(await manifests(MONITORED), 'ConfigMap', 'dbr-db-refresher-dashboard').object as unknown as {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    const dashboard = JSON.parse(cm.data['db-refresher.json'] ?? '') as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    const titles = dashboard.panels.map((p) => p.title).join(' | ');
    for (const topic of ['Jobs', 'Data age', 'Phase durations', 'Downtime', 'Failures by class', 'Notifications'])
      expect(titles).toContain(topic);

    const metrics = new ServiceMetrics({
      clock: { now: () => new Date() },
      jobs: ['qa'],
      running: () => 0,
      queued: () => 0,
      jobInfo: [{ job: 'qa', targetKind: 'local', intervalSeconds: 60 }],
      nextRun: () => new Date(),
      notifications: () => ({ chat: { delivered: 0, failed: 0, dropped: 0 } }),
      leader: () => ({ pod: 'a', leading: true }),
    });
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const used = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/db_refresher_[a-z_]+/g) ?? []));
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(exported, `${name} is not exported`).toContain(name.replace(/_(bucket|sum|count)$/, ''));
    // The rules too.
    const rule = one(await manifests(MONITORED), 'PrometheusRule').object as unknown as { spec: { groups: Array<{ rules: Rule[] }> } };
    for (const r of rule.spec.groups.flatMap((g) => g.rules)) {
      for (const name of r.expr.match(/db_refresher_[a-z_]+/g) ?? []) expect(exported, `${r.alert}: ${name}`).toContain(name);
    }
  });
});

describe('two or more replicas', () => {
  it('leader election in the config, the pod name and IP, a PDB with minAvailable 1, and RollingUpdate', async () => {
    const list = await manifests(MONITORED);
    for (const m of list) expect(m.decode, `${m.kind}: ${m.decodeError ?? ''}`).not.toBe('failed');
    const deployment = one(list, 'Deployment').object as unknown as {
      spec: { replicas: number; strategy: { type: string }; template: { spec: { containers: Array<{ env: Array<{ name: string }> }> } } };
    };
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.type).toBe('RollingUpdate');
    expect(deployment.spec.template.spec.containers[0]?.env.map((e) => e.name)).toEqual(expect.arrayContaining(['POD_NAME', 'POD_IP']));
    expect((one(list, 'PodDisruptionBudget').object as unknown as { spec: { minAvailable: number } }).spec.minAvailable).toBe(1);
    const config = parseYaml(
      (one(list, 'ConfigMap', 'dbr-db-refresher').object as unknown as { data: Record<string, string> }).data['config.yaml'] ?? '',
    );
    expect(config.server.leaderElection).toEqual({
      leaseName: 'dbr-db-refresher',
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
    });
    const monitor = one(list, 'ServiceMonitor').object as unknown as { spec: { endpoints: Array<{ honorLabels: boolean }> } };
    expect(monitor.spec.endpoints[0]?.honorLabels).toBe(true);
  });

  it('one replica: no PDB, Recreate; more than one without leader election or with file history is refused', async () => {
    const list = await manifests(JOBS);
    expect(list.filter((m) => m.kind === 'PodDisruptionBudget')).toHaveLength(0);
    expect((one(list, 'Deployment').object as unknown as { spec: { strategy: { type: string } } }).spec.strategy.type).toBe('Recreate');
    expect(
      await renderError('db-refresher', { valuesFiles: [valuesFile(`${JOBS}replicaCount: 2\n`)], name: 'dbr', namespace: 'dbr' }),
    ).toMatch(/leaderElection/);
    expect(
      await renderError('db-refresher', {
        valuesFiles: [valuesFile(`${JOBS}replicaCount: 3\nleaderElection: { enabled: true }\nserver: { history: { kind: file } }\n`)],
        name: 'dbr',
        namespace: 'dbr',
      }),
    ).toMatch(/kubernetes/);
  });
});
