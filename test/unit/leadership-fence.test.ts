import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../src/history/file-store.js';
import { newRun, newRunId } from '../../src/run/record.js';
import { fencedStore, type Leadership } from '../../src/service/leadership.js';

/**
 * fencedStore: only the leader writes run records. A save that began while this replica led but ended
 * after it stopped leading (the write hung in a partition past the renew deadline) must not count as
 * saved: the runner would start the phase it saved as started, after another replica may have taken over.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'dbr-fence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Leads for the first `leadingChecks` looks, then not. */
function leadershipFor(leadingChecks: number): Leadership {
  let looks = 0;
  return {
    get leading() {
      looks += 1;
      return looks <= leadingChecks;
    },
    forwardTo: () => 'none',
    readiness: () => ({ ok: true, message: '' }),
    metric: () => undefined,
    start: () => undefined,
    stop: async () => undefined,
  };
}

function record() {
  const now = new Date();
  return newRun({
    id: newRunId(now),
    job: 'qa',
    trigger: { kind: 'http' },
    dryRun: false,
    now,
    source: { host: 'db', port: 5432 },
    target: { kind: 'local', summary: 'copies/qa' },
  } as Parameters<typeof newRun>[0]);
}

describe('fencedStore', () => {
  it('saves while this replica leads before and after the write', async () => {
    const store = fencedStore(new FileRunStore(dir), leadershipFor(Number.POSITIVE_INFINITY));
    const run = record();
    await store.save(run);
    expect((await store.get(run.id))?.id).toBe(run.id);
  });

  it('refuses a save when this replica does not lead', async () => {
    const store = fencedStore(new FileRunStore(dir), leadershipFor(0));
    await expect(store.save(record())).rejects.toThrow(/not the leader any more/);
    await expect(store.saveSuspension('qa', { suspended: true, by: 'x', at: new Date().toISOString() })).rejects.toMatchObject({
      code: 'NO_LEADER',
    });
  });

  it('a save that ends after the lead was lost fails: the phase it starts must not run', async () => {
    const store = fencedStore(new FileRunStore(dir), leadershipFor(1));
    await expect(store.save(record())).rejects.toThrow(/stopped leading while the run record was being saved/);
    // NO_LEADER: the HTTP API answers 503, and the client tries again (at the new leader).
    await expect(fencedStore(new FileRunStore(dir), leadershipFor(1)).save(record())).rejects.toMatchObject({ code: 'NO_LEADER' });
  });
});
