import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type MaskStrategy, maskSchema } from '../../src/config/schema-mask.js';
import type { CatalogColumnRow } from '../../src/mask/catalog.js';
import {
  allowsWholeDatabase,
  classifyColumn,
  isAllowed,
  isValidIban,
  nameRules,
  passesLuhn,
  VALUE_PATTERNS,
} from '../../src/mask/coverage-rules.js';
import { maskingFailureHint } from '../../src/mask/failure-hint.js';
import { keyParams } from '../../src/mask/key.js';
import { describeMaskConfig, highestParam, planDatabase } from '../../src/mask/plan.js';
import { maskingSummary } from '../../src/mask/record.js';
import { describeStrategy, maskExpression, typeProblem } from '../../src/mask/strategies.js';

const text = { sqlType: 'text', typname: 'text', category: 'S', notNull: false };

function column(table: string, name: string, extra: Partial<CatalogColumnRow> = {}): CatalogColumnRow {
  const [schema, rel] = table.split('.') as [string, string];
  return {
    schema,
    table: rel,
    kind: 'r',
    estimated_rows: 10,
    pages: 0,
    column: name,
    sql_type: 'text',
    typname: 'text',
    category: 'S',
    not_null: false,
    generated: false,
    max_length: null,
    unique_indexes: [],
    in_primary_key: false,
    partition_of: [],
    ...extra,
  };
}

/** A local job up to its mask: line; the tests append the mask section. */
const JOB_HEAD = `jobs:
  - name: qa
    source: { host: h, user: u }
    target: { kind: local, dataDir: d, port: 5433 }
    mask:`;

describe('mask config', () => {
  it('accepts the documented shape and fills defaults', () => {
    const parsed = maskSchema.parse({
      key: { env: 'MASK_KEY' },
      databases: {
        app: { 'public.customers': { email: 'email', birth_date: { dateShift: 30 } }, 'billing.cards': { pan: { keepLast: 4 } } },
      },
    });
    expect(parsed).toMatchObject({ coverage: 'fail', parallel: 4, allow: [], sampleRows: 20 });
  });

  it('says what is wrong with a strategy, a table name and an allow entry', () => {
    const yaml = `${JOB_HEAD}
      key: { env: MASK_KEY }
      databases: { app: { customers: { email: email }, public.orders: { email: mail } } }
      allow: [products]
`;
    expect(() => parseConfig(yaml, { source: 't.yaml', baseDir: '/tmp', env: { MASK_KEY: 'k' } })).toThrow(
      [
        't.yaml: 3 problems:',
        '  - jobs[0].mask.databases.app.customers: "customers" must be written schema.table, e.g. public.customers or public."Customer Data"',
        '  - jobs[0].mask.databases.app["public.orders"].email: must be one of email, name, phone, hash, null, redact, or {keepLast: N}, {dateShift: DAYS}, {constant: VALUE}, {sql: "EXPRESSION"}',
        '  - jobs[0].mask.allow[0]: "products" must be written schema.table.column (every database) or database.schema.table.column, e.g. public.products.name',
      ].join('\n'),
    );
  });

  it('refuses bind parameters in sql expressions: the key is bound to them', () => {
    const yaml = `${JOB_HEAD}
      key: { env: MASK_KEY }
      databases: { app: { public.notes: { body: { sql: "encode($1::bytea, 'hex')" }, title: { sql: "upper(title)" } } } }
`;
    expect(() => parseConfig(yaml, { source: 't.yaml', baseDir: '/tmp', env: { MASK_KEY: 'k' } })).toThrow(
      [
        't.yaml: 1 problem:',
        '  - jobs[0].mask.databases.app["public.notes"].body.sql: must not use bind parameters ($1, $2, …): db-refresher binds the masking key to them; write values as literals',
      ].join('\n'),
    );
  });

  it('takes names with spaces, bare or in SQL double quotes, and keeps them as the catalog holds them', () => {
    const parsed = maskSchema.parse({
      key: { env: 'MASK_KEY' },
      databases: { app: { 'public."Customer Data"': { 'First Name': 'name' }, 'crm.Old Leads': { mail: 'email' } } },
      allow: ['public."Customer Data".note', 'app.public.Customer Data.Last Name', 'reporting.*.*.*'],
    });
    expect(Object.keys(parsed.databases.app ?? {})).toEqual(['public.Customer Data', 'crm.Old Leads']);
    expect(parsed.allow).toEqual(['public.Customer Data.note', 'app.public.Customer Data.Last Name', 'reporting.*.*.*']);
    expect(() => maskSchema.parse({ key: { env: 'K' }, databases: { app: { 'public."a.b"': { c: 'email' } } } })).toThrow(
      /must be written schema\.table/,
    );
  });

  it('resolves the key from its reference, and a missing one is a config problem', () => {
    const yaml = `jobs:
  - name: qa
    source: { host: h, user: u }
    target: { kind: local, dataDir: d, port: 5433 }
    mask: { key: { env: MASK_KEY }, databases: { app: { public.t: { c: hash } } } }
`;
    const config = parseConfig(yaml, { source: 't.yaml', baseDir: '/tmp', env: { MASK_KEY: 'k3y' } });
    expect(config.jobs[0]?.mask?.key.reveal()).toBe('k3y');
    expect(JSON.stringify(config.jobs[0]?.mask)).not.toContain('k3y');
    expect(() => parseConfig(yaml, { source: 't.yaml', baseDir: '/tmp', env: {} })).toThrow(/jobs\[0\]\.mask\.key.*MASK_KEY is not set/);
  });

  it('refuses an inline key', () => {
    expect(maskSchema.safeParse({ key: 'secret', databases: { app: { 'a.b': { c: 'hash' } } } }).success).toBe(false);
  });
});

describe('key parameters', () => {
  it('are the RFC 2104 blocks, so sha256(opad || sha256(ipad || m)) is HMAC-SHA256', async () => {
    const { createHash } = await import('node:crypto');
    const params = keyParams('k3y');
    const inner = createHash('sha256')
      .update(Buffer.concat([params.ipad, Buffer.from('hello')]))
      .digest();
    const outer = createHash('sha256')
      .update(Buffer.concat([params.opad, inner]))
      .digest('hex');
    expect(outer).toBe(createHmac('sha256', 'k3y').update('hello').digest('hex'));
    const long = keyParams('x'.repeat(100));
    const inner2 = createHash('sha256')
      .update(Buffer.concat([long.ipad, Buffer.from('m')]))
      .digest();
    expect(
      createHash('sha256')
        .update(Buffer.concat([long.opad, inner2]))
        .digest('hex'),
    ).toBe(createHmac('sha256', 'x'.repeat(100)).update('m').digest('hex'));
  });
});

describe('strategies', () => {
  it('never put the key in SQL text: keyed expressions read bind parameters', () => {
    const sql = maskExpression('email', 'email', text);
    expect(sql).toContain('$1::bytea');
    expect(sql).toContain('$2::bigint');
    expect(sql).not.toContain('k3y');
  });

  it('make each email, name and phone fake cost one keyed sha256() per hash, not a full HMAC (two)', () => {
    // sha256() dominates a fake's cost in PostgreSQL: the fakes use the HMAC's inner hash only.
    for (const strategy of ['email', 'name'] as const) {
      const sql = maskExpression(strategy, 'c', text);
      expect(sql.match(/sha256\(/g)).toHaveLength(1);
      expect(sql).toContain('sha256($1::bytea || convert_to(');
      expect(sql).not.toContain('$4');
    }
    // hash stays the full HMAC, reproducible with openssl.
    expect(maskExpression('hash', 'c', text).match(/sha256\(/g)).toHaveLength(2);
  });

  it('compute the phone fake from the number arithmetically, with 8-byte messages for the rounds', () => {
    const sql = maskExpression('phone', 'phone', text);
    expect(sql.match(/int8send\(/g)).toHaveLength(3);
    expect(sql).not.toMatch(/'phone[0-9]:'/);
  });

  it("extract a phone number's digits once per value, not once per use in the Feistel rounds", () => {
    const sql = maskExpression('phone', 'phone', text);
    // One translate() pair for the digits, one for the fallback's hex digits.
    expect(sql.match(/translate\(/g)).toHaveLength(3);
    // Three rounds, each written once, and the fallback.
    expect(sql.match(/sha256\(/g)).toHaveLength(4);
  });

  it('bind only the key parameters a statement refers to', () => {
    expect(highestParam(`UPDATE t SET a = ${maskExpression('email', 'a', text)}`)).toBe(3);
    expect(highestParam(`UPDATE t SET a = ${maskExpression('phone', 'a', text)}`)).toBe(1);
    expect(highestParam(`UPDATE t SET a = ${maskExpression({ dateShift: 3 }, 'a', { ...text, typname: 'date' })}`)).toBe(1);
    // hash needs $4 (the outer block) and names $2–$3 so PostgreSQL can type them.
    const hash = maskExpression('hash', 'a', text);
    expect(highestParam(`UPDATE t SET a = ${hash}`)).toBe(4);
    expect(hash).toContain('$2::bigint');
    expect(hash).toContain('$3::bigint');
    expect(highestParam(`UPDATE t SET a = ${maskExpression('redact', 'a', text)}`)).toBe(0);
  });

  it('check types and lengths', () => {
    expect(typeProblem('email', { ...text, sqlType: 'integer', typname: 'int4', category: 'N' })).toMatch(/needs a text column/);
    expect(typeProblem('email', { ...text, sqlType: 'character varying(20)', typname: 'varchar', maxLength: 20 })).toMatch(
      /up to \d+ characters, but the column is character varying\(20\)/,
    );
    expect(typeProblem({ dateShift: 3 }, text)).toMatch(/needs a date or timestamp/);
    expect(typeProblem({ dateShift: 3 }, { ...text, sqlType: 'date', typname: 'date', category: 'D' })).toBeUndefined();
    expect(typeProblem('null', { ...text, notNull: true })).toMatch(/NOT NULL/);
    expect(typeProblem('hash', { ...text, sqlType: 'bytea', typname: 'bytea', category: 'U' })).toBeUndefined();
  });

  it('describe themselves for plans and records', () => {
    expect(describeStrategy({ keepLast: 4 })).toBe('keepLast 4');
    expect(describeStrategy({ dateShift: 30 })).toBe('dateShift ±30 days');
    expect(describeStrategy({ constant: 'x' })).toBe('constant "x"');
  });
});

describe('planDatabase', () => {
  it('builds one UPDATE per table that skips rows whose masked columns are all NULL', () => {
    const result = planDatabase({
      database: 'app',
      config: { 'public.customers': { email: 'email', 'Full Name': 'name' } },
      columns: [
        column('public.customers', 'id', { in_primary_key: true }),
        column('public.customers', 'email'),
        column('public.customers', 'Full Name'),
      ],
      foreignKeys: [],
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [table] = result.tables;
    expect(table?.statement).toMatch(
      /^UPDATE ONLY "public"\."customers" SET "email" = .*, "Full Name" = .* WHERE "email" IS NOT NULL OR "Full Name" IS NOT NULL$/s,
    );
    expect(table?.keyColumns).toEqual(['id']);
    // The parts a page range's statement is built from (chunks.ts) make up the whole statement.
    expect(`${table?.head} WHERE ${table?.filter}`).toBe(table?.statement);
  });

  it('lists every problem at once, each naming database, table and column', () => {
    const result = planDatabase({
      database: 'app',
      config: {
        'public.customers': { Email: 'email', id: 'phone', gen: 'hash' },
        'public.gone': { x: 'hash' },
        'public.orders': { customer_email: 'hash' },
      },
      columns: [
        column('public.customers', 'email', { unique_indexes: ['customers_email_key'] }),
        column('public.customers', 'id', { sql_type: 'bigint', typname: 'int8', category: 'N' }),
        column('public.customers', 'gen', { generated: true }),
        column('public.orders', 'customer_email'),
      ],
      foreignKeys: [
        { constraint: 'fk', from_table: 'public.orders', from_column: 'customer_email', to_table: 'public.customers', to_column: 'email' },
      ],
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      'app: public.customers.Email: no such column (did you mean email? names are case-sensitive); the table has email, id, gen',
      'app: public.customers.id: phone needs a text column (text, varchar, char), but the column is bigint',
      'app: public.customers.gen: is a generated column; mask the columns it is computed from',
      'app: public.gone: no such table in the copy; check the name (schema.table) under mask.databases.app',
      'app: foreign key fk joins public.orders.customer_email (hash) to public.customers.email, which is not masked; mask public.customers.email with the same strategy so the key still matches',
    ]);
  });

  it('describes the configured columns for plan output', () => {
    expect(describeMaskConfig({ app: { 'public.customers': { email: 'email', pan: { keepLast: 4 } } } })).toEqual([
      'app: public.customers.email: email',
      'app: public.customers.pan: keepLast 4',
    ]);
  });
});

describe('coverage rules', () => {
  it('take phone numbers in international, national and North American forms, and not dates or ids', () => {
    const phone = new RegExp(VALUE_PATTERNS.phone);
    for (const v of ['+49 30 1234567', '0049 30 1234567', '030 1234567', '(415) 555-0101', '415-555-0101', '415.555.0101']) {
      expect(phone.test(v), v).toBe(true);
    }
    for (const v of ['2024-01-15', '12345678', '415-5550-101', '115-555-0101', 'v1.2.3']) expect(phone.test(v), v).toBe(false);
  });

  it('match column names by word', () => {
    expect(nameRules('customer_email')).toEqual(['email']);
    expect(nameRules('customerEmail')).toEqual(['email']);
    expect(nameRules('first_name')).toEqual(['name']);
    expect(nameRules('date_of_birth')).toEqual(['birth']);
    expect(nameRules('mobile_phone')).toEqual(['phone']);
    expect(nameRules('description')).toEqual([]);
    expect(nameRules('pancake')).toEqual([]);
    expect(nameRules('telemetry')).toEqual([]);
    // With the column's type category: only rules whose data the type can hold.
    expect(nameRules('email_verified', 'B')).toEqual([]);
    expect(nameRules('address_id', 'N')).toEqual([]);
    expect(nameRules('phone_confirmed_at', 'D')).toEqual([]);
    expect(nameRules('mobile', 'N')).toEqual(['phone']);
    expect(nameRules('date_of_birth', 'D')).toEqual(['birth']);
    expect(nameRules('contact_email', 'U')).toEqual(['email']);
    expect(nameRules('home_address', 'C')).toEqual(['address']);
  });

  it('check Luhn and IBAN checksums', () => {
    expect(passesLuhn('4111 1111 1111 1111')).toBe(true);
    expect(passesLuhn('4111 1111 1111 1112')).toBe(false);
    expect(passesLuhn('12345')).toBe(false);
    expect(isValidIban('DE89 3704 0044 0532 0130 00')).toBe(true);
    expect(isValidIban('GB82WEST12345698765432')).toBe(true);
    expect(isValidIban('DE89370400440532013001')).toBe(false);
  });

  it('need a share of the sample to match a value rule, and say how many matched', () => {
    const base = {
      database: 'app',
      schema: 'public',
      table: 't',
      column: 'x',
      sampled: 20,
      emailValues: 0,
      phoneValues: 0,
      emailInText: 0,
      cardCandidates: [],
      ibanCandidates: [],
    };
    expect(classifyColumn({ ...base, emailValues: 18 })).toEqual({
      rules: ['values:email'],
      matched: 18,
      evidence: ['18 of 20 sampled values are e-mail addresses'],
    });
    expect(classifyColumn({ ...base, emailValues: 3 }).rules).toEqual([]);
    // Random 16-digit numbers pass Luhn one time in ten: not enough.
    expect(classifyColumn({ ...base, cardCandidates: ['4111111111111111', '4111111111111112', '4111111111111113'] }).rules).toEqual([]);
    expect(classifyColumn({ ...base, column: 'email' }).rules).toEqual(['name:email']);
  });

  it('allow entries name a column in every database or in one', () => {
    expect(isAllowed(['public.products.name'], 'app', 'public.products.name')).toBe(true);
    expect(isAllowed(['shop.public.products.name'], 'app', 'public.products.name')).toBe(false);
    expect(isAllowed(['app.public.products.name'], 'app', 'public.products.name')).toBe(true);
  });

  it('allow entries take * for any name in a part: a whole database, table or schema', () => {
    expect(isAllowed(['reporting.*.*.*'], 'reporting', 'public.daily_totals.total')).toBe(true);
    expect(isAllowed(['reporting.*.*.*'], 'app', 'public.daily_totals.total')).toBe(false);
    expect(isAllowed(['public.audit_log.*'], 'app', 'public.audit_log.actor_email')).toBe(true);
    expect(isAllowed(['public.audit_log.*'], 'app', 'public.audit_logs.actor_email')).toBe(false);
    expect(isAllowed(['app.staging.*.*'], 'app', 'staging.people.email')).toBe(true);
    expect(isAllowed(['app.staging.*.*'], 'app', 'public.people.email')).toBe(false);
    expect(isAllowed(['*.*.email'], 'app', 'public.people.email')).toBe(true);
    expect(allowsWholeDatabase(['reporting.*.*.*'], 'reporting')).toBe(true);
    expect(allowsWholeDatabase(['reporting.*.*.*'], 'app')).toBe(false);
    expect(allowsWholeDatabase(['reporting.public.*.*', '*.*.*'], 'reporting')).toBe(false);
  });
});

describe('maskingSummary', () => {
  it('is the line notifications carry', () => {
    const masking = { databases: [], tables: 3, columns: 7, rows: 10, parallel: 2, sessionSettings: [] };
    const coverage = { mode: 'fail' as const, ok: true, columns: 50, tables: 9, queries: 1, durationMs: 5, findings: [] };
    expect(maskingSummary(masking, coverage)).toBe('masked 7 columns in 3 tables; coverage: ok');
    expect(
      maskingSummary(masking, {
        ...coverage,
        ok: false,
        findings: [{ database: 'a', table: 'p.t', column: 'c', rules: [], sampled: 1, matched: 1, evidence: '' }],
      }),
    ).toBe('masked 7 columns in 3 tables; coverage: 1 finding');
  });
});

describe('maskingFailureHint', () => {
  const uniqueViolation = Object.assign(new Error('duplicate key value violates unique constraint "contacts_phone_key"'), {
    code: '23505',
    constraint: 'contacts_phone_key',
  });
  const plan = (columns: Record<string, MaskStrategy>) => ({
    table: 'public.contacts',
    columns: Object.entries(columns).map(([column, strategy]) => ({ column, strategy, describe: describeStrategy(strategy) })),
  });

  it('explains a unique violation on a phone column, also through a page range that wrapped it', () => {
    const wrapped = new Error('pages 0–2047: duplicate key …', { cause: uniqueViolation });
    for (const error of [uniqueViolation, wrapped]) {
      const hint = maskingFailureHint(error, plan({ phone: 'phone', email: 'email' }));
      expect(hint).toMatch(/^Two rows of public\.contacts got the same masked value in unique index "contacts_phone_key"\./);
      expect(hint).toMatch(/one number written two ways .* gives one fake.*\(masked with phone: phone\)/);
      expect(hint).toMatch(/mask the column with hash/);
      expect(hint).toMatch(/stays closed/);
    }
  });

  it('leaves the phone explanation out when no column is masked with phone', () => {
    const hint = maskingFailureHint(uniqueViolation, plan({ code: { sql: 'lower(code)' } }));
    expect(hint).toMatch(/same masked value in unique index "contacts_phone_key"/);
    expect(hint).not.toMatch(/phone keeps/);
  });

  it('gives the general hint for any other failure', () => {
    const hint = maskingFailureHint(Object.assign(new Error('canceling statement'), { code: '57014' }), plan({ phone: 'phone' }));
    expect(hint).toBe(
      'The copy stays closed to everyone but db-refresher; fix the cause and run the job again (the next run makes a fresh copy).',
    );
    expect(maskingFailureHint('not an error', plan({ phone: 'phone' }))).toBe(hint);
  });
});
