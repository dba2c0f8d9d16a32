// `make webui-openapi`: refresh openapi.json (the snapshot the typed client is generated from)
// from the API itself. Usage: node scripts/update-openapi.mjs <api-dev.pex>
// Starts the API on a free loopback port with a throw-away SQLite dir, saves its
// /api/v1/openapi.json, stops it. The e2e suite fails while the snapshot differs from the API.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const pex = process.argv[2];
if (!pex || !fs.existsSync(pex)) {
  console.error("usage: node scripts/update-openapi.mjs <path to api-dev.pex>");
  process.exit(2);
}
const port = await new Promise((resolve) => {
  const srv = net.createServer().listen(0, "127.0.0.1", () => {
    const { port: p } = srv.address();
    srv.close(() => resolve(p));
  });
});
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "webui-openapi-"));
const python = process.env.PYTHON || ["/usr/bin/python3.11", "/usr/local/bin/python3.11"].find((p) => fs.existsSync(p)) || "python3.11";
const api = spawn(python, [pex], {
  env: { ...process.env, APP_ENV: "development", DATA_DIR: dataDir, API_HOST: "127.0.0.1", API_PORT: String(port), BCRYPT_ROUNDS: "4" },
  stdio: ["ignore", "ignore", "inherit"],
});
try {
  const url = `http://127.0.0.1:${port}/api/v1/openapi.json`;
  let spec;
  for (let i = 0; i < 600 && !spec; i++) {
    if (api.exitCode !== null) throw new Error(`the API exited with ${api.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) spec = await res.json();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!spec) throw new Error(`${url} did not answer`);
  const out = path.resolve(import.meta.dirname, "..", "openapi.json");
  fs.writeFileSync(out, `${JSON.stringify(spec, null, 2)}\n`);
  console.log(`wrote ${out} (${Object.keys(spec.paths).length} paths)`);
} finally {
  api.kill("SIGTERM");
  fs.rmSync(dataDir, { recursive: true, force: true });
}
