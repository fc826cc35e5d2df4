import { describe, expect, it } from 'vitest';
import { classifyError, classifyLog, classifyText, FAILURE_CLASSES, FAILURE_HINTS } from '../../src/failures.js';

describe('classifyText', () => {
  it.each([
    ['FATAL:  number of requested standby connections exceeds max_wal_senders (currently 2)', 'wal-senders-exhausted'],
    [
      'pg_basebackup: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host "127.0.0.1", user "replicator", no encryption',
      'pg-hba-rejected',
    ],
    ['FATAL:  must be superuser or replication role to start walsender', 'replication-not-permitted'],
    ['FATAL:  permission denied to start WAL sender', 'replication-not-permitted'],
    ['FATAL:  password authentication failed for user "replicator"', 'authentication-failed'],
    ['pg_basebackup: error: incompatible server version 17.2', 'version-mismatch'],
    [
      'DETAIL:  The data directory was initialized by PostgreSQL version 16, which is not compatible with this version 17.2.',
      'version-mismatch',
    ],
    ['pg_basebackup: error: could not write to file "base.tar": No space left on device', 'disk-full'],
    ['connection to server at "10.0.0.9", port 5432 failed: Connection refused', 'source-unreachable'],
    ['could not translate host name "db.invalid" to address: Name or service not known', 'source-unreachable'],
    ['FATAL:  sorry, too many clients already', 'connection-limit'],
    ['SSL error: certificate verify failed', 'tls-failed'],
    ['something nobody has seen before', 'unknown'],
  ])('%s → %s', (text, expected) => {
    expect(classifyText(text)).toBe(expected);
  });
});

describe('classifyLog', () => {
  it('uses the last line that names a cause, and keeps it as evidence', () => {
    const result = classifyLog([
      'pg_basebackup: initiating base backup, waiting for checkpoint to complete',
      'pg_basebackup: error: connection to server failed: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 1)',
      'pg_basebackup: removing data directory "/x"',
    ]);
    expect(result.class).toBe('wal-senders-exhausted');
    expect(result.evidence[0]).toContain('max_wal_senders');
  });

  it('falls back to unknown with the last lines', () => {
    const result = classifyLog(['a', 'b', 'c']);
    expect(result).toEqual({ class: 'unknown', evidence: ['a', 'b', 'c'] });
  });
});

describe('faults in the middle of a clone', () => {
  it('a source that stops or goes away mid-copy is source-unreachable, not unknown', () => {
    for (const line of [
      'pg_basebackup: error: could not read COPY data: server closed the connection unexpectedly',
      'pg_basebackup: error: could not receive data from WAL stream: server closed the connection unexpectedly',
      'pg_basebackup: error: FATAL:  terminating connection due to administrator command',
      'pg_basebackup: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is shutting down',
    ]) {
      expect(classifyLog(['pg_basebackup: initiating base backup, waiting for checkpoint to complete', line]).class, line).toBe(
        'source-unreachable',
      );
    }
  });

  it('a target port taken while the copy was made is target-port-in-use', () => {
    const log = [
      '2026-12-02 10:00:00.000 UTC [123] LOG:  starting PostgreSQL 15.18',
      '2026-12-02 10:00:00.001 UTC [123] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',
      '2026-12-02 10:00:00.001 UTC [123] HINT:  Is another postmaster already running on port 5433? If not, wait a few seconds and retry.',
      '2026-12-02 10:00:00.001 UTC [123] WARNING:  could not create listen socket for "127.0.0.1"',
      '2026-12-02 10:00:00.001 UTC [123] FATAL:  could not create any TCP/IP sockets',
      'pg_ctl: could not start server',
    ];
    expect(classifyLog(log).class).toBe('target-port-in-use');
  });
});

describe('classifyError', () => {
  it('reads errno codes and SQLSTATEs', () => {
    expect(classifyError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).toBe(
      'source-unreachable',
    );
    expect(classifyError(Object.assign(new Error('x'), { code: '28P01' }))).toBe('authentication-failed');
    expect(classifyError(Object.assign(new Error('x'), { code: '28000' }))).toBe('pg-hba-rejected');
  });
});

it('has a hint for every class', () => {
  for (const failureClass of FAILURE_CLASSES) expect(FAILURE_HINTS[failureClass].length).toBeGreaterThan(20);
});
