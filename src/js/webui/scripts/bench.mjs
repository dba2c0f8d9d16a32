// `make bench-webui`: figures for the production WebUI bundle.
//   1. sizes of dist/ (raw and gzipped): the initial JS (entry + modulepreloads named by
//      index.html), all JS, CSS; goal: initial JS < 150 KB gzipped;
//   2. with the real API (PEX, SQLite in a temp dir, default bcrypt cost) behind the bundle's
//      Express server, in Debian's Chromium (fresh context = empty cache each run), median of 5:
//      first contentful paint of the login page, and time from clicking "Sign in" to a dashboard
//      whose data has loaded (rule count shown).
// Usage: node scripts/bench.mjs <bundle dir> <api-dev.pex>
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const RUNS = 5;
const [bundleDir, apiPex] = process.argv.slice(2);
if (!bundleDir || !apiPex || !fs.existsSync(path.join(bundleDir, "dist", "index.html")) || !fs.existsSync(apiPex)) {
  console.error("usage: node scripts/bench.mjs <bundle dir with dist/ and server/> <api-dev.pex>");
  process.exit(2);
}
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// --- 1. sizes --------------------------------------------------------------------------------
const dist = path.join(bundleDir, "dist");
const html = fs.readFileSync(path.join(dist, "index.html"), "utf8");
const initial = new Set(
  [...html.matchAll(/<(?:script[^>]+src|link[^>]+rel="modulepreload"[^>]+href)="\/([^"]+\.js)"/g)].map((m) => m[1]),
);
const sizes = { initialJs: [0, 0], allJs: [0, 0], css: [0, 0] };
const files = [];
for (const name of fs.readdirSync(path.join(dist, "assets"))) {
  const buf = fs.readFileSync(path.join(dist, "assets", name));
  const gz = zlib.gzipSync(buf, { level: 9 }).length;
  const rel = `assets/${name}`;
  files.push([rel, buf.length, gz, initial.has(rel)]);
  if (name.endsWith(".js")) {
    sizes.allJs[0] += buf.length;
    sizes.allJs[1] += gz;
    if (initial.has(rel)) {
      sizes.initialJs[0] += buf.length;
      sizes.initialJs[1] += gz;
    }
  } else if (name.endsWith(".css")) {
    sizes.css[0] += buf.length;
    sizes.css[1] += gz;
  }
}
console.log("WebUI bundle (dist/assets, gzip -9):");
for (const [rel, raw, gz, init] of files.sort((a, b) => b[2] - a[2])) {
  console.log(`  ${rel.padEnd(40)} ${kb(raw).padStart(10)} raw ${kb(gz).padStart(9)} gz${init ? "  (initial)" : ""}`);
}
console.log(`  initial JS: ${kb(sizes.initialJs[1])} gz (${kb(sizes.initialJs[0])} raw) -- goal < 150 KB gz: ${sizes.initialJs[1] < 150 * 1024 ? "met" : "MISSED"}`);
console.log(`  all JS:     ${kb(sizes.allJs[1])} gz (${kb(sizes.allJs[0])} raw)`);
console.log(`  CSS:        ${kb(sizes.css[1])} gz (${kb(sizes.css[0])} raw)`);

// --- 2. timings --------------------------------------------------------------------------------
const freePort = () =>
  new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
async function waitUp(url, proc) {
  for (let i = 0; i < 1200; i++) {
    if (proc.exitCode !== null) throw new Error(`${url}: process exited ${proc.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}
const python = process.env.PYTHON || ["/usr/bin/python3.11", "/usr/local/bin/python3.11"].find((p) => fs.existsSync(p)) || "python3.11";
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "webui-bench-"));
const apiPort = await freePort();
const webPort = await freePort();
const procs = [];
let browser;
try {
  const api = spawn(python, [apiPex], {
    env: { ...process.env, APP_ENV: "development", DATA_DIR: dataDir, API_HOST: "127.0.0.1", API_PORT: String(apiPort) },
    stdio: "ignore",
  });
  procs.push(api);
  await waitUp(`http://127.0.0.1:${apiPort}/healthz`, api);
  const web = spawn(process.execPath, [path.join(bundleDir, "server", "main.mjs")], {
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(webPort), API_URL: `http://127.0.0.1:${apiPort}`, APP_ENV: "development", DIST_DIR: dist },
    stdio: "ignore",
  });
  procs.push(web);
  const base = `http://127.0.0.1:${webPort}`;
  await waitUp(`${base}/healthz`, web);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const fcp = [];
  const toDashboard = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/login`, { waitUntil: "load" });
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    const paint = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const have = performance.getEntriesByName("first-contentful-paint")[0];
          if (have) return resolve(have.startTime);
          new PerformanceObserver((list) => resolve(list.getEntries()[0].startTime)).observe({ type: "paint", buffered: true });
        }),
    );
    await page.getByLabel("Email").fill("admin@example.com");
    await page.getByLabel("Password").fill("admin123456!");
    const start = performance.now();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("rules-count").filter({ hasText: /^\d+$/ }).waitFor();
    await page.getByRole("link", { name: "Rules", exact: true }).waitFor();
    const elapsed = performance.now() - start;
    // The first run warms the API (bytecode, SQLite pages) and is not counted.
    if (i > 0) {
      fcp.push(paint);
      toDashboard.push(elapsed);
    }
    await context.close();
  }
  // The API's share of the sign-in: the same login request straight to the API.
  const loginOnly = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${apiPort}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password: "admin123456!" }),
    });
    await res.arrayBuffer();
    loginOnly.push(performance.now() - t0);
  }
  const fmt = (xs) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(`Timings (Chromium headless, local server, median of ${RUNS} after 1 warm-up, fresh context each):`);
  console.log(`  first contentful paint (login page, cold cache): ${median(fcp).toFixed(0)} ms   [${fmt(fcp)}]`);
  console.log(`  sign-in click -> interactive dashboard with data: ${median(toDashboard).toFixed(0)} ms   [${fmt(toDashboard)}]`);
  console.log(`  of which POST /auth/login alone (API, bcrypt cost 12): ${median(loginOnly).toFixed(0)} ms   [${fmt(loginOnly)}]`);
  console.log(`  load average during the run: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (${os.cpus().length} CPUs)`);
} finally {
  await browser?.close();
  for (const p of procs) p.kill("SIGTERM");
  fs.rmSync(dataDir, { recursive: true, force: true });
}
