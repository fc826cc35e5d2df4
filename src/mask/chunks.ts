/**
 * Splitting one large table's masking UPDATE into page ranges that run in
 * parallel (docs/masking.md, "How the updates run"). Pure: sizes come in,
 * ranges and SQL conditions go out.
 */

/**
 * The smallest range worth its own connection: 2,048 pages (16 MiB with the
 * default 8 KiB block). Below that, a connection's start-up, its snapshot
 * import and the coordinator session cost more than a second core saves.
 */
export const MIN_CHUNK_PAGES = 2048;

/** PostgreSQL 14 added the TID Range Scan; before it every range would read the whole table. */
export const MIN_SPLIT_SERVER_VERSION = 140000;

/** Pages [from, to) of the table; `to` undefined: to the end, whatever the table has grown to. */
export interface PageRange {
  from: number;
  to?: number;
}

export interface SplitInput {
  /** pg_class.relkind: only a plain table ('r') is split; a partitioned parent stays one statement. */
  kind: string;
  /** server_version_num of the copy. */
  serverVersion: number;
  /** The table's size in pages. */
  pages: number;
  /** mask.parallel: the number of connections, so at most this many ranges. */
  parallel: number;
  minChunkPages?: number;
}

/**
 * The page ranges to mask in parallel, or a single open range `[{ from: 0 }]`
 * when the table is not split. Ranges are about equal, cover page 0 to the
 * end without gap or overlap, and each holds at least `minChunkPages` pages
 * (the last one also whatever lies past the size read).
 */
export function planChunks(input: SplitInput): PageRange[] {
  const min = Math.max(1, Math.floor(input.minChunkPages ?? MIN_CHUNK_PAGES));
  const pages = Math.max(0, Math.floor(input.pages));
  const count = Math.min(Math.floor(input.parallel), Math.floor(pages / min));
  if (input.kind !== 'r' || input.serverVersion < MIN_SPLIT_SERVER_VERSION || count < 2) return [{ from: 0 }];
  const bounds = Array.from({ length: count + 1 }, (_, i) => Math.round((i * pages) / count));
  return bounds.slice(0, count).map((from, i) => (i === count - 1 ? { from } : { from, to: bounds[i + 1] as number }));
}

/**
 * The condition selecting a range's rows: `ctid >= '(a,0)'::tid AND ctid < '(b,0)'::tid`,
 * which PostgreSQL 14+ runs as a TID Range Scan reading only those pages. Bounds
 * at 0 or at the end are left out; the single whole-table range has none.
 */
export function rangeCondition(range: PageRange): string | undefined {
  const parts: string[] = [];
  if (range.from > 0) parts.push(`ctid >= '(${range.from},0)'::tid`);
  if (range.to !== undefined) parts.push(`ctid < '(${range.to},0)'::tid`);
  return parts.length > 0 ? parts.join(' AND ') : undefined;
}

/** `UPDATE … SET … WHERE (filter) AND <range>`: a masking statement restricted to one range. */
export function rangeStatement(update: { head: string; filter: string }, range: PageRange): string {
  const condition = rangeCondition(range);
  return condition === undefined ? `${update.head} WHERE ${update.filter}` : `${update.head} WHERE (${update.filter}) AND ${condition}`;
}

/** "pages 0–2047", "pages 6144–end", for logs and messages. */
export function describeRange(range: PageRange): string {
  return `pages ${range.from}–${range.to === undefined ? 'end' : range.to - 1}`;
}
