// `npm run bundle`: the deployable WebUI in bundle/ (what the container image copies):
// server/ (without tests), dist/ (the built SPA), package.json + lock, production node_modules.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const out = path.join(root, "bundle");

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, "server"), { recursive: true });
for (const file of fs.readdirSync(path.join(root, "server"))) {
  if (file.endsWith(".mjs") && !file.includes(".test.")) {
    fs.copyFileSync(path.join(root, "server", file), path.join(out, "server", file));
  }
}
fs.cpSync(path.join(root, "dist"), path.join(out, "dist"), { recursive: true });
for (const file of ["package.json", "package-lock.json"]) {
  fs.copyFileSync(path.join(root, file), path.join(out, file));
}
// npm hands scripts a cache path that may be relative to the package root: pin it, or the cache
// would land inside bundle/.
const cache = path.resolve(root, process.env.npm_config_cache || path.join(os.homedir(), ".npm"));
execFileSync(
  "npm",
  ["ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
  { cwd: out, stdio: "inherit", env: { ...process.env, npm_config_cache: cache } },
);
console.log(`bundle: ${out}`);
