import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { freePort, Sandbox, type SandboxCluster } from '../../scripts/pg-sandbox.js';
import { APP_OWNER, loadSampleData, REPLICATION_USER } from '../../scripts/sample-data.js';
import { buildRunner } from '../../src/composition-root.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { REDACT_PATHS } from '../../src/observe/logger.js';
import type { RunRecord } from '../../src/run/record.js';

/**
 * A source cluster with sample data in a sandbox, and helpers to run refresh
 * jobs against it through the real runner. Everything lives under one
 * temporary directory that destroy() stops and removes.
 */
export class LocalHarness {
  readonly sandbox: Sandbox;
  readonly source: SandboxCluster;
  readonly replicationPassword: string;
  readonly ownerPassword: string;
  /** Every log line the runs wrote, as JSON text. */
  readonly logLines: string[] = [];

  private constructor(sandbox: Sandbox, source: SandboxCluster, replicationPassword: string, ownerPassword: string) {
    this.sandbox = sandbox;
    this.source = source;
    this.replicationPassword = replicationPassword;
    this.ownerPassword = ownerPassword;
  }

  static async start(options: { tls?: { cert: string; key: string; ca: string }; hba?: string[]; settings?: Record<string, string> } = {}) {
    const sandbox = Sandbox.create('dbr-test-');
    try {
      const source = await sandbox.createCluster({ name: 'source', ...options });
      const replicationPassword = `rp-${randomBytes(8).toString('hex')}`;
      const ownerPassword = `op-${randomBytes(8).toString('hex')}`;
      await loadSampleData(source, { replicationPassword, ownerPassword, rows: 500 });
      return new LocalHarness(sandbox, source, replicationPassword, ownerPassword);
    } catch (error) {
      await sandbox.destroy();
      throw error;
    }
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SOURCE_PASSWORD: this.replicationPassword, OWNER_PASSWORD: this.ownerPassword };
  }

  /** YAML for one local job against this harness's source; `extra` is spliced into the job. */
  jobYaml(input: { name?: string; targetPort: number; dataDir?: string; source?: string; target?: string; verify?: string }): string {
    const name = input.name ?? 'qa';
    return `
  - name: ${name}
    source:
      host: 127.0.0.1
      port: ${this.source.port}
      user: ${REPLICATION_USER}
${input.source ?? '      password: { env: SOURCE_PASSWORD }'}
    target:
      kind: local
      dataDir: ${input.dataDir ?? `copies/${name}`}
      port: ${input.targetPort}
${input.target ?? ''}
    verify:
${
  input.verify ??
  `      databases:
        - name: app
          minTables: 5
          requiredTables: [public.users, billing.invoices]
      owner: { user: ${APP_OWNER}, database: app, password: { env: OWNER_PASSWORD } }`
}
`;
  }

  config(jobsYaml: string, env: NodeJS.ProcessEnv = this.env): Config {
    return parseConfig(`stateDir: state\njobs:${jobsYaml}`, { source: 'test.yaml', baseDir: this.sandbox.root, env });
  }

  async run(
    config: Config,
    jobName = config.jobs[0]?.name ?? 'qa',
    options: { dryRun?: boolean; operation?: 'refresh' | 'rollback'; reason?: string } = {},
  ): Promise<RunRecord> {
    const log = pino(
      { level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
      new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          this.logLines.push(chunk.toString());
          callback();
        },
      }),
    );
    const { runner } = buildRunner(config, log);
    const job = config.jobs.find((j) => j.name === jobName);
    if (!job) throw new Error(`no job ${jobName}`);
    const { reason, ...runOptions } = options;
    return runner.run(job, { kind: 'cli', by: 'test', ...(reason ? { reason } : {}) }, runOptions);
  }

  async destroy(): Promise<void> {
    await this.sandbox.destroy();
  }
}

export { freePort };

/** The data directory of a config's first job, which the harness always makes local. */
export function dataDirOf(config: Config): string {
  const target = config.jobs[0]?.target;
  if (target?.kind !== 'local') throw new Error('not a local job');
  return target.dataDir;
}
