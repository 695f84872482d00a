import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file in its own process: tests count fds and open listeners.
    pool: 'forks',
    testTimeout: 30000,
    hookTimeout: 30000,
  },
});
