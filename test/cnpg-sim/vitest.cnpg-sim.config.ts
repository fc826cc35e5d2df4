import { defineConfig } from 'vitest/config';

// The simulated CNPG operator's own end-to-end tests: real API server (test/envtest), real PostgreSQL.
export default defineConfig({
  test: {
    include: ['test/e2e/cnpg-sim*.test.ts'],
    globalSetup: ['test/envtest/global-setup.ts'],
    testTimeout: 120_000,
    // A cold build of the API server takes minutes.
    hookTimeout: 600_000,
    // Each file clones with real PostgreSQL servers; two cores.
    maxWorkers: 2,
  },
});
