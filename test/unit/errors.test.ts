import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE, RefresherError } from '../../src/errors.js';

/** One error vocabulary: the README's error table lists exactly the coded errors, with their status and exit code. */

const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');

function readmeErrorRows(): Array<{ slug: string; http: number; exit: number }> {
  const section = readme.slice(readme.indexOf('#### Errors'));
  const table = section.slice(section.indexOf('| `error` | HTTP | exit | when |'));
  const rows: Array<{ slug: string; http: number; exit: number }> = [];
  for (const line of table.split('\n').slice(2)) {
    const match = /^\| `([a-z-]+)` \| (\d{3}) \| ([12]) \|/.exec(line);
    if (!match) break;
    rows.push({ slug: match[1] as string, http: Number(match[2]), exit: Number(match[3]) });
  }
  return rows;
}

describe('error table', () => {
  it('the README lists exactly the coded errors, each with its HTTP status and exit code', () => {
    const expected = Object.values(ERROR_TABLE).map((e) => ({ slug: e.slug, http: e.httpStatus, exit: e.exitCode }));
    expect(readmeErrorRows()).toEqual(expected);
  });

  it('slugs are unique, so a client can tell every error apart', () => {
    const slugs = Object.values(ERROR_TABLE).map((e) => e.slug);
    expect(new Set(slugs).size).toBe(slugs.length);
  });

  it('a coded error carries its slug, status and exit code', () => {
    const error = new RefresherError('JOB_SUSPENDED', 'suspended');
    expect([error.slug, error.httpStatus, error.exitCode]).toEqual(['job-suspended', 409, 2]);
  });
});
