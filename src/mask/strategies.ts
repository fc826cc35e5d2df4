import type { MaskStrategy } from '../config/schema-mask.js';
import { FAMILY_NAMES, GIVEN_NAMES } from './fake-names.js';
import { quoteIdent, quoteLiteral } from './sql-text.js';

/**
 * What each masking strategy turns a column into, as an SQL expression the
 * server evaluates for every row of one set-based UPDATE. Pure: strategy and
 * column in, SQL text out.
 *
 * The secret never appears in the text: every keyed expression reads the key
 * material from bind parameters ($1–$4, see KEY_PARAMS), computed in Node from
 * the job's key with HMAC-SHA256's key blocks (RFC 2104).
 *
 * - `email`, `name`, `phone` and `dateShift` are built from the HMAC's inner
 *   hash, sha256((k ⊕ ipad) || message), on a domain-prefixed message
 *   ('email:', 'name:', …), truncated to 64 bits or less. A secret-prefix
 *   SHA-256 whose output is truncated is a pseudorandom function (length
 *   extension needs the whole digest), and it costs one sha256() call where the
 *   full HMAC costs two. A sha256() call in PostgreSQL costs about as much as
 *   the whole rest of a fake (its OpenSSL context set-up dominates), so this
 *   halves the cost of the email and name fakes.
 * - `hash` is the full HMAC-SHA256, sha256((k ⊕ opad) || sha256((k ⊕ ipad) || m)),
 *   so it can be reproduced outside with openssl.
 *
 * Every expression is NULL for a NULL input, so NULLs stay NULL.
 */

/**
 * Bind parameters of the masking statements, in this order. The order follows
 * use: every keyed strategy needs $1, email and name also $2–$3, and only
 * `hash` needs $4. A statement binds the parameters up to the highest it uses
 * (see highestParam), and PostgreSQL must be able to type each of them.
 */
export const KEY_PARAMS = { ipad: '$1::bytea', givenSeed: '$2::bigint', familySeed: '$3::bigint', opad: '$4::bytea' } as const;

/** The catalog facts about a column that strategies depend on. */
export interface ColumnType {
  /** format_type(): what a cast to the column's type is written as, e.g. `character varying(40)`. */
  sqlType: string;
  /** pg_type.typname of the base type, e.g. varchar, text, date. */
  typname: string;
  /** pg_type.typcategory: S string, D date/time, N numeric, U user (bytea), … */
  category: string;
  notNull: boolean;
  /** Maximum length in characters for varchar(n)/char(n); undefined when unlimited. */
  maxLength?: number | undefined;
}

export type StrategyName = 'email' | 'name' | 'phone' | 'hash' | 'null' | 'redact' | 'keepLast' | 'dateShift' | 'constant' | 'sql';

export function strategyName(strategy: MaskStrategy): StrategyName {
  if (typeof strategy === 'string') return strategy;
  return Object.keys(strategy)[0] as StrategyName;
}

/** One line for plans and records, e.g. `keepLast 4`, `dateShift ±30 days`. */
export function describeStrategy(strategy: MaskStrategy): string {
  if (typeof strategy === 'string') return strategy;
  if ('keepLast' in strategy) return `keepLast ${strategy.keepLast}`;
  if ('dateShift' in strategy) return `dateShift ±${strategy.dateShift} days`;
  if ('constant' in strategy) return `constant ${JSON.stringify(strategy.constant)}`;
  return `sql ${strategy.sql}`;
}

/** Distinct inputs give distinct outputs (up to the collision odds of a 64-bit tag): safe for unique columns. */
export function isInjective(strategy: MaskStrategy): boolean | undefined {
  const name = strategyName(strategy);
  if (name === 'sql') return undefined;
  return name === 'email' || name === 'name' || name === 'phone' || name === 'hash' || name === 'null';
}

const STRING_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext', 'name']);
const DATE_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

/** Hex digits of the 64-bit tag that makes email and name fakes unique. */
const TAG_HEX = 16;
const EMAIL_DOMAIN = '@example.com';

const longest = (names: readonly string[]) => Math.max(...names.map((n) => n.length));

/** The longest value a strategy can write, for varchar(n)/char(n) checks; undefined when it never grows the value. */
export function maxOutputLength(strategy: MaskStrategy): number | undefined {
  switch (strategyName(strategy)) {
    case 'email':
      return longest(GIVEN_NAMES) + 1 + longest(FAMILY_NAMES) + 1 + TAG_HEX + EMAIL_DOMAIN.length;
    case 'name':
      return longest(GIVEN_NAMES) + 1 + longest(FAMILY_NAMES) + 1 + TAG_HEX;
    case 'hash':
      return 64;
    default:
      return undefined;
  }
}

/**
 * Why a strategy cannot be used on a column of this type, or undefined when it
 * can. `sql` and `constant` are checked by the server (EXPLAIN) instead.
 */
export function typeProblem(strategy: MaskStrategy, column: ColumnType): string | undefined {
  const name = strategyName(strategy);
  const isString = column.category === 'S' || STRING_TYPES.has(column.typname);
  switch (name) {
    case 'email':
    case 'name':
    case 'phone':
    case 'redact':
    case 'keepLast': {
      if (!isString) return `${name} needs a text column (text, varchar, char), but the column is ${column.sqlType}`;
      const max = maxOutputLength(strategy);
      if (max !== undefined && column.maxLength !== undefined && column.maxLength < max) {
        return `${name} fakes are up to ${max} characters, but the column is ${column.sqlType}; widen it, or use keepLast, redact or sql`;
      }
      return undefined;
    }
    case 'hash': {
      if (column.typname === 'bytea') return undefined;
      if (!isString) return `hash needs a text or bytea column, but the column is ${column.sqlType}`;
      if (column.maxLength !== undefined && column.maxLength < 64) {
        return `hash writes 64 hex characters, but the column is ${column.sqlType}`;
      }
      return undefined;
    }
    case 'dateShift':
      return DATE_TYPES.has(column.typname) ? undefined : `dateShift needs a date or timestamp column, but the column is ${column.sqlType}`;
    case 'null':
      return column.notNull ? 'null cannot be used: the column is NOT NULL; use constant, redact or another strategy' : undefined;
    case 'constant':
    case 'sql':
      return undefined;
  }
}

/**
 * The full HMAC-SHA256 of a bytea expression under the job's key, for `hash`.
 * It uses $1 and $4; the test of $2 and $3 (the name seeds, never NULL) makes
 * them typed in a statement with no email or name column, and the planner
 * folds it away (the parameters are constants in the plan).
 */
function hmac(message: string): string {
  return `CASE WHEN (${KEY_PARAMS.givenSeed}, ${KEY_PARAMS.familySeed}) IS NULL THEN NULL ELSE sha256(${KEY_PARAMS.opad} || sha256(${KEY_PARAMS.ipad} || ${message})) END`;
}

/** The keyed hash of the fakes: the HMAC's inner hash of a bytea message (see the comment at the top). */
function keyed(message: string): string {
  return `sha256(${KEY_PARAMS.ipad} || ${message})`;
}

/** The keyed hash of a text value with a domain prefix, so the same value gives unrelated fakes under different strategies. */
function keyedText(value: string, domain: string): string {
  return keyed(`convert_to(${quoteLiteral(domain)} || ${value}, 'UTF8')`);
}

/** An unsigned 32-bit integer from the first four bytes of a bytea. */
function uint32(bytes: string): string {
  return `('x' || encode(substring(${bytes} from 1 for 4), 'hex'))::bit(32)::bigint`;
}

function nameList(names: readonly string[], lower: boolean): string {
  return `(ARRAY[${names.map((n) => quoteLiteral(lower ? n.toLowerCase() : n)).join(',')}]::text[])`;
}

/**
 * Picks a list entry with PostgreSQL's seeded hashtextextended(): it only
 * chooses one of 64 names (6 bits); uniqueness comes from the HMAC tag.
 * Seeds come from the key, so the choice is keyed too.
 */
function pick(names: readonly string[], value: string, seed: string, lower: boolean): string {
  return `${nameList(names, lower)}[(hashtextextended(${value}, ${seed}) & ${names.length - 1})::int + 1]`;
}

/** The first 64 bits of the keyed hash, as 16 hex digits. */
function tag(value: string, domain: string): string {
  return `encode(substring(${keyedText(value, domain)} from 1 for ${TAG_HEX / 2}), 'hex')`;
}

const POWERS_OF_TEN = `(ARRAY[${Array.from({ length: 19 }, (_, i) => `${10n ** BigInt(i)}`).join(',')}]::bigint[])`;
const pow10 = (digits: string) => `${POWERS_OF_TEN}[(${digits}) + 1]`;

/**
 * Phone numbers: the digits go through a three-round Feistel network whose
 * round function is the keyed hash, a format-preserving permutation of all
 * numbers with that many digits. Distinct numbers therefore stay distinct,
 * with no collision odds at all. A leading + is kept; other formatting is
 * dropped. Numbers with fewer than 4 or more than 18 digits get keyed-hash
 * digits instead.
 *
 * The number D (n digits) is split arithmetically into a (the first n/2
 * digits, below pu = 10^(n/2)) and b (the rest, below pw). Rounds:
 *   c0 = (a + F0(b)) mod pu,  c1 = (b + F1(c0)) mod pw,  c2 = (c0 + F2(c1)) mod pu
 * and the fake is c1·pu + c2, padded to n digits. Fi(x) is the first 32 bits
 * of the keyed hash of the 8-byte message ((x·32 + n)·4 + i): x < 10^9 and
 * n ≤ 18, so the message is unique per round, length and value, and its three
 * leading zero bytes keep it apart from every text message ('email:' …).
 *
 * PostgreSQL does not share common subexpressions, and each round uses the one
 * before it twice, so written as one expression the digits and rounds would be
 * computed many times per value. Instead a scalar subquery computes each
 * intermediate once, in a chain of LATERAL steps (OFFSET 0 keeps the planner
 * from folding them back together); the last round, used once, is computed in
 * the output.
 *
 * Cheap forms of the same values (a profile of the phone fake showed
 * translate() and length() at about a quarter of its CPU, as much as the
 * three sha256() calls): a number written only with digits, spaces, + - ( )
 * and . (nearly all of them) loses its formatting through replace(), which
 * does not decode characters one by one, and only other values go through the
 * generic translate(); the digit string is ASCII, so octet_length() is its
 * length without counting characters.
 */
function phoneExpression(col: string): string {
  // Only numbers the Feistel network takes are cast, so no cast can fail or overflow.
  const fits = 'octet_length(d) BETWEEN 4 AND 18';
  const round = (i: number, x: string) => uint32(keyed(`int8send(((${x}) * 32 + n) * 4 + ${i})`));
  const pw = pow10('octet_length(d) - octet_length(d) / 2');
  const usual = ['(', ')', '.', '-', '+', ' '].reduce((text, sep) => `replace(${text}, '${sep}', '')`, col);
  const digits = `CASE WHEN ${col} ~ '^[0-9 +().-]*$' THEN ${usual} ELSE translate(${col}, translate(${col}, '0123456789', ''), '') END`;
  const steps = [
    `(SELECT ${digits} AS d OFFSET 0) AS digits`,
    `LATERAL (SELECT octet_length(d) AS n, ${pow10('octet_length(d) / 2')} AS pu, ${pw} AS pw, CASE WHEN ${fits} THEN d::bigint / ${pw} END AS a, CASE WHEN ${fits} THEN d::bigint % ${pw} END AS b OFFSET 0) AS halves`,
    `LATERAL (SELECT (a + ${round(0, 'b')} % pu) % pu AS c0 OFFSET 0) AS r0`,
    `LATERAL (SELECT (b + ${round(1, 'c0')} % pw) % pw AS c1 OFFSET 0) AS r1`,
  ];
  const feistel = `lpad((c1 * pu + (c0 + ${round(2, 'c1')} % pu) % pu)::text, n, '0')`;
  const fallback = `left(translate(encode(${keyedText(col, 'phone:')}, 'hex'), 'abcdef', '012345'), n)`;
  const value = `CASE WHEN left(${col}, 1) = '+' THEN '+' ELSE '' END || CASE WHEN n BETWEEN 4 AND 18 THEN ${feistel} ELSE ${fallback} END`;
  return `CASE WHEN ${col} IS NULL THEN NULL ELSE (SELECT ${value} FROM ${steps.join(', ')}) END`;
}

/** Letters become x and digits 0; spaces and punctuation stay, so the shape (and length) is kept. */
function blank(value: string): string {
  return `regexp_replace(regexp_replace(${value}, '[0-9]', '0', 'g'), '[^0-9[:space:][:punct:]]', 'x', 'g')`;
}

/**
 * The SQL expression that replaces the column `column` (unquoted name) under
 * `strategy`. `sqlType` is the column's format_type, for casts.
 */
export function maskExpression(strategy: MaskStrategy, column: string, type: ColumnType): string {
  const col = quoteIdent(column);
  const name = strategyName(strategy);
  switch (name) {
    case 'email':
      return `${pick(GIVEN_NAMES, col, KEY_PARAMS.givenSeed, true)} || '.' || ${pick(FAMILY_NAMES, col, KEY_PARAMS.familySeed, true)} || '.' || ${tag(col, 'email:')} || ${quoteLiteral(EMAIL_DOMAIN)}`;
    case 'name':
      return `${pick(GIVEN_NAMES, col, KEY_PARAMS.givenSeed, false)} || ' ' || ${pick(FAMILY_NAMES, col, KEY_PARAMS.familySeed, false)} || ' ' || ${tag(col, 'name:')}`;
    case 'phone':
      return phoneExpression(col);
    case 'hash':
      // Plain HMAC-SHA256 of the value, so it can be reproduced outside (openssl dgst -sha256 -hmac).
      return type.typname === 'bytea' ? hmac(col) : `encode(${hmac(`convert_to(${col}, 'UTF8')`)}, 'hex')`;
    case 'null':
      return 'NULL';
    case 'redact':
      return blank(col);
    case 'keepLast': {
      const keep = (strategy as { keepLast: number }).keepLast;
      if (keep === 0) return blank(col);
      return `CASE WHEN length(${col}) > ${keep} THEN ${blank(`left(${col}, -${keep})`)} || right(${col}, ${keep}) ELSE ${blank(col)} END`;
    }
    case 'dateShift': {
      const days = (strategy as { dateShift: number }).dateShift;
      // A shift in [-days, -1] ∪ [1, days]: never 0, so no date stays as it was.
      const raw = `(${uint32(keyedText(`${col}::text`, 'date:'))} % ${2 * days})`;
      const shift = `(CASE WHEN ${raw} < ${days} THEN ${raw} - ${days} ELSE ${raw} - ${days} + 1 END)::int`;
      return type.typname === 'date' ? `${col} + ${shift}` : `${col} + make_interval(days => ${shift})`;
    }
    case 'constant': {
      const value = (strategy as { constant: string | number | boolean }).constant;
      return `CASE WHEN ${col} IS NULL THEN NULL ELSE CAST(${quoteLiteral(String(value))} AS ${type.sqlType}) END`;
    }
    case 'sql':
      return `CASE WHEN ${col} IS NULL THEN NULL ELSE (${(strategy as { sql: string }).sql}) END`;
  }
}
