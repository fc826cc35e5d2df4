import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, Sandbox } from './pg-sandbox.js';
import { APP_OWNER, loadSampleData, REPLICATION_USER } from './sample-data.js';

/**
 * `npm run demo`: creates a throwaway source cluster with sample data,
 * refreshes a local copy of it with `db-refresher run` (the real CLI and
 * pipeline), prints the result, and removes everything it created.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '../src/cli/bin.js');

function say(text: string): void {
  process.stderr.write(`\x1b[1m==> ${text}\x1b[0m\n`);
}

async function main(): Promise<number> {
  const sandbox = Sandbox.create('db-refresher-demo-');
  try {
    const replicationPassword = randomBytes(9).toString('hex');
    const ownerPassword = randomBytes(9).toString('hex');
    say(`creating a throwaway source PostgreSQL cluster in ${sandbox.root}`);
    const source = await sandbox.createCluster({ name: 'source' });
    await loadSampleData(source, { replicationPassword, ownerPassword });
    say(`source is up on 127.0.0.1:${source.port} with databases app and reporting`);

    const targetPort = await freePort();
    const configFile = path.join(sandbox.root, 'db-refresher.yaml');
    writeFileSync(
      configFile,
      `# Written by npm run demo.
stateDir: state
jobs:
  - name: demo
    description: Refresh a local copy of the demo source
    source:
      host: 127.0.0.1
      port: ${source.port}
      user: ${REPLICATION_USER}
      password: { env: DEMO_SOURCE_PASSWORD }
    target:
      kind: local
      dataDir: copy
      port: ${targetPort}
    verify:
      databases:
        - name: app
          minTables: 5
          requiredTables: [public.users, billing.invoices]
        - name: reporting
      owner: { user: ${APP_OWNER}, database: app, password: { env: DEMO_OWNER_PASSWORD } }
`,
    );
    say(`db-refresher run demo --config ${configFile}`);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [cli, 'run', 'demo', '--config', configFile, '-o', 'text'], {
        stdio: 'inherit',
        env: { ...process.env, DEMO_SOURCE_PASSWORD: replicationPassword, DEMO_OWNER_PASSWORD: ownerPassword },
      });
      child.on('close', (exit) => resolve(exit ?? 1));
    });
    if (code === 0) {
      const client = new pg.Client({ host: '127.0.0.1', port: targetPort, user: APP_OWNER, password: ownerPassword, database: 'app' });
      await client.connect();
      const { rows } = await client.query<{ users: string }>('SELECT count(*) AS users FROM public.users');
      await client.end();
      say(`the copy on 127.0.0.1:${targetPort} answers: ${rows[0]?.users} users in app.public.users`);
    }
    say(code === 0 ? 'demo finished: cleaning up' : `db-refresher exited with ${code}: cleaning up`);
    return code;
  } finally {
    await sandbox.destroy();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
