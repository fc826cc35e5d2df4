import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { serverOsUser } from '../../src/postgres/os-user.js';

/**
 * A throwaway PKI made with the openssl command line: a CA, a server
 * certificate for 127.0.0.1/localhost, and client certificates whose CN is the
 * PostgreSQL role they authenticate as.
 */
export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  client(cn: string, options?: { otherCa?: boolean; keyMode?: number }): { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-subj',
      `/CN=${name}`,
      '-days',
      '2',
    ],
    dir,
  );
}

function sign(dir: string, ca: string, name: string, subject: string, ext?: string): void {
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  const args = [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '2',
  ];
  if (ext) {
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    args.push('-extfile', `${name}.ext`);
  }
  openssl(args, dir);
}

export function createPki(root: string): TestPki {
  const dir = path.join(root, 'pki');
  mkdirSync(dir, { recursive: true });
  makeCa(dir, 'ca');
  sign(dir, 'ca', 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  // The server key must belong to the server's OS user and be private.
  const user = serverOsUser();
  for (const file of ['server.key', 'server.crt', 'ca.crt']) {
    if (user) chownSync(path.join(dir, file), user.uid, user.gid);
  }
  chmodSync(path.join(dir, 'server.key'), 0o600);
  chmodSync(dir, 0o755);
  let otherCaMade = false;
  return {
    dir,
    ca: path.join(dir, 'ca.crt'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
    client(cn, options = {}) {
      const ca = options.otherCa ? 'other-ca' : 'ca';
      if (options.otherCa && !otherCaMade) {
        makeCa(dir, 'other-ca');
        otherCaMade = true;
      }
      const name = `client-${cn}-${ca}`;
      sign(dir, ca, name, `/CN=${cn}`);
      const key = path.join(dir, `${name}.key`);
      chmodSync(key, options.keyMode ?? 0o600);
      return { cert: path.join(dir, `${name}.crt`), key };
    },
  };
}
