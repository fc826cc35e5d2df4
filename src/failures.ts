/**
 * Failure classes and their hints. Classifying is pure: it reads an error's
 * SQLSTATE, its errno, or lines of log text (pg_basebackup's stderr here, a
 * CNPG Job's pod log later) and names the cause in the words of the guide's
 * troubleshooting section.
 */

export const FAILURE_CLASSES = [
  'source-unreachable',
  'authentication-failed',
  'pg-hba-rejected',
  'replication-not-permitted',
  'wal-senders-exhausted',
  'connection-limit',
  'tls-failed',
  'version-mismatch',
  'tablespace-mismatch',
  'insufficient-space',
  'disk-full',
  'unsafe-target',
  'target-stuck',
  'target-port-in-use',
  'verification-failed',
  'prepare-failed',
  'masking-failed',
  'timeout',
  'interrupted',
  'unknown',
] as const;

export type FailureClass = (typeof FAILURE_CLASSES)[number];

export const FAILURE_HINTS: Readonly<Record<FailureClass, string>> = {
  'source-unreachable':
    'Check network connectivity: the target must reach the source PostgreSQL port (default 5432). Check the host name, that the server is running, and any firewall or NetworkPolicy in between.',
  'authentication-failed':
    'For password auth: verify the secret exists and has the correct key, and check that pg_hba.conf on the source allows the connection. For TLS auth: verify the key, certificate and CA exist, check certificate validity, and ensure sslmode is set correctly.',
  'pg-hba-rejected':
    'Configure pg_hba.conf on the source to accept replication connections from the target, e.g. "host replication streaming_replica all md5" (use more restrictive rules in production), then reload the source.',
  'replication-not-permitted':
    'The replication user needs REPLICATION LOGIN privileges on the source: ALTER ROLE <user> WITH REPLICATION LOGIN.',
  'wal-senders-exhausted':
    "Increase max_wal_senders on the source cluster or wait for available slots: a local clone takes 2 (one for the backup, one for WAL streaming), a CloudNativePG clone 3 (its Job's connection probe stays open while pg_basebackup runs).",
  'connection-limit': 'The source has no free connection slots: raise max_connections on the source or retry when it is less busy.',
  'tls-failed':
    'For TLS auth: verify all three secrets exist (key, cert, CA), check certificate validity and that the CA signed the server certificate, and ensure sslmode is set correctly.',
  'version-mismatch': 'Ensure both sides use the same PostgreSQL major version: source and target must have same PostgreSQL version.',
  'tablespace-mismatch': 'Source and target must have the same tablespaces configuration.',
  'insufficient-space':
    'Free space on the target, or give it a larger volume: it must hold the whole source cluster plus WAL written during the copy.',
  'disk-full': 'The target ran out of disk space during the copy: give it more space than the source cluster uses, then retry.',
  'unsafe-target': 'db-refresher refused to touch the target; the message says why and how to allow it explicitly.',
  'target-stuck':
    'The target stopped where only a person can help (CloudNativePG: a phase such as "Unable to create required cluster objects" or "Invalid cluster definition"); the message carries the operator\'s reason. Fix what it names, then run the job again.',
  'target-port-in-use': 'Another process listens on the target port: stop it, or give the target another port.',
  'verification-failed': "The copy does not match the source or the job's expectations; the verification results list each failing check.",
  'prepare-failed':
    "A prepare step of the job failed on the copy, so the copy was not opened to its users: fix the step's SQL (the message names the step, the error and its position) and run again.",
  'masking-failed':
    'Masking the copy failed or was refused before it started; the details name each table and column. The copy stays closed to everyone but db-refresher.',
  timeout: 'A phase took longer than its timeout: check the source load and network throughput, or raise the timeout.',
  interrupted: 'db-refresher stopped during this run; the run record shows the last phase that completed. Run the job again.',
  unknown: 'See the message and the last log lines for the underlying error.',
};

interface Rule {
  test: RegExp;
  class: FailureClass;
}

// Order matters: the first match wins, so specific texts come before generic ones.
const TEXT_RULES: readonly Rule[] = [
  { test: /number of requested standby connections exceeds max_wal_senders/i, class: 'wal-senders-exhausted' },
  { test: /no pg_hba\.conf entry for replication connection/i, class: 'pg-hba-rejected' },
  {
    test: /must be superuser or replication role|permission denied to start WAL sender|REPLICATION attribute/i,
    class: 'replication-not-permitted',
  },
  { test: /no pg_hba\.conf entry/i, class: 'pg-hba-rejected' },
  {
    test: /password authentication failed|authentication failed for user|no password supplied|SASL authentication|password is required/i,
    class: 'authentication-failed',
  },
  {
    test: /incompatible server version|database files are incompatible with server|same PostgreSQL version|was initialized by PostgreSQL version/i,
    class: 'version-mismatch',
  },
  { test: /No space left on device|ENOSPC|could not extend file|disk full/i, class: 'disk-full' },
  { test: /too many clients already|remaining connection slots are reserved/i, class: 'connection-limit' },
  // Only our own servers bind: the copy's postmaster found its port taken.
  { test: /Address already in use|EADDRINUSE/i, class: 'target-port-in-use' },
  { test: /certificate|SSL error|SSL SYSCALL|tlsv1 alert|server does not support SSL|sslmode value|SSL connection/i, class: 'tls-failed' },
  {
    // The source went away mid-copy: stopped, restarted or cut off.
    test: /server closed the connection unexpectedly|terminating connection due to administrator command|the database system is shutting down|could not receive data from WAL stream|unexpected termination of replication stream|ECONNRESET|ECONNREFUSED|Connection refused|could not connect to server|could not translate host name|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|timeout expired|Connection terminated unexpectedly|Is the server running/i,
    class: 'source-unreachable',
  },
];

const SQLSTATE_RULES: Readonly<Record<string, FailureClass>> = {
  '28P01': 'authentication-failed',
  '53100': 'disk-full',
};

export interface Classified {
  class: FailureClass;
  hint: string;
}

export function classifyText(text: string): FailureClass {
  for (const rule of TEXT_RULES) if (rule.test.test(text)) return rule.class;
  return 'unknown';
}

/** Classifies log output: the last line that names a known cause wins. */
export function classifyLog(lines: readonly string[]): { class: FailureClass; evidence: string[] } {
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const line = lines[i] as string;
    const found = classifyText(line);
    if (found !== 'unknown') return { class: found, evidence: [line] };
  }
  return { class: 'unknown', evidence: lines.slice(-5) };
}

/** Classifies an error from pg, node:net, or a child process. */
export function classifyError(error: unknown): FailureClass {
  if (error && typeof error === 'object') {
    const { code, message } = error as { code?: unknown; message?: unknown };
    const text = `${typeof message === 'string' ? message : ''} ${typeof code === 'string' ? code : ''}`;
    const byText = classifyText(text);
    if (byText !== 'unknown') return byText;
    if (typeof code === 'string' && code in SQLSTATE_RULES) return SQLSTATE_RULES[code] as FailureClass;
    // 28000 (invalid_authorization_specification) without a recognised text is an hba or role problem.
    if (code === '28000') return 'pg-hba-rejected';
  }
  return classifyText(String(error));
}

export function withHint(failureClass: FailureClass): Classified {
  return { class: failureClass, hint: FAILURE_HINTS[failureClass] };
}
