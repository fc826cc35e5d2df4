import { readFileSync } from 'node:fs';

/**
 * PostgreSQL refuses to run as root. When db-refresher itself runs as root
 * (a fresh VM, a CI runner), the server programs run as an unprivileged OS
 * user instead: DB_REFRESHER_PG_OS_USER, default "postgres".
 */

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

export function lookupOsUser(name: string, passwd = '/etc/passwd'): OsUser | undefined {
  const text = readFileSync(passwd, 'utf8');
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** undefined when no switch is needed (not root). Throws with advice when one is needed and impossible. */
export function serverOsUser(env: NodeJS.ProcessEnv = process.env): OsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const name = env.DB_REFRESHER_PG_OS_USER ?? 'postgres';
  const user = lookupOsUser(name);
  if (!user) {
    throw new Error(
      `db-refresher runs as root, and PostgreSQL refuses to run as root, so it runs the server programs as the OS user "${name}", which does not exist. Create it (useradd --system ${name}) or set DB_REFRESHER_PG_OS_USER to an existing unprivileged user.`,
    );
  }
  return user;
}
