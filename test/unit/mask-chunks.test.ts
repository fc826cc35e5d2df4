import { describe, expect, it } from 'vitest';
import { describeRange, MIN_CHUNK_PAGES, planChunks, rangeCondition, rangeStatement } from '../../src/mask/chunks.js';

const big = { kind: 'r', serverVersion: 150004, parallel: 4, minChunkPages: 100 };

describe('planChunks: page ranges of a table masked in parallel', () => {
  it('splits into `parallel` about equal ranges from page 0, without gap or overlap, the last one open', () => {
    const ranges = planChunks({ ...big, pages: 1000 });
    expect(ranges).toEqual([{ from: 0, to: 250 }, { from: 250, to: 500 }, { from: 500, to: 750 }, { from: 750 }]);
    const uneven = planChunks({ ...big, pages: 1003, parallel: 3 });
    expect(uneven).toEqual([{ from: 0, to: 334 }, { from: 334, to: 669 }, { from: 669 }]);
    for (const [i, range] of uneven.entries()) {
      if (i > 0) expect(range.from).toBe(uneven[i - 1]?.to);
    }
  });

  it('makes fewer ranges when the table holds fewer minimum chunks than connections', () => {
    expect(planChunks({ ...big, pages: 250 })).toEqual([{ from: 0, to: 125 }, { from: 125 }]);
    expect(planChunks({ ...big, pages: 399 })).toHaveLength(3);
    expect(planChunks({ ...big, pages: 400 })).toHaveLength(4);
    expect(planChunks({ ...big, pages: 100_000 })).toHaveLength(4);
  });

  it('does not split below two minimum chunks, with one connection, a partitioned parent or before PostgreSQL 14', () => {
    const whole = [{ from: 0 }];
    expect(planChunks({ ...big, pages: 199 })).toEqual(whole);
    expect(planChunks({ ...big, pages: 200 })).toHaveLength(2);
    expect(planChunks({ ...big, pages: 0 })).toEqual(whole);
    expect(planChunks({ ...big, pages: 10_000, parallel: 1 })).toEqual(whole);
    expect(planChunks({ ...big, pages: 10_000, kind: 'p' })).toEqual(whole);
    expect(planChunks({ ...big, pages: 10_000, serverVersion: 139999 })).toEqual(whole);
    expect(planChunks({ ...big, pages: 10_000, serverVersion: 140000 })).toHaveLength(4);
  });

  it('uses a documented default minimum of 8–32 MiB (in 8 KiB pages)', () => {
    expect(MIN_CHUNK_PAGES).toBeGreaterThanOrEqual(1024);
    expect(MIN_CHUNK_PAGES).toBeLessThanOrEqual(4096);
    expect(planChunks({ kind: 'r', serverVersion: 160000, parallel: 4, pages: 2 * MIN_CHUNK_PAGES - 1 })).toHaveLength(1);
    expect(planChunks({ kind: 'r', serverVersion: 160000, parallel: 4, pages: 2 * MIN_CHUNK_PAGES })).toHaveLength(2);
  });
});

describe('range conditions and statements', () => {
  it('selects the pages of a range by ctid, leaving out the bounds at page 0 and at the end', () => {
    expect(rangeCondition({ from: 0, to: 250 })).toBe("ctid < '(250,0)'::tid");
    expect(rangeCondition({ from: 250, to: 500 })).toBe("ctid >= '(250,0)'::tid AND ctid < '(500,0)'::tid");
    expect(rangeCondition({ from: 750 })).toBe("ctid >= '(750,0)'::tid");
    expect(rangeCondition({ from: 0 })).toBeUndefined();
  });

  it('ANDs the range with the whole filter, which holds ORs', () => {
    const update = { head: 'UPDATE ONLY "public"."t" SET "a" = x', filter: '"a" IS NOT NULL OR "b" IS NOT NULL' };
    expect(rangeStatement(update, { from: 10, to: 20 })).toBe(
      `UPDATE ONLY "public"."t" SET "a" = x WHERE ("a" IS NOT NULL OR "b" IS NOT NULL) AND ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid`,
    );
    expect(rangeStatement(update, { from: 0 })).toBe(`UPDATE ONLY "public"."t" SET "a" = x WHERE "a" IS NOT NULL OR "b" IS NOT NULL`);
    expect(describeRange({ from: 0, to: 250 })).toBe('pages 0–249');
    expect(describeRange({ from: 750 })).toBe('pages 750–end');
  });
});
