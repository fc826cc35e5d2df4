import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import { classifyLog } from '../../src/failures.js';
import { EVIDENCE_LINES, REDACTED, redactLines, redactRunError, redactText, secretValuesOf } from '../../src/run/evidence.js';
import { CAPTURED, LOGGED_PASSWORD } from '../fixtures/child-output/captured.js';

describe('classifying what the real programs printed', () => {
  it.each(Object.entries(CAPTURED))('%s', (_name, { lines, class: expected }) => {
    const { class: found, evidence } = classifyLog(lines);
    expect(found).toBe(expected);
    // The evidence is one of the program's own lines.
    expect(lines).toContain(evidence[0]);
  });
});

describe('redacting evidence', () => {
  it('hides a password the server logged with a failed statement, known to the config or not', () => {
    expect(redactLines(LOGGED_PASSWORD.lines, [LOGGED_PASSWORD.secret]).join('\n')).not.toContain(LOGGED_PASSWORD.secret);
    const unknown = redactLines(LOGGED_PASSWORD.lines, []);
    expect(unknown.join('\n')).not.toContain(LOGGED_PASSWORD.secret);
    expect(unknown[2]).toBe(`2026-12-02 12:53:03.726 UTC [1722] STATEMENT:  ALTER ROLE nobody_here PASSWORD '${REDACTED}'`);
  });

  it('hides passwords in connection strings and URIs, and keeps the rest of the line readable', () => {
    expect(redactText("connecting with host=db port=5432 user=rep password='a b\\'c' sslmode=require", [])).toBe(
      `connecting with host=db port=5432 user=rep password=${REDACTED} sslmode=require`,
    );
    expect(redactText('password=hunter22 dbname=app', [])).toBe(`password=${REDACTED} dbname=app`);
    expect(redactText('postgresql://rep:s3cr%40t@db:5432/app failed', [])).toBe(`postgresql://rep:${REDACTED}@db:5432/app failed`);
  });

  it('hides known secret values wherever they appear, and leaves lines without any alone', () => {
    const lines = CAPTURED['wrong password']?.lines ?? [];
    expect(redactLines(lines, ['rp-1234'])).toEqual(lines);
    expect(redactText('*:*:*:*:rp-1234 in passfile', ['rp-1234'])).toBe(`*:*:*:*:${REDACTED} in passfile`);
    // Too short to be told from ordinary words: not replaced everywhere.
    expect(redactText('a b c', ['a'])).toBe('a b c');
  });

  it('keeps the last lines only', () => {
    const many = Array.from({ length: 50 }, (_, i) => `line ${i}`);
    const kept = redactLines(many, []);
    expect(kept).toHaveLength(EVIDENCE_LINES);
    expect(kept.at(-1)).toBe('line 49');
  });

  it('redacts a run error: message and details', () => {
    const error = redactRunError(
      { phase: 'clone', class: 'unknown', message: 'pg_basebackup failed: password=abc123', hint: 'h', details: ['x password=abc123'] },
      [],
    );
    expect(JSON.stringify(error)).not.toContain('abc123');
  });

  it("finds every secret in a job's configuration", () => {
    const job = {
      name: 'qa',
      source: { password: new Secret('rp-secret', 'env:A'), sslKey: new Secret('key-secret', 'file:/k') },
      verify: { owner: { password: new Secret('op-secret', 'env:B') }, databases: [{ name: 'app' }] },
    };
    expect(secretValuesOf(job).sort()).toEqual(['key-secret', 'op-secret', 'rp-secret']);
  });
});
