import { z } from 'zod';

/** A secret reference in the config file: {env: NAME} or {file: PATH}. Values are never written inline. */
export const secretRef = z
  .union(
    [
      z.strictObject({ env: z.string().min(1).describe('Name of an environment variable holding the value') }),
      z.strictObject({ file: z.string().min(1).describe('Path of a file holding the value, e.g. a mounted Kubernetes Secret') }),
    ],
    {
      error: (issue) =>
        typeof issue.input === 'string'
          ? 'inline secrets are not allowed; reference the value with {env: VARIABLE} or {file: PATH}'
          : 'must be {env: VARIABLE} or {file: PATH}',
    },
  )
  .describe('A secret reference: {env: NAME} or {file: PATH}. Values are never written inline.');
