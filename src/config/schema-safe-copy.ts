import { z } from 'zod';
import { secretRef } from './secret-ref.js';

/**
 * Config that turns a fresh clone into a safe test database (issue #15):
 * `neutralise` (built in, on by default), `roles` (test roles that exist after
 * every refresh) and `prepare` (the user's ordered SQL steps). All three run
 * while only db-refresher can reach the copy (the private window).
 */

const identifier = z
  .string()
  .min(1)
  .max(63, { error: 'must be at most 63 characters (a PostgreSQL identifier)' })
  .describe('A PostgreSQL identifier, written as it is stored (case-sensitive, no quotes)');

const neutraliseObject = z
  .strictObject({
    synchronousReplication: z
      .boolean()
      .default(true)
      .describe(
        'Empty synchronous_standby_names on the copy and reset the ALTER SYSTEM settings that point at production (archive_command, restore_command, primary_conninfo, primary_slot_name)',
      ),
    subscriptions: z
      .boolean()
      .default(true)
      .describe(
        "Start with no logical replication workers, then disable every subscription and detach it from its slot (slot_name = NONE); the publisher's slot is never dropped",
      ),
    cron: z.boolean().default(true).describe('Deactivate every pg_cron job before it can fire'),
    passwords: z
      .boolean()
      .default(false)
      .describe(
        'Remove the password of every LOGIN role except the owner, the test roles, keepRoles and the roles the operator manages, so production passwords stop working on the copy (recommended)',
      ),
    keepRoles: z.array(identifier).default([]).describe('More LOGIN roles whose passwords `passwords: true` keeps'),
  })
  .describe('What db-refresher switches off in every fresh copy; each item can be turned off');

/** `neutralise: false` switches every item off; an object switches items one by one. */
export const neutraliseSchema = z
  .union([z.literal(false), neutraliseObject], {
    error:
      'must be false (switch everything off) or an object of switches: synchronousReplication, subscriptions, cron, passwords, keepRoles',
  })
  .transform((value) =>
    value === false
      ? { synchronousReplication: false, subscriptions: false, cron: false, passwords: false, keepRoles: [] as string[] }
      : value,
  )
  .prefault({})
  .describe('Neutralisation of production side effects in the copy (on by default); false switches it off');

export const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'ALL'] as const;

const grant = z
  .strictObject({
    database: z.string().min(1).describe('Database the grant applies in'),
    schema: identifier.describe('Schema: the role gets USAGE on it and the privileges on all its tables (and sequences)'),
    privileges: z
      .array(z.enum(TABLE_PRIVILEGES))
      .min(1)
      .default(['SELECT'])
      .describe('Table privileges on every table in the schema; write privileges also get USAGE, SELECT and UPDATE on its sequences'),
  })
  .describe('Privileges of a test role in one database and schema');

export const testRoleSchema = z
  .strictObject({
    name: identifier.describe('Role name'),
    password: secretRef.optional().describe('Its password on the copy (a secret reference); absent means no password'),
    login: z.boolean().default(true).describe('Whether the role may log in'),
    inRoles: z.array(identifier).default([]).describe('Roles it is a member of (they must exist in the copy)'),
    grants: z.array(grant).default([]).describe('Privileges per database and schema'),
  })
  .describe('A test role created, or altered to match, after every refresh');

export const prepareStepSchema = z
  .strictObject({
    name: z.string().min(1).max(100).describe('Step name, shown in the run record and in errors'),
    database: z.string().min(1).describe('Database the step runs in, as the superuser'),
    sql: z.string().min(1).optional().describe('SQL to run (one or more statements)'),
    file: z.string().min(1).optional().describe('A file holding the SQL; read when the config is loaded; relative to the config file'),
    transaction: z.boolean().default(true).describe('Run the step in one transaction (all or nothing)'),
    timeoutSeconds: z
      .number()
      .int()
      .positive()
      .max(86_400, { error: 'must be at most 86400 (a day)' })
      .default(600)
      .describe('How long each statement of the step may run (statement_timeout)'),
  })
  .superRefine((step, ctx) => {
    if ((step.sql === undefined) === (step.file === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of sql or file' });
    }
  })
  .describe('One SQL step run on the copy before anyone else can connect');

function uniqueNames(what: string) {
  return (items: ReadonlyArray<{ name: string }>, ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    items.forEach((item, i) => {
      if (seen.has(item.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${what} "${item.name}" is listed twice` });
      seen.add(item.name);
    });
  };
}

/** The job keys; spread into the job schema. */
export const safeCopyFields = {
  neutralise: neutraliseSchema,
  roles: z
    .array(testRoleSchema)
    .default([])
    .superRefine(uniqueNames('role'))
    .describe('Test roles that exist after every refresh: name, password, LOGIN, membership, grants'),
  prepare: z
    .array(prepareStepSchema)
    .default([])
    .superRefine(uniqueNames('step'))
    .describe('Ordered SQL steps run as the superuser on the copy after neutralisation'),
};

export type NeutraliseConfig = z.output<typeof neutraliseSchema>;
export type PrepareStepInput = z.output<typeof prepareStepSchema>;
