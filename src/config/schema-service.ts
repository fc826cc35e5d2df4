import { z } from 'zod';

/**
 * Config for the long-running service: the top-level `server` section and the
 * scheduling fields every job carries. Kept apart from schema.ts so the
 * service's options live next to each other.
 */

export const serverSchema = z.strictObject({}).describe('The HTTP API and scheduler of `db-refresher serve`');

/** Fields spread into every job. */
export const jobServiceFields = {};
