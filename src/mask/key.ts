import { createHash, createHmac } from 'node:crypto';

/**
 * The bind parameters of every masking statement, derived from the job's
 * masking key: the HMAC-SHA256 inner and outer key blocks (RFC 2104) and two
 * seeds for picking fake names. They travel only as bind parameters, never in
 * SQL text, logs or records. Pure computation.
 */

const BLOCK = 64;

export interface KeyParams {
  ipad: Buffer;
  opad: Buffer;
  givenSeed: string;
  familySeed: string;
}

export function keyParams(key: string): KeyParams {
  let k = Buffer.from(key, 'utf8');
  if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
  const padded = Buffer.alloc(BLOCK);
  k.copy(padded);
  const ipad = Buffer.alloc(BLOCK);
  const opad = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i += 1) {
    ipad[i] = (padded[i] as number) ^ 0x36;
    opad[i] = (padded[i] as number) ^ 0x5c;
  }
  const seed = (label: string) => createHmac('sha256', key).update(label).digest().readBigInt64BE(0).toString();
  return { ipad, opad, givenSeed: seed('given-name-seed'), familySeed: seed('family-name-seed') };
}

/** The parameters in the order of KEY_PARAMS ($1–$4). */
export function keyParamList(params: KeyParams): unknown[] {
  return [params.ipad, params.givenSeed, params.familySeed, params.opad];
}
