import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lookupOsUser } from '../../src/postgres/os-user.js';
import { prepareSocketDir, socketDirFor } from '../../src/targets/local/private-window.js';

/**
 * The private window's socket directory on a real file system. A kill -9
 * between making the directory and handing it to the server's OS user (when
 * db-refresher runs as root) leaves it owned by db-refresher's own user: the
 * next run must take it over, not refuse it. A directory of anyone else, or one
 * others may enter, is still refused.
 */

const isRoot = process.getuid?.() === 0;
const server = lookupOsUser('postgres');
let tmp: string;

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'dbr-socketdir-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const deps = (runAs = server) => ({ dataDir: path.join(tmp, 'data'), pgCtl: 'pg_ctl', runAs, startTimeoutSeconds: 5, tmpDir: tmp });

describe.skipIf(!isRoot || !server)('the private socket directory, as root with a server OS user', () => {
  it('takes over the directory a killed run made but did not hand over yet', async () => {
    const dir = socketDirFor(deps());
    mkdirSync(dir, { mode: 0o700 }); // made by db-refresher (root), chown not done
    await expect(prepareSocketDir(deps())).resolves.toBe(dir);
    expect(statSync(dir).uid).toBe(server?.uid);
    expect(statSync(path.join(dir, 'pg_hba.conf')).uid).toBe(server?.uid);
  });

  it('refuses a directory of another user, or one others may enter', async () => {
    const dir = socketDirFor(deps());
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    await expect(prepareSocketDir(deps())).rejects.toThrow(/is not a private directory/);
    chownSync(dir, 0, 0);
    chmodSync(dir, 0o755);
    await expect(prepareSocketDir(deps())).rejects.toThrow(/is not a private directory/);
  });
});
