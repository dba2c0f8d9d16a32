import { defineConfig } from "vitest/config";

// End-to-end: a real API (its PEX on a fresh SQLite file), the real Express server and Debian's
// Chromium, all started by e2e/harness.ts. Files one after the other, tests in order: in
// webui.e2e.ts later tests rely on time having passed (token expiry) and the last one stops the
// API; livestats.e2e.ts brings its own API and fast path.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 90_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    sequence: { concurrent: false, shuffle: false },
    reporters: ["verbose"],
    // expect.poll waits for the page like Playwright's own locators do (default 1 s is too short
    // on a loaded CI machine).
    expect: { poll: { timeout: 20_000, interval: 100 } },
  },
});
