/**
 * Sizes as people write them in config: Kubernetes quantities (`10Gi`, `500M`),
 * PostgreSQL's pg_size_pretty units (`10 GB`, which PostgreSQL means as 1024-based),
 * or a plain number of bytes.
 */
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  bytes: 1,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
  pi: 1024 ** 5,
  k: 1000,
  m: 1000 ** 2,
  g: 1000 ** 3,
  t: 1000 ** 4,
  p: 1000 ** 5,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
  pb: 1024 ** 5,
};

export function parseByteSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.round(text) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return undefined;
  const [, amount, unit] = match;
  // Kubernetes is case-sensitive here: "M" is mega, "m" would be milli. Nobody
  // means milli-bytes, so units are read case-insensitively.
  const factor = UNITS[(unit ?? '').toLowerCase()];
  if (factor === undefined) return undefined;
  return Math.round(Number(amount) * factor);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  // Compare the value as it will print, so 1048575 bytes shows as 1.0 MiB, not 1024.0 KiB.
  while (Math.abs(Number(value.toFixed(1))) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
