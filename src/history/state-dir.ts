import { randomBytes } from 'node:crypto';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Whether the state directory takes writes (locks and, with the file history,
 * run records live there). A read-only mount or a full disk there means a run
 * could not record what it does, so /readyz says so before any run starts.
 */
export async function stateDirWritable(stateDir: string): Promise<{ ok: true } | { ok: false; message: string }> {
  const probe = path.join(stateDir, `.write-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(stateDir, { recursive: true });
    await writeFile(probe, '');
    await unlink(probe);
    return { ok: true };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : String(error);
    return { ok: false, message: `cannot write to the state directory ${stateDir} (${why}); runs could not be recorded` };
  }
}
