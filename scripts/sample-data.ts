import type { SandboxCluster } from './pg-sandbox.js';

/**
 * Sample data for the demo, the tests and the benchmark: an application
 * database with tables in several schemas (one of them partitioned), a
 * replication role and an owner role.
 */

export const REPLICATION_USER = 'replicator';
export const APP_OWNER = 'app';

export const SAMPLE_TABLES = ['public.users', 'public.orders', 'billing.invoices', 'billing.payments', 'analytics.events'];

export async function loadSampleData(
  source: SandboxCluster,
  options: { replicationPassword: string; ownerPassword: string; rows?: number },
): Promise<void> {
  const rows = options.rows ?? 2000;
  await source.sql(`CREATE ROLE ${REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD '${options.replicationPassword}'`);
  await source.sql(`CREATE ROLE ${APP_OWNER} WITH LOGIN PASSWORD '${options.ownerPassword}'`);
  await source.sql(`CREATE DATABASE app OWNER ${APP_OWNER}`);
  await source.sql('CREATE DATABASE reporting');
  await source.sql(
    `
    SET ROLE ${APP_OWNER};
    CREATE SCHEMA billing;
    CREATE SCHEMA analytics;
    CREATE TABLE public.users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE public.orders (id bigint PRIMARY KEY, user_id bigint REFERENCES public.users, total numeric(12,2));
    CREATE TABLE billing.invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES public.orders, issued date);
    CREATE TABLE billing.payments (id bigint PRIMARY KEY, invoice_id bigint REFERENCES billing.invoices, amount numeric(12,2));
    CREATE TABLE analytics.events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
    CREATE TABLE analytics.events_2026_10 PARTITION OF analytics.events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
    CREATE TABLE analytics.events_2026_11 PARTITION OF analytics.events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
    INSERT INTO public.users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, ${rows}) g;
    INSERT INTO public.orders SELECT g, 1 + g % ${rows}, (g % 500) + 0.99 FROM generate_series(1, ${rows * 2}) g;
    INSERT INTO billing.invoices SELECT g, g, DATE '2026-10-01' + (g % 60) FROM generate_series(1, ${rows * 2}) g;
    INSERT INTO billing.payments SELECT g, g, (g % 500) + 0.99 FROM generate_series(1, ${rows}) g;
    INSERT INTO analytics.events SELECT g, DATE '2026-10-01' + (g % 61), 'view' FROM generate_series(1, ${rows * 5}) g;`,
    'app',
  );
  await source.sql('CREATE TABLE public.daily_totals (day date PRIMARY KEY, total numeric)', 'reporting');
}
