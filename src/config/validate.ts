import { checkCronExpression } from '../schedule/cron-expression.js';
import { quote } from './quote.js';
import type { RawConfig, RawJob } from './schema.js';

/**
 * Rules that span fields or jobs. Pure: takes the schema's output and returns
 * one problem line per violation, each beginning with its path.
 */

const knownZones = new Map<string, boolean>();

/** Cached per zone: a thousand jobs in one zone need one Intl.DateTimeFormat, not a thousand. */
export function isValidTimeZone(zone: string): boolean {
  let valid = knownZones.get(zone);
  if (valid === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      valid = true;
    } catch {
      valid = false;
    }
    knownZones.set(zone, valid);
  }
  return valid;
}

/** 4 or 6 for IP address literals, 0 otherwise. Kept free of node:net so this module stays pure. */
function ipVersion(host: string): 0 | 4 | 6 {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return 4;
  return host.includes(':') ? 6 : 0;
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

/** True for names and addresses that always mean "this machine". */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (LOOPBACK_NAMES.has(bare)) return true;
  if (ipVersion(bare) === 4) return bare.startsWith('127.') || bare === '0.0.0.0';
  if (ipVersion(bare) === 6) return bare === '::1' || bare === '::';
  // A Unix socket directory is this machine too.
  return bare.startsWith('/');
}

export function sameHost(a: string, b: string): boolean {
  const norm = (h: string) => h.replace(/^\[|\]$/g, '').toLowerCase();
  return norm(a) === norm(b) || (isLoopbackHost(a) && isLoopbackHost(b));
}

/** The fields the name, schedule and notify rules read, as the file has them: any of them may be missing or of the wrong type. */
export interface LooseJob {
  name?: unknown;
  schedule?: unknown;
  timezone?: unknown;
  notify?: unknown;
}

/**
 * Duplicate names, cron syntax, time zones and notify references. They read
 * the fields loosely, so they run on a file that fails the schema too: one
 * report then holds the structural problems and these (a bad cron expression
 * does not wait until a misspelt key is fixed). A field of the wrong type is
 * the schema's to report, and is skipped here.
 */
export function checkJobFields(jobs: readonly unknown[], notificationNames: readonly string[]): string[] {
  const problems: string[] = [];
  const firstJobByName = new Map<string, number>();
  jobs.forEach((value, i) => {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return;
    const job = value as LooseJob;
    const at = `jobs[${i}]`;
    if (typeof job.name === 'string') {
      const earlier = firstJobByName.get(job.name);
      if (earlier === undefined) firstJobByName.set(job.name, i);
      else problems.push(`${at}.name: duplicate job name "${job.name}" (also used by jobs[${earlier}]); job names must be unique`);
    }
    if (typeof job.schedule === 'string' && job.schedule !== '') {
      const check = checkCronExpression(job.schedule);
      if (!check.ok) problems.push(`${at}.schedule: ${quote(job.schedule)} is not a valid cron expression (${check.reason})`);
    }
    if (typeof job.timezone === 'string' && job.timezone !== '' && !isValidTimeZone(job.timezone)) {
      problems.push(`${at}.timezone: ${quote(job.timezone)} is not an IANA time zone; write e.g. UTC or Europe/Berlin`);
    }
    if (Array.isArray(job.notify)) {
      for (const [k, name] of job.notify.entries()) {
        if (typeof name !== 'string' || name === '' || notificationNames.includes(name)) continue;
        problems.push(
          `${at}.notify[${k}]: no notification target named ${quote(name)}; ${notificationNames.length ? `defined: ${notificationNames.join(', ')}` : 'define it under notifications'}`,
        );
      }
    }
  });
  return problems;
}

/**
 * Source and target rules of jobs that passed the schema, each with its index
 * in the file (a file that fails the schema still has its good jobs checked).
 */
export function checkJobTargets(jobs: ReadonlyArray<readonly [number, RawJob]>, resolvePath: (p: string) => string): string[] {
  const problems: string[] = [];
  const firstJobByDataDir = new Map<string, number>();
  const firstJobByPort = new Map<number, number>();

  for (const [i, job] of jobs) {
    const at = `jobs[${i}]`;
    const { source, target } = job;
    if (!source) continue;
    if ((source.sslCert === undefined) !== (source.sslKey === undefined)) {
      problems.push(`${at}.source.${source.sslCert ? 'sslKey' : 'sslCert'}: certificate authentication needs both sslCert and sslKey`);
    }
    if ((source.sslmode === 'verify-ca' || source.sslmode === 'verify-full') && source.sslRootCert === undefined) {
      problems.push(`${at}.source.sslRootCert: sslmode ${source.sslmode} needs the CA certificate; add sslRootCert`);
    }
    if (source.sslCert !== undefined && source.sslmode === 'disable') {
      problems.push(`${at}.source.sslmode: a client certificate is configured but sslmode is disable; use verify-full`);
    }

    if (target.kind === 'local') {
      if (sameHost(source.host, target.host) && source.port === target.port) {
        problems.push(
          `${at}.target.port: the target ${target.host}:${target.port} is the source ${source.host}:${source.port}; refreshing it would destroy the source`,
        );
      }
      const dataDir = resolvePath(target.dataDir);
      const otherDir = firstJobByDataDir.get(dataDir);
      if (otherDir === undefined) firstJobByDataDir.set(dataDir, i);
      else problems.push(`${at}.target.dataDir: ${dataDir} is also the target of jobs[${otherDir}]; each job needs its own data directory`);
      const otherPort = firstJobByPort.get(target.port);
      if (otherPort === undefined) firstJobByPort.set(target.port, i);
      else problems.push(`${at}.target.port: port ${target.port} is also used by jobs[${otherPort}]; each local target needs its own port`);
    }
  }
  return problems;
}

export function checkConfigRules(config: RawConfig, resolvePath: (p: string) => string): string[] {
  return [
    ...checkJobFields(config.jobs, Object.keys(config.notifications)),
    ...checkJobTargets(
      config.jobs.map((job, i) => [i, job] as const),
      resolvePath,
    ),
  ];
}
