import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { runningServer } from '../../src/targets/local/data-dir.js';
import { privateSocketDir } from '../../src/targets/local/private-start.js';
import { type CliProcess, cloneProcesses, killRunDuring, records, recoverThenRefresh, sourceReplication } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { loadPersonalData, PERSONAL_MASK_YAML } from '../support/personal-data.js';
import { processesMatching } from '../support/processes.js';
import { killServes, type Served } from '../support/serve.js';

/**
 * kill -9 of `db-refresher run` inside the private window of a local copy:
 * once in each of neutralise, prepare (a step), mask (a small mask section),
 * and twice in open (while the private copy stops, and once the copy listens
 * on its port). After each kill, while the copy is not yet prepared, nobody
 * can connect to the job's TCP port (the copy runs on its private socket
 * only, or is down). Then a service starts: its recovery takes the killed run
 * up again and finishes it where the phase can be redone, or settles it with
 * the copy still closed; a refresh through the API then succeeds. Nobody does
 * anything by hand: no run is left running, no child process, no walsender
 * of ours on the source. The machinery (kill at a phase, recover, refresh) is
 * test/support/crash.ts, shared with kill-every-phase.test.ts.
 */

const TOKEN = 'kill-window-token-0123456789abcdef';
const JOB = 'qa';
const KEY = 'kill-window-mask-key';

let harness: LocalHarness;
let config: string;
let stateDir: string;
let targetPort: number;
const children: Array<CliProcess | Served> = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  await loadPersonalData(harness.source, 'crm', 50);
  targetPort = await freePort();
  config = path.join(harness.sandbox.root, 'kill-window.yaml');
  stateDir = path.join(harness.sandbox.root, 'state');
  const job = harness.jobYaml({
    name: JOB,
    targetPort,
    source: `      password: { env: SOURCE_PASSWORD }
      sql: { user: postgres, password: { env: PG_SUPER } }`,
    verify: `      databases:
        - name: crm`,
  });
  writeFileSync(
    config,
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${job}    prepare:
      - { name: slow step, database: crm, sql: "SELECT pg_sleep(1)" }
${PERSONAL_MASK_YAML('crm', '      allow: [public.products.name, app.public.users.email]\n      coverage: fail\n')}`,
  );
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
});

afterAll(async () => {
  killServes();
  await harness?.destroy();
});

function env(): NodeJS.ProcessEnv {
  return { ...harness.env, API_TOKEN: TOKEN, MASK_KEY: KEY, PG_SUPER: harness.source.superuserPassword };
}

/** Whether anything accepts a TCP connection on the job's port. */
function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Whether the copy's postmaster is shutting down or gone (postmaster.pid's status line, or no live postmaster). */
function copyStoppingOrDown(): boolean {
  if (!runningServer(dataDir())) return true;
  try {
    return readFileSync(path.join(dataDir(), 'postmaster.pid'), 'utf8').split('\n')[7]?.trim() === 'stopping';
  } catch {
    return true;
  }
}

function dataDir(): string {
  return path.join(harness.sandbox.root, 'copies', JOB);
}

/**
 * The kills. `resumes`: a service start takes the run up again at that phase
 * and finishes it. prepare is not resumable (a user's step need not be
 * idempotent) and an interrupted mask fails by masking's own rule (a copy
 * partly masked is not masked again): those runs settle unfinished, the copy
 * stays closed, and the next run replaces it.
 */
const KILLS: Array<{ phase: string; what: string; resumes: boolean; delayMs?: number; until?: () => boolean | Promise<boolean> }> = [
  { phase: 'neutralise', what: 'neutralise', resumes: true },
  { phase: 'prepare', what: 'prepare (in its step)', resumes: false, delayMs: 300 },
  { phase: 'mask', what: 'mask', resumes: false },
  { phase: 'open', what: 'open, with the private copy stopping or down', resumes: true, until: copyStoppingOrDown },
  { phase: 'open', what: 'open, once the copy listens on its port', resumes: true, until: () => tcpAccepts(targetPort) },
];

for (const { phase, what, resumes, delayMs, until } of KILLS) {
  it(`a kill -9 in ${what} leaves the copy closed until it is prepared, and needs no manual step`, async () => {
    const killed = await killRunDuring({
      stateDir,
      job: JOB,
      config,
      env: env(),
      phase,
      ...(delayMs ? { delayMs } : {}),
      ...(until ? { until } : {}),
      started: (c) => children.push(c),
    });
    // The record on disk says the kill came while the phase was under way.
    expect(killed.phases.find((p) => p.status === 'running')?.name).toBe(phase);
    if (phase !== 'open') {
      // Not prepared yet: the copy is on its private socket (or down), never on its port.
      expect(await tcpAccepts(targetPort)).toBe(false);
    }

    const { settled, second, serviceExit } = await recoverThenRefresh({
      stateDir,
      job: JOB,
      config,
      env: env(),
      token: TOKEN,
      killed,
      started: (s) => children.push(s),
      afterRecovery: async (run) => {
        // A run that did not finish the window never opened the copy.
        if (!resumes) expect(await tcpAccepts(targetPort)).toBe(false);
        expect(run.status === 'succeeded', JSON.stringify(run.error)).toBe(resumes);
      },
    });
    if (resumes) {
      // The service's recovery resumed the killed run at the phase it was in, and it finished.
      expect(settled.resumed?.[0]?.fromPhase).toBe(phase);
      expect(settled.verification?.ok).toBe(true);
    } else {
      expect(['interrupted', 'failed']).toContain(settled.status);
      expect(settled.verification).toBeUndefined();
    }
    expect(second.status, JSON.stringify(second.error)).toBe('succeeded');
    expect(second.verification?.ok).toBe(true);
    expect(serviceExit).toBe(0);

    expect(records(stateDir, JOB).filter((r) => r.status === 'running' || r.status === 'queued')).toEqual([]);
    expect(cloneProcesses(harness.sandbox.root)).toEqual([]);
    expect(processesMatching(`-D ${dataDir()}`).filter((p) => /pg_ctl|postgres -C/.test(p.cmdline))).toEqual([]);
    expect(processesMatching(harness.sandbox.root).filter((p) => /db-refresher-child/.test(p.cmdline))).toEqual([]);
    expect(await sourceReplication(harness)).toEqual({ senders: 0, slots: 0 });
    // The copy is open on its port, and its private socket directory is gone.
    expect(await tcpAccepts(targetPort)).toBe(true);
    expect(existsSync(privateSocketDir(dataDir(), tmpdir()))).toBe(false);
  }, 240_000);
}
