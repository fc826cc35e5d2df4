import { z } from 'zod';
import { durationSeconds } from './limits.js';
import { quote } from './quote.js';
import { clusterOverridesSchema } from './schema-cnpg-cluster.js';

/**
 * The values format of the `cnpg-database` chart, as the pg_basebackup
 * bootstrap guide writes it, and the `cnpg` target that carries it. A job
 * takes the values inline (`values:`) or from an existing Helm values file
 * (`valuesFile:`). Rules mirror CloudNativePG's admission webhook where the
 * guide's values can break them, so mistakes show at load time, not as a
 * rejected Cluster at 3 a.m.
 */

const k8sName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
    error: (issue) => `${quote(issue.input)} is not a valid Kubernetes name (lowercase letters, digits, "-" and ".")`,
  })
  .max(253);

/** CNPG refuses secret names and keys with path separators (they become file names in the pod). */
const noPathSeparator = (what: string) =>
  z
    .string()
    .min(1)
    .refine((v) => !/[/\\]/.test(v) && v !== '.' && v !== '..', { error: `${what} cannot contain a path separator or be "." or ".."` });

export const secretKeySelector = z.strictObject({
  name: k8sName.describe('Secret name, in the target namespace'),
  key: noPathSeparator('a secret key').describe('Key inside the Secret'),
});

const imageName = z
  .string()
  .min(1)
  .superRefine((image, ctx) => {
    const lastSegment = image.slice(image.lastIndexOf('/') + 1);
    const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1).replace(/@.*$/, '') : '';
    if (tag === '') {
      ctx.addIssue({
        code: 'custom',
        message: `${quote(image)} has no version tag; CloudNativePG needs one such as :16.2-3 to know the PostgreSQL major version`,
      });
    } else if (tag === 'latest') {
      ctx.addIssue({
        code: 'custom',
        message: `${quote(image)}: Can't use 'latest' as image tag as we can't detect upgrades; use a version tag such as :16.2-3`,
      });
    } else if (!/^\d+(\.\d+)?/.test(tag)) {
      ctx.addIssue({
        code: 'custom',
        message: `${quote(image)}: invalid version tag ${quote(tag)}; it must start with the PostgreSQL version, e.g. 16.2-3`,
      });
    }
  });

const externalCluster = z.strictObject({
  name: noPathSeparator('an external cluster name').describe('Name that bootstrapDB.pg_basebackup.source refers to'),
  connectionParameters: z
    .record(z.string(), z.union([z.string(), z.number()]).transform(String))
    .describe('libpq keywords: host, port, user, dbname, sslmode …'),
  password: secretKeySelector.optional().describe('Secret key holding the replication password'),
  sslKey: secretKeySelector.optional().describe('Secret key holding the TLS client key'),
  sslCert: secretKeySelector.optional().describe('Secret key holding the TLS client certificate'),
  sslRootCert: secretKeySelector.optional().describe('Secret key holding the CA certificate'),
});

export const cnpgValuesSchema = z
  .strictObject({
    instances: z.number().int().min(1).default(1).describe('Number of PostgreSQL instances'),
    imageName: imageName.optional().describe('Image with a version tag; its major version must equal the source'),
    storage: z.strictObject({
      size: z
        .string()
        .regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/, {
          error: (i) => `${quote(i.input)} is not a Kubernetes quantity such as 10Gi`,
        })
        .describe('PVC size, e.g. 10Gi'),
      storageClass: z.string().min(1).optional().describe('StorageClass of the PVCs'),
    }),
    bootstrapDB: z.strictObject({
      pg_basebackup: z.strictObject({
        source: z.string().min(1).describe('Name of the externalClusters entry to clone'),
        database: z.string().min(1).default('app').describe('Application database (created if missing)'),
        owner: z.string().min(1).optional().describe('Owner of the application database; default: the database name'),
        secret: z.strictObject({ name: k8sName }).optional().describe('Secret with username/password for the owner'),
      }),
    }),
    externalClusters: z.array(externalCluster).min(1, { error: 'at least one external cluster (the source) is required' }),
    backup: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .refine((enabled) => !enabled, {
            error:
              'backups of a refreshed copy are not supported: the values carry no object store, and a copy usually needs none (the guide sets backup.enabled: false)',
          }),
      })
      .prefault({})
      .describe('Backups of the copy; a refreshed test database usually needs none'),
  })
  .superRefine((values, ctx) => {
    const names = values.externalClusters.map((c) => c.name);
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i) {
        ctx.addIssue({
          code: 'custom',
          path: ['externalClusters', i, 'name'],
          message: `the list of external clusters contains duplicate values (${quote(name)})`,
        });
      }
    });
    const source = values.bootstrapDB.pg_basebackup.source;
    if (!names.includes(source)) {
      ctx.addIssue({
        code: 'custom',
        path: ['bootstrapDB', 'pg_basebackup', 'source'],
        message: `External cluster ${source} not found; externalClusters has ${names.map((n) => `"${n}"`).join(', ')}`,
      });
    }
    values.externalClusters.forEach((cluster, i) => {
      if (!cluster.connectionParameters.host) {
        ctx.addIssue({
          code: 'custom',
          path: ['externalClusters', i, 'connectionParameters', 'host'],
          message: 'is required: the host of the source',
        });
      }
      if (!cluster.connectionParameters.user) {
        ctx.addIssue({
          code: 'custom',
          path: ['externalClusters', i, 'connectionParameters', 'user'],
          message: 'is required: a role with REPLICATION LOGIN',
        });
      }
      if ((cluster.sslCert === undefined) !== (cluster.sslKey === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['externalClusters', i, cluster.sslCert ? 'sslKey' : 'sslCert'],
          message: 'certificate authentication needs both sslCert and sslKey',
        });
      }
    });
  })
  .transform((values) => ({
    ...values,
    bootstrapDB: {
      pg_basebackup: {
        ...values.bootstrapDB.pg_basebackup,
        // CNPG's defaulting: owner defaults to the database name.
        owner: values.bootstrapDB.pg_basebackup.owner ?? values.bootstrapDB.pg_basebackup.database,
      },
    },
  }));

export type CnpgValues = z.output<typeof cnpgValuesSchema>;
export type SecretKeySelector = z.output<typeof secretKeySelector>;

/** DNS-1035 label of at most 50 characters: CNPG's rule for Cluster names. */
export const clusterName = z
  .string()
  .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, {
    error: (issue) =>
      `${quote(issue.input)} is not a valid Cluster name (a DNS-1035 label: lowercase letters, digits and "-", starting with a letter)`,
  })
  .max(50, { error: 'the maximum length of a cluster name is 50 characters' });

export const cnpgTargetSchema = z
  .strictObject({
    kind: z.literal('cnpg'),
    namespace: k8sName.describe('Namespace of the target Cluster'),
    clusterName: clusterName.describe('Name of the target Cluster (the cnpg-database chart names it cluster-<release>)'),
    values: cnpgValuesSchema.optional().describe('The cnpg-database chart values, inline (see the pg_basebackup guide)'),
    valuesFile: z.string().min(1).optional().describe('Path of a Helm values file in the guide format; relative to the config file'),
    adopt: z.boolean().default(false).describe('Allow replacing an existing Cluster that db-refresher did not create'),
    allowedNamespaces: z.array(k8sName).optional().describe('If set, refuse targets outside these namespaces'),
    protectedNamePattern: z
      .string()
      .default('prod')
      .refine(
        (pattern) => {
          try {
            new RegExp(pattern, 'i');
            return true;
          } catch {
            return false;
          }
        },
        { error: 'is not a valid regular expression' },
      )
      .describe('Refuse Cluster names matching this regular expression (case-insensitive); default "prod"'),
    connect: z
      .strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(5432) })
      .optional()
      .describe('How db-refresher reaches the new Cluster when it runs outside it; default <cluster>-rw.<namespace>.svc:5432'),
    kubeconfig: z.string().min(1).optional().describe('Kubeconfig file; default: in-cluster service account, else $KUBECONFIG'),
    teardownTimeoutSeconds: durationSeconds(1, 600, 'How long the old Cluster and its objects may take to disappear'),
    readyTimeoutSeconds: durationSeconds(1, 6 * 3600, 'How long the new Cluster may take to become healthy'),
    sourceUnavailableGraceSeconds: durationSeconds(
      1,
      300,
      'How long one source outage may last: the clone Job logging "DB not available, will retry" without a break, before the run fails',
    ),
    keepFailedCluster: z
      .boolean()
      .default(false)
      .describe(
        'Keep a Cluster that did not become healthy (for debugging); by default it is deleted, because CloudNativePG would keep retrying it and it could come up later, unverified',
      ),
    cluster: clusterOverridesSchema.optional(),
  })
  .superRefine((target, ctx) => {
    if ((target.values === undefined) === (target.valuesFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: 'give the cluster values either inline (values:) or as a file (valuesFile:), not both and not neither',
      });
    }
  });
