import { describe, expect, it } from 'vitest';
import { compareDatabase, totalTables } from '../../src/checks/compare.js';
import type { VerifiedDatabase } from '../../src/config/types.js';
import type { Check, DatabaseFigures } from '../../src/run/facts.js';

function figures(over: Partial<DatabaseFigures> = {}): DatabaseFigures {
  return { database: 'app', sizeBytes: 1000, owner: 'app_owner', tablesBySchema: { public: 10, audit: 2 }, ...over };
}

function expectation(over: Partial<VerifiedDatabase> = {}): VerifiedDatabase {
  return { name: 'app', requiredTables: [], ...over };
}

function check(checks: Check[], name: string): Check {
  const found = checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check named ${JSON.stringify(name)}; got ${checks.map((c) => c.name).join(', ')}`);
  return found;
}

describe('totalTables', () => {
  it('sums the tables of every schema', () => {
    expect(totalTables(figures({ tablesBySchema: { public: 10, audit: 2, sales: 5 } }))).toBe(17);
  });

  it('is 0 for a database without user tables', () => {
    expect(totalTables(figures({ tablesBySchema: {} }))).toBe(0);
  });
});

describe('compareDatabase against the source', () => {
  it('passes both checks when the copy has the same figures as the source', () => {
    const checks = compareDatabase({ expected: expectation(), source: figures(), copy: figures(), sizeTolerancePercent: 10 });
    expect(checks.map((c) => c.name)).toEqual(['app: table counts', 'app: size']);
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(checks.every((c) => c.failureClass === undefined)).toBe(true);
    expect(check(checks, 'app: table counts').message).toContain('12 tables in 2 schemas');
  });

  it('says "1 table in 1 schema", not "1 tables in 1 schemas"', () => {
    const one = figures({ tablesBySchema: { public: 1 } });
    const checks = compareDatabase({
      expected: expectation({ minTables: 1, requiredTables: ['public.t'] }),
      source: one,
      copy: { ...one, presentTables: ['public.t'] },
      sizeTolerancePercent: 10,
    });
    expect(check(checks, 'app: table counts').message).toBe('1 table in 1 schema, same as the source');
    expect(check(checks, 'app: minimum tables').message).toBe('1 table (at least 1 expected)');
    expect(check(checks, 'app: required tables').message).toBe('the required table exists');
  });

  it('fails the table counts when one schema differs, naming that schema and both counts', () => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures(),
      copy: figures({ tablesBySchema: { public: 9, audit: 2 } }),
      sizeTolerancePercent: 10,
    });
    const counts = check(checks, 'app: table counts');
    expect(counts.ok).toBe(false);
    expect(counts.failureClass).toBe('verification-failed');
    expect(counts.message).toContain('public: source 10, copy 9');
    // The schema that matches is not listed as a difference.
    expect(counts.message).not.toContain('audit');
    // Size is judged on its own.
    expect(check(checks, 'app: size').ok).toBe(true);
  });

  it('fails when the copy has the same total but spread differently over schemas', () => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures({ tablesBySchema: { public: 10, audit: 2 } }),
      copy: figures({ tablesBySchema: { public: 11, audit: 1 } }),
      sizeTolerancePercent: 10,
    });
    const counts = check(checks, 'app: table counts');
    expect(counts.ok).toBe(false);
    expect(counts.message).toContain('audit: source 2, copy 1');
    expect(counts.message).toContain('public: source 10, copy 11');
  });

  it('counts a schema missing from the copy as 0 tables there', () => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures(),
      copy: figures({ tablesBySchema: { public: 10 } }),
      sizeTolerancePercent: 10,
    });
    const counts = check(checks, 'app: table counts');
    expect(counts.ok).toBe(false);
    expect(counts.message).toContain('audit: source 2, copy 0');
  });

  it('counts a schema that exists only on the copy as 0 tables on the source', () => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures(),
      copy: figures({ tablesBySchema: { public: 10, audit: 2, scratch: 3 } }),
      sizeTolerancePercent: 10,
    });
    const counts = check(checks, 'app: table counts');
    expect(counts.ok).toBe(false);
    expect(counts.message).toContain('scratch: source 0, copy 3');
  });

  it.each([
    [1100, true],
    [900, true],
    [1000, true],
    [1101, false],
    [899, false],
  ])('with source 1000 B and 10%% tolerance, a copy of %i B passes: %s', (copySize, ok) => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures({ sizeBytes: 1000 }),
      copy: figures({ sizeBytes: copySize }),
      sizeTolerancePercent: 10,
    });
    const size = check(checks, 'app: size');
    expect(size.ok).toBe(ok);
    expect(size.failureClass).toBe(ok ? undefined : 'verification-failed');
  });

  it('says how far apart the sizes are and what the tolerance is', () => {
    const checks = compareDatabase({
      expected: expectation(),
      source: figures({ sizeBytes: 1000 }),
      copy: figures({ sizeBytes: 1250 }),
      sizeTolerancePercent: 10,
    });
    const size = check(checks, 'app: size');
    expect(size.ok).toBe(false);
    expect(size.message).toContain('25.0% apart');
    expect(size.message).toContain('tolerance 10%');
  });

  it('with 0% tolerance only an identical size passes', () => {
    const run = (copySize: number) =>
      check(
        compareDatabase({
          expected: expectation(),
          source: figures({ sizeBytes: 8_000_000 }),
          copy: figures({ sizeBytes: copySize }),
          sizeTolerancePercent: 0,
        }),
        'app: size',
      ).ok;
    expect(run(8_000_000)).toBe(true);
    expect(run(8_000_001)).toBe(false);
    expect(run(7_999_999)).toBe(false);
  });

  it('with a zero-size source, an empty copy passes and any non-empty copy fails', () => {
    const run = (copySize: number) =>
      check(
        compareDatabase({
          expected: expectation(),
          source: figures({ sizeBytes: 0 }),
          copy: figures({ sizeBytes: copySize }),
          sizeTolerancePercent: 50,
        }),
        'app: size',
      );
    expect(run(0).ok).toBe(true);
    expect(run(0).message).not.toContain('NaN');
    expect(run(1).ok).toBe(false);
    expect(run(1).message).not.toMatch(/NaN|Infinity/);
  });
});

describe("compareDatabase against the job's expectations", () => {
  it('checks minTables against the total over all schemas, inclusive', () => {
    const at = (minTables: number) =>
      check(
        compareDatabase({ expected: expectation({ minTables }), source: undefined, copy: figures(), sizeTolerancePercent: 10 }),
        'app: minimum tables',
      );
    expect(at(12).ok).toBe(true);
    const failing = at(13);
    expect(failing.ok).toBe(false);
    expect(failing.failureClass).toBe('verification-failed');
    expect(failing.message).toContain('only 12 tables');
    expect(failing.message).toContain('at least 13');
  });

  it('minTables 0 passes on an empty database (0 is a real expectation, not "unset")', () => {
    const checks = compareDatabase({
      expected: expectation({ minTables: 0 }),
      source: undefined,
      copy: figures({ tablesBySchema: {} }),
      sizeTolerancePercent: 10,
    });
    expect(check(checks, 'app: minimum tables').ok).toBe(true);
  });

  it('checks minSizeBytes, inclusive', () => {
    const at = (minSizeBytes: number) =>
      check(
        compareDatabase({
          expected: expectation({ minSizeBytes }),
          source: undefined,
          copy: figures({ sizeBytes: 2048 }),
          sizeTolerancePercent: 10,
        }),
        'app: minimum size',
      );
    expect(at(2048).ok).toBe(true);
    const failing = at(2049);
    expect(failing.ok).toBe(false);
    expect(failing.failureClass).toBe('verification-failed');
    expect(failing.message).toContain('2.0 KiB');
  });

  it('names exactly the required tables that are missing', () => {
    const checks = compareDatabase({
      expected: expectation({ requiredTables: ['public.users', 'public.orders', 'audit.log'] }),
      source: undefined,
      copy: figures({ presentTables: ['public.users'] }),
      sizeTolerancePercent: 10,
    });
    const required = check(checks, 'app: required tables');
    expect(required.ok).toBe(false);
    expect(required.failureClass).toBe('verification-failed');
    expect(required.message).toContain('public.orders');
    expect(required.message).toContain('audit.log');
    expect(required.message).not.toContain('public.users');
  });

  it('treats all required tables as missing when the copy reports none present', () => {
    const checks = compareDatabase({
      expected: expectation({ requiredTables: ['public.users'] }),
      source: undefined,
      copy: figures(),
      sizeTolerancePercent: 10,
    });
    const required = check(checks, 'app: required tables');
    expect(required.ok).toBe(false);
    expect(required.message).toContain('public.users');
  });

  it('passes when every required table is present', () => {
    const checks = compareDatabase({
      expected: expectation({ requiredTables: ['public.users', 'audit.log'] }),
      source: undefined,
      copy: figures({ presentTables: ['audit.log', 'public.users', 'public.extra'] }),
      sizeTolerancePercent: 10,
    });
    expect(check(checks, 'app: required tables').ok).toBe(true);
  });

  it('without source figures, runs only the expectation checks', () => {
    const checks = compareDatabase({
      expected: expectation({ minTables: 1, minSizeBytes: 1, requiredTables: ['public.users'] }),
      source: undefined,
      copy: figures({ presentTables: ['public.users'] }),
      sizeTolerancePercent: 10,
    });
    expect(checks.map((c) => c.name)).toEqual(['app: minimum tables', 'app: minimum size', 'app: required tables']);
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  it('without source figures or expectations there is nothing to check', () => {
    expect(compareDatabase({ expected: expectation(), source: undefined, copy: figures(), sizeTolerancePercent: 10 })).toEqual([]);
  });

  it('reports expectation failures alongside source comparison failures', () => {
    const checks = compareDatabase({
      expected: expectation({ name: 'reports', minTables: 50 }),
      source: figures({ database: 'reports' }),
      copy: figures({ database: 'reports', tablesBySchema: { public: 1 } }),
      sizeTolerancePercent: 10,
    });
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['reports: table counts', false],
      ['reports: size', true],
      ['reports: minimum tables', false],
    ]);
  });
});
