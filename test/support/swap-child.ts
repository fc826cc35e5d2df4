/**
 * Runs a local blue/green swap in a process of its own, so a test can kill it with SIGKILL at a chosen
 * step: it prints one JSON line per finished step (`{"msg":"swap step done",...}`) on stdout.
 * Argument: JSON of LocalSlotsOptions without the functions.
 */
import { pino } from 'pino';
import { serverOsUser } from '../../src/postgres/os-user.js';
import { LocalSlots } from '../../src/targets/local/swap.js';

const options = JSON.parse(process.argv[2] ?? '{}') as { job: string; dataDir: string; host: string; port: number; drainSeconds: number };
const log = pino({ level: 'info' }, pino.destination({ fd: 1, sync: true }));
const slots = new LocalSlots({ ...options, runAs: serverOsUser(), env: process.env, startTimeoutSeconds: 60 });
slots
  .run({ log, signal: new AbortController().signal, drainSeconds: options.drainSeconds, now: () => new Date() })
  .then((outcome) => {
    log.info({ outcome }, 'swap finished');
    process.exit(0);
  })
  .catch((error: unknown) => {
    log.error({ err: error }, 'swap failed');
    process.exit(1);
  });
