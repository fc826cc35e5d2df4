import { describe, expect, it } from 'vitest';
import { boundAndCompact } from '../../src/history/k8s-store.js';
import { mayPrune, newestSuccessId } from '../../src/history/retention.js';
import { newRun, type RunRecord, type RunStatus } from '../../src/run/record.js';

function record(id: string, status: RunStatus, dryRun = false): RunRecord {
  const run = newRun({
    id,
    job: 'qa',
    trigger: { kind: 'schedule' },
    dryRun,
    now: new Date('2030-01-01T00:00:00Z'),
    source: { host: 'db', port: 5432, user: 'rep' },
    target: { kind: 'local', summary: 's', details: {}, steps: { teardown: '', clone: '', start: '' } },
  });
  return { ...run, status };
}

describe('history retention', () => {
  it('never prunes an unfinished run or the newest successful refresh; a dry run is no success', () => {
    const newestFirst = [record('5', 'skipped'), record('4', 'succeeded', true), record('3', 'succeeded'), record('2', 'succeeded')];
    const success = newestSuccessId(newestFirst);
    expect(success).toBe('3');
    expect(mayPrune(record('3', 'succeeded'), success)).toBe(false);
    expect(mayPrune(record('2', 'succeeded'), success)).toBe(true);
    expect(mayPrune(record('1', 'running'), success)).toBe(false);
    expect(mayPrune(record('1', 'queued'), success)).toBe(false);
    expect(mayPrune(record('1', 'failed'), success)).toBe(true);
  });

  it('the Kubernetes store keeps them too, beyond keepRuns', () => {
    const runs = [
      record('20300101T000000000Z-000001', 'running'),
      record('20300101T000000000Z-000002', 'succeeded'),
      record('20300101T000000000Z-000003', 'failed'),
      ...Array.from({ length: 5 }, (_, i) => record(`20300101T000000000Z-00001${i}`, 'skipped')),
    ];
    const data = Object.fromEntries(runs.map((r) => [`${r.id}.json`, JSON.stringify(r)]));
    const kept = Object.keys(boundAndCompact(data, { keep: 3, keepFull: 1 })).sort();
    expect(kept).toEqual([
      '20300101T000000000Z-000001.json',
      '20300101T000000000Z-000002.json',
      '20300101T000000000Z-000012.json',
      '20300101T000000000Z-000013.json',
      '20300101T000000000Z-000014.json',
    ]);
  });
});
