import type { SandboxCluster } from '../../scripts/pg-sandbox.js';
import type { LocalHarness } from './local-harness.js';

/**
 * A database with personal data for the masking tests: customers, orders that
 * reference customers by e-mail (a real foreign key), cards, and free-text
 * columns. Values are generated in SQL, so the size is a parameter. Every
 * tenth customer has no phone and no birth date (NULLs must stay NULL).
 */
export const PERSONAL_SCHEMA = `
CREATE SCHEMA billing;
CREATE TABLE public.customers (
  id bigint PRIMARY KEY,
  email text NOT NULL UNIQUE,
  full_name text NOT NULL,
  phone varchar(32),
  birth_date date,
  note text
);
CREATE TABLE public.orders (
  id bigint PRIMARY KEY,
  customer_email text NOT NULL REFERENCES public.customers (email),
  amount numeric(10, 2) NOT NULL,
  comment text
);
CREATE INDEX orders_customer_email ON public.orders (customer_email);
CREATE TABLE billing.cards (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES public.customers (id),
  pan varchar(19) NOT NULL,
  holder text NOT NULL
);
CREATE TABLE public.products (id int PRIMARY KEY, name text NOT NULL);
-- A trigger that would make every update do per-row work (and fail) if it fired during masking.
CREATE FUNCTION public.no_updates() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'customers are read-only'; END $$;
CREATE TRIGGER customers_read_only BEFORE UPDATE ON public.customers FOR EACH ROW EXECUTE FUNCTION public.no_updates();
`;

/** Luhn-valid 16-digit test card numbers: 4000 00XX XXXX XXXC. */
const LUHN_SQL = `
CREATE FUNCTION pg_temp.luhn(digits text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT digits || ((10 - (sum(CASE WHEN (length(digits) - i) % 2 = 0 THEN (d * 2) / 10 + (d * 2) % 10 ELSE d END) % 10)) % 10)::text
  FROM (SELECT i, substr(digits, i, 1)::int AS d FROM generate_series(1, length(digits)) AS i) s
$$;`;

export function personalDataSql(customers: number): string {
  return `${PERSONAL_SCHEMA}
${LUHN_SQL}
INSERT INTO public.customers
SELECT g, 'customer' || g || '@mail.example.org', 'Customer Person ' || g,
       CASE WHEN g % 10 = 0 THEN NULL ELSE '+49 30 ' || (1000000 + g) END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE date '1950-01-01' + (g % 20000) END,
       'called on ' || g
FROM generate_series(1, ${customers}) g;
INSERT INTO public.orders SELECT g, 'customer' || (1 + g % ${customers}) || '@mail.example.org', g % 500, 'deliver to back door' FROM generate_series(1, ${customers * 2}) g;
INSERT INTO billing.cards SELECT g, g, pg_temp.luhn('400000' || lpad(g::text, 9, '0')), 'Customer Person ' || g FROM generate_series(1, ${customers}) g;
INSERT INTO public.products SELECT g, 'Product ' || g FROM generate_series(1, 50) g;
ANALYZE;`;
}

export async function loadPersonalData(cluster: SandboxCluster, database: string, customers: number): Promise<void> {
  await cluster.sql(`CREATE DATABASE ${database}`);
  await cluster.sql(personalDataSql(customers), database);
}

/** The mask config the tests use, as YAML under a job. */
export const PERSONAL_MASK_YAML = (database: string, extra = '') => `
    mask:
      key: { env: MASK_KEY }
      databases:
        ${database}:
          public.customers: { email: email, full_name: name, phone: phone, birth_date: { dateShift: 30 }, note: redact }
          public.orders: { customer_email: email, comment: { sql: "'(comment removed)'" } }
          billing.cards: { pan: { keepLast: 4 }, holder: name }
${extra}`;

/** A valid IBAN for a country and BBAN: the check digits make the number mod 97 equal 1 (ISO 13616). */
/**
 * A local job that verifies crm and masks it with PERSONAL_MASK_YAML, running its SQL as the source's
 * superuser (PG_SUPER, see maskedJobEnv). `allow` is the YAML list, `extra` more lines of the mask section.
 */
export function maskedCrmJobYaml(
  harness: Pick<LocalHarness, 'jobYaml'>,
  targetPort: number,
  mask: { allow: string; coverage: string; extra?: string },
): string {
  return (
    harness.jobYaml({
      targetPort,
      source: `      password: { env: SOURCE_PASSWORD }
      sql: { user: postgres, password: { env: PG_SUPER } }`,
      verify: `      databases:
        - name: crm`,
    }) + PERSONAL_MASK_YAML('crm', `      allow: ${mask.allow}\n      coverage: ${mask.coverage}\n${mask.extra ?? ''}`)
  );
}

/** The environment of maskedCrmJobYaml's job: the harness's, the mask key, and the source superuser's password. */
export function maskedJobEnv(harness: Pick<LocalHarness, 'env' | 'source'>, key: string): NodeJS.ProcessEnv {
  return { ...harness.env, MASK_KEY: key, PG_SUPER: harness.source.superuserPassword };
}

export function ibanWithCheckDigits(country: string, bban: string): string {
  const digits = `${bban}${country}00`.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  const check = 98n - (BigInt(digits) % 97n);
  return `${country}${String(check).padStart(2, '0')}${bban}`;
}
