import { describe, expect, it } from 'vitest';
import { formatBytes, parseByteSize } from '../../src/config/byte-size.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('parseByteSize', () => {
  it.each([
    // Kubernetes binary quantities.
    ['10Gi', 10 * GiB],
    ['512Ki', 512 * KiB],
    ['2Ti', 2 * 1024 ** 4],
    // Kubernetes decimal quantities.
    ['500M', 500_000_000],
    ['3k', 3000],
    ['1G', 1_000_000_000],
    // PostgreSQL units, which are 1024-based.
    ['500MB', 500 * MiB],
    ['1.5GB', 1.5 * GiB],
    ['10 GB', 10 * GiB],
    ['  7 kB ', 7 * KiB],
    // Plain bytes.
    ['4096', 4096],
    ['0', 0],
    ['12B', 12],
    ['12 bytes', 12],
  ])('%j is %i bytes', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  it('reads units case-insensitively (nobody means milli-bytes)', () => {
    expect(parseByteSize('10gi')).toBe(parseByteSize('10Gi'));
    expect(parseByteSize('500m')).toBe(500_000_000);
    expect(parseByteSize('1 Mb')).toBe(MiB);
  });

  it('keeps the 1024-based PostgreSQL and the 1000-based Kubernetes units apart', () => {
    expect(parseByteSize('1MB')).not.toBe(parseByteSize('1M'));
    expect(parseByteSize('1MB')).toBe(parseByteSize('1Mi'));
  });

  it('rounds fractional results to whole bytes', () => {
    expect(parseByteSize('1.5k')).toBe(1500);
    expect(parseByteSize('0.5')).toBe(1);
    expect(Number.isInteger(parseByteSize('1.1KB'))).toBe(true);
  });

  it('accepts non-negative finite numbers as bytes', () => {
    expect(parseByteSize(1234)).toBe(1234);
    expect(parseByteSize(0)).toBe(0);
  });

  it.each(['lots', '10 Xb', '-5', '-5MB', '', '   ', 'MB', '1,5GB', '10 G B', '5 MiBs'])('rejects %j', (text) => {
    expect(parseByteSize(text)).toBeUndefined();
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %s', (n) => {
    expect(parseByteSize(n)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [500 * MiB, '500.0 MiB'],
    [10 * GiB, '10.0 GiB'],
    [1.5 * 1024 ** 4, '1.5 TiB'],
    [1024 ** 5, '1.0 PiB'],
    // PiB is the largest unit: bigger values stay in PiB.
    [2048 * 1024 ** 5, '2048.0 PiB'],
  ])('%i → %j', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('keeps the sign of a negative difference', () => {
    expect(formatBytes(-2048)).toBe('-2.0 KiB');
  });

  it('reads back what parseByteSize wrote for whole 1024-based sizes', () => {
    expect(formatBytes(parseByteSize('500MB') as number)).toBe('500.0 MiB');
    expect(formatBytes(parseByteSize('10Gi') as number)).toBe('10.0 GiB');
  });
});
