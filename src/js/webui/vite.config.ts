import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The SPA build (dist/) and the unit/component tests. The end-to-end suite has its own config
// (vitest.e2e.config.ts) because it starts real servers and a real browser.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    // Hashed file names under /assets/ are what the Express server caches for a year.
    assetsDir: "assets",
    sourcemap: false,
  },
  server: {
    // `npm run dev`: the API of `make run` on :5000.
    proxy: { "/api": process.env.API_URL ?? "http://127.0.0.1:5000" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}", "server/**/*.test.ts"],
    setupFiles: ["src/test-setup.ts"],
    restoreMocks: true,
    // Generous per-test limit for a loaded CI machine (see src/test-setup.ts).
    testTimeout: 30_000,
    // Node 25+ has its own global localStorage (undefined without --localstorage-file), which
    // hides jsdom's: the components' tests need jsdom's.
    execArgv: ["--no-experimental-webstorage"],
  },
});
