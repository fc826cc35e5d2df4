import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { format, inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeSecretRef, resolveSecretRef, Secret } from '../../src/config/secret.js';

function revealed(result: ReturnType<typeof resolveSecretRef>): string {
  if (!('secret' in result)) throw new Error(`expected a secret, got problem: ${result.problem}`);
  return result.secret.reveal();
}

function problem(result: ReturnType<typeof resolveSecretRef>): string {
  if (!('problem' in result)) throw new Error('expected a problem, got a secret');
  return result.problem;
}

describe('resolveSecretRef from the environment', () => {
  it('returns the value of a set variable, with its origin', () => {
    const result = resolveSecretRef({ env: 'PW' }, { PW: 'p@ss word\n' });
    expect(revealed(result)).toBe('p@ss word\n');
    expect('secret' in result && result.secret.origin).toBe('env:PW');
  });

  it('reports an unset variable by name', () => {
    expect(problem(resolveSecretRef({ env: 'PW' }, { OTHER: 'x' }))).toContain('PW');
  });

  it('treats an empty variable like an unset one', () => {
    expect(problem(resolveSecretRef({ env: 'PW' }, { PW: '' }))).toContain('PW');
  });
});

describe('resolveSecretRef from a file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'dbr-secret-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, content: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  it('reads the value, with its origin', () => {
    const p = file('pw', 'from-a-mounted-secret');
    const result = resolveSecretRef({ file: p }, {});
    expect(revealed(result)).toBe('from-a-mounted-secret');
    expect('secret' in result && result.secret.origin).toBe(`file:${p}`);
  });

  it.each([
    ['a\n', 'a'],
    ['a\r\n', 'a'],
    ['a\n\n', 'a\n'],
    ['a', 'a'],
    ['  a  \n', '  a  '],
    ['line1\nline2\n', 'line1\nline2'],
  ])('drops one final newline: %j → %j', (content, value) => {
    expect(revealed(resolveSecretRef({ file: file('pw', content) }, {}))).toBe(value);
  });

  it('reports a missing file as not existing', () => {
    const p = path.join(dir, 'nope');
    const message = problem(resolveSecretRef({ file: p }, {}));
    expect(message).toContain(p);
    expect(message).toContain('does not exist');
  });

  it('reports an empty file, and a file holding only a newline, as empty', () => {
    expect(problem(resolveSecretRef({ file: file('empty', '') }, {}))).toContain('is empty');
    expect(problem(resolveSecretRef({ file: file('newline', '\n') }, {}))).toContain('is empty');
  });

  it('reports a directory as unreadable, with the reason', () => {
    const sub = path.join(dir, 'sub');
    mkdirSync(sub);
    const message = problem(resolveSecretRef({ file: sub }, {}));
    expect(message).toContain(sub);
    expect(message).toContain('EISDIR');
  });

  // root reads any file regardless of its mode, so this cannot be set up as root.
  it.skipIf(process.getuid?.() === 0)('reports a file without read permission as not readable', () => {
    const p = file('locked', 'x');
    chmodSync(p, 0o000);
    expect(problem(resolveSecretRef({ file: p }, {}))).toContain('is not readable by this process');
  });
});

describe('describeSecretRef', () => {
  it('names the source without the value', () => {
    expect(describeSecretRef({ env: 'PW' })).toBe('env:PW');
    expect(describeSecretRef({ file: '/run/secrets/pw' })).toBe('file:/run/secrets/pw');
  });
});

describe('Secret', () => {
  const value = 'correct-horse-battery-staple';
  const secret = new Secret(value, 'env:PW');
  const placeholder = '[secret env:PW]';

  it('reveal() returns the value', () => {
    expect(secret.reveal()).toBe(value);
  });

  it('JSON.stringify shows the placeholder, alone and nested', () => {
    expect(JSON.stringify(secret)).toBe(JSON.stringify(placeholder));
    expect(JSON.stringify({ source: { password: secret } })).toBe(`{"source":{"password":"${placeholder}"}}`);
  });

  it('String() and template literals show the placeholder', () => {
    expect(String(secret)).toBe(placeholder);
    expect(`${secret}`).toBe(placeholder);
    expect(`pw=${secret}`).not.toContain(value);
  });

  it('util.inspect and util.format show the placeholder, alone and nested', () => {
    expect(inspect(secret)).toBe(placeholder);
    expect(inspect({ a: { b: [secret] } }, { depth: 10 })).not.toContain(value);
    expect(inspect(secret, { showHidden: true })).not.toContain(value);
    expect(format('%s %o %O %j', secret, secret, secret, secret)).not.toContain(value);
  });

  it('has no enumerable property holding the value', () => {
    expect(Object.values(secret)).not.toContain(value);
    expect({ ...secret }).not.toHaveProperty('value');
    expect(JSON.stringify(Object.entries(secret))).not.toContain(value);
  });
});
