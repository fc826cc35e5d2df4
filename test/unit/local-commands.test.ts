import { describe, expect, it } from 'vitest';
import type { LocalTargetConfig } from '../../src/config/types.js';
import {
  buildConninfo,
  copyOverrides,
  MARKER_FILE,
  type Marker,
  parseBasebackupProgress,
  passfileLine,
  pgBasebackupArgs,
  quoteConninfoValue,
} from '../../src/targets/local/commands.js';
import { type DataDirState, refusalReason } from '../../src/targets/local/data-dir.js';

describe('quoteConninfoValue', () => {
  it('wraps a plain value in single quotes', () => {
    expect(quoteConninfoValue('db.example.com')).toBe("'db.example.com'");
  });

  it('escapes a single quote with a backslash', () => {
    expect(quoteConninfoValue("it's")).toBe(String.raw`'it\'s'`);
  });

  it('escapes a backslash with a backslash', () => {
    expect(quoteConninfoValue(String.raw`C:\certs`)).toBe(String.raw`'C:\\certs'`);
  });

  it('escapes a backslash before a quote without the two escapes interfering', () => {
    // Input: backslash, quote. Each is escaped once: \\ then \'.
    expect(quoteConninfoValue(String.raw`\'`)).toBe(String.raw`'\\\''`);
  });

  it('keeps spaces and = inside the quotes', () => {
    expect(quoteConninfoValue('a b=c')).toBe("'a b=c'");
  });
});

describe('buildConninfo', () => {
  it('joins key=quoted-value pairs, dropping undefined and empty values', () => {
    expect(buildConninfo({ host: 'db', port: 5432, user: 'replicator', sslcert: undefined, sslkey: '', sslmode: 'require' })).toBe(
      "host='db' port='5432' user='replicator' sslmode='require'",
    );
  });

  it('keeps 0, which is a value and not an absent one', () => {
    expect(buildConninfo({ connect_timeout: 0 })).toBe("connect_timeout='0'");
  });

  it('is empty when nothing is set', () => {
    expect(buildConninfo({ host: undefined })).toBe('');
  });
});

describe('passfileLine', () => {
  it('matches any host, port, database and user, and ends with one newline', () => {
    expect(passfileLine('secret')).toBe('*:*:*:*:secret\n');
  });

  it('escapes : and \\ in the password', () => {
    expect(passfileLine(String.raw`pa:ss\word`)).toBe(String.raw`*:*:*:*:pa\:ss\\word` + '\n');
  });

  it('escapes a backslash that precedes a colon exactly once each', () => {
    expect(passfileLine(String.raw`\:`)).toBe(String.raw`*:*:*:*:\\\:` + '\n');
  });
});

describe('pgBasebackupArgs', () => {
  const conninfo = buildConninfo({
    host: 'db.example.com',
    port: 5432,
    user: 'replicator',
    sslmode: 'prefer',
    application_name: 'db-refresher-qa',
    connect_timeout: 10,
  });
  const args = pgBasebackupArgs({ pgdata: '/srv/qa.db-refresher-staging/pgdata', conninfo });

  const valueAfter = (flag: string) => {
    const i = args.indexOf(flag);
    return i === -1 ? undefined : args[i + 1];
  };

  it('streams WAL, asks for a fast checkpoint and never prompts for a password', () => {
    expect(valueAfter('-X')).toBe('stream');
    expect(valueAfter('-c')).toBe('fast');
    expect(args).toContain('-w');
    expect(args).not.toContain('-W');
  });

  it('writes into the given directory and connects with the given conninfo as one argument', () => {
    expect(valueAfter('-D')).toBe('/srv/qa.db-refresher-staging/pgdata');
    expect(valueAfter('-d')).toBe(conninfo);
  });

  it('reports progress, which the clone phase parses', () => {
    expect(args).toContain('-P');
  });

  it('carries no password: it goes through PGPASSFILE, not the command line', () => {
    for (const arg of args) expect(arg).not.toMatch(/password/i);
  });
});

describe('copyOverrides', () => {
  const target: LocalTargetConfig = {
    kind: 'local',
    dataDir: '/srv/qa',
    port: 5433,
    host: '127.0.0.1',
    adopt: false,
    startTimeoutSeconds: 300,
    cloneTimeoutSeconds: 21_600,
  };
  const text = copyOverrides(target, 'qa', '20240301T100000000Z-abcdef');
  const lines = text.split('\n');

  it("sets the copy's own port and listen address", () => {
    expect(lines).toContain('port = 5433');
    expect(lines).toContain("listen_addresses = '127.0.0.1'");
  });

  it('turns archiving off and Unix sockets off', () => {
    expect(lines).toContain("archive_mode = 'off'");
    expect(lines).toContain("unix_socket_directories = ''");
  });

  it('starts on a new line, so appending to a file without a final newline is safe', () => {
    expect(text.startsWith('\n')).toBe(true);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('comments lines that are not settings, naming the job and run', () => {
    const comment = lines.find((l) => l.startsWith('#'));
    expect(comment).toContain('"qa"');
    expect(comment).toContain('20240301T100000000Z-abcdef');
    for (const line of lines) if (line !== '' && !line.startsWith('#')) expect(line).toMatch(/^[a-z_]+ = /);
  });

  it('quotes a listen address with the configuration-file escape for single quotes', () => {
    const odd = copyOverrides({ ...target, host: "a'b" }, 'qa', 'r');
    expect(odd.split('\n')).toContain("listen_addresses = 'a''b'");
  });
});

describe('parseBasebackupProgress', () => {
  it('parses a progress line', () => {
    expect(parseBasebackupProgress('  1234/56789 kB (2%), 0/1 tablespace')).toEqual({ doneKb: 1234, totalKb: 56789, percent: 2 });
  });

  it('parses a verbose progress line that ends with a file name', () => {
    expect(parseBasebackupProgress('56789/56789 kB (100%), 1/1 tablespace (/srv/qa/pgdata/global/pg_control)')).toEqual({
      doneKb: 56789,
      totalKb: 56789,
      percent: 100,
    });
  });

  it.each([
    'pg_basebackup: initiating base backup, waiting for checkpoint to complete',
    'pg_basebackup: write-ahead log end point: 0/2000100',
    'pg_basebackup: base backup completed',
    '',
  ])('returns undefined for %j', (line) => {
    expect(parseBasebackupProgress(line)).toBeUndefined();
  });
});

describe('refusalReason', () => {
  const marker = (over: Partial<Marker> = {}): Marker => ({
    managedBy: 'db-refresher',
    job: 'qa',
    dataDir: '/srv/qa',
    runId: '20240301T100000000Z-abcdef',
    createdAt: '2024-03-01T10:00:00.000Z',
    source: { host: 'db.example.com', port: 5432 },
    ...over,
  });
  const input = { dataDir: '/srv/qa', job: 'qa', adopt: false, jobIndexHint: 'jobs[0]' };
  const reason = (state: DataDirState, adopt = false) => refusalReason(state, { ...input, adopt });

  it.each([{ kind: 'missing' }, { kind: 'empty' }, { kind: 'ours', marker: marker() }] as DataDirState[])(
    'allows a $kind directory',
    (state) => {
      expect(reason(state)).toBeUndefined();
      expect(reason(state, true)).toBeUndefined();
    },
  );

  it('refuses an unmarked data directory and says how to adopt it', () => {
    const message = reason({ kind: 'unmarked-pgdata' });
    expect(message).toBeDefined();
    expect(message).toContain('/srv/qa');
    expect(message).toContain(MARKER_FILE);
    expect(message).toContain('jobs[0].target.adopt: true');
  });

  it('allows an unmarked data directory when adopt is on', () => {
    expect(reason({ kind: 'unmarked-pgdata' }, true)).toBeUndefined();
  });

  it("refuses another job's directory, naming that job, even with adopt", () => {
    const state: DataDirState = { kind: 'other-job', marker: marker({ job: 'reporting' }) };
    for (const adopt of [false, true]) {
      const message = reason(state, adopt);
      expect(message).toContain('"reporting"');
      expect(message).toContain('"qa"');
    }
  });

  it('refuses a directory that is not a data directory, even with adopt', () => {
    for (const adopt of [false, true]) {
      const message = reason({ kind: 'not-pgdata' }, adopt);
      expect(message).toContain('PG_VERSION');
      expect(message).toContain('/srv/qa');
    }
  });

  it('refuses a copied or moved directory, naming where its marker was written, even with adopt', () => {
    const state: DataDirState = { kind: 'moved', marker: marker({ dataDir: '/srv/old-qa' }) };
    for (const adopt of [false, true]) {
      const message = reason(state, adopt);
      expect(message).toContain('/srv/old-qa');
      expect(message).toContain('jobs[0].target.adopt: true');
    }
  });
});
