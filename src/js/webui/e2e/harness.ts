// Starts what the end-to-end tests run against, each on a free loopback port, in a temp dir that
// is removed afterwards: the API (its PEX, APP_ENV=development, fresh SQLite, seeded admin), the
// WebUI's Express server (server/main.mjs serving dist/), and headless Chromium.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const ADMIN = { email: "admin@example.com", password: "admin123456!" };
// The API's lower bound for ACCESS_TOKEN_TTL: the silent-refresh test waits this long.
export const ACCESS_TOKEN_TTL = 30;

const ROOT = path.resolve(import.meta.dirname, "..");

/** Why the suite cannot run here, or null. Under CI=true a missing piece is a failure. */
export function missingPrerequisite(): string | null {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (!process.env.API_PEX) return "API_PEX is not set (run through `./pants test src/js/webui:e2e`)";
  if (!fs.existsSync(process.env.API_PEX)) return `API_PEX ${process.env.API_PEX} does not exist`;
  if (!fs.existsSync(path.join(ROOT, "dist", "index.html"))) return "dist/ is not built (npm run build)";
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, proc: ChildProcess, log: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${url}: process exited (${proc.exitCode}):\n${log()}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up within ${timeoutMs} ms:\n${log()}`);
}

export interface Service {
  url: string;
  proc: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

function spawnService(cmd: string, args: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; log: () => string } {
  const proc = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"], cwd: ROOT });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  return { proc, log: () => output };
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const kill = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      proc.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill("SIGTERM");
    });
}

/** The API's PEX is built for CPython 3.11; a real interpreter, not a version-manager shim. */
function python(): string {
  if (process.env.PYTHON) return process.env.PYTHON;
  return ["/usr/bin/python3.11", "/usr/local/bin/python3.11"].find((p) => fs.existsSync(p)) ?? "python3.11";
}

/** Another test process may take the free port before the API binds it: try a few ports. */
export async function startApi(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startApiOnce(dataDir, env);
    } catch (err) {
      if (attempt >= 3) throw err;
      console.warn(`API start attempt ${attempt} failed, retrying on another port: ${(err as Error).message}`);
    }
  }
}

async function startApiOnce(dataDir: string, env: NodeJS.ProcessEnv): Promise<Service> {
  const apiPort = await freePort();
  const { proc, log } = spawnService(python(), [process.env.API_PEX!], {
    ...process.env,
    ...env,
    APP_ENV: "development",
    DATA_DIR: dataDir,
    API_HOST: "127.0.0.1",
    API_PORT: String(apiPort),
    ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
    BCRYPT_ROUNDS: "4",
    LOGIN_MAX_FAILURES_ACCOUNT: "1000",
    LOGIN_MAX_FAILURES_IP: "1000",
    LOGIN_MAX_FAILURES_PAIR: "1000",
  });
  const url = `http://127.0.0.1:${apiPort}`;
  try {
    await waitForHttp(`${url}/healthz`, proc, log);
  } catch (err) {
    await stopper(proc)();
    throw err;
  }
  return { url, proc, log, stop: stopper(proc) };
}

/** What the fast-path demo (src/python/myapp/fastpath/demo.py) announces once it is ready. */
export interface FastpathDemo {
  grpc: string;
  interface: string;
  sources: string[];
  pps: number;
  stop(): Promise<void>;
}

/** Why the live-stats suite cannot run here (it attaches XDP to a veth pair), or null. */
export function missingFastpathPrerequisite(): string | null {
  const pex = process.env.FASTPATH_DEMO_PEX;
  if (!pex) return "FASTPATH_DEMO_PEX is not set (run through `./pants test src/js/webui:e2e`)";
  if (!fs.existsSync(pex)) return `FASTPATH_DEMO_PEX ${pex} does not exist`;
  if (process.getuid?.() !== 0) return "needs root (network namespaces, XDP)";
  return null;
}

/** The real agent on a veth pair with a steady stream from two sources (stopped by stop()). */
export async function startFastpathDemo(): Promise<FastpathDemo> {
  const { proc, log } = spawnService(python(), [process.env.FASTPATH_DEMO_PEX!], { ...process.env, DEMO_PPS: "1000" });
  const deadline = Date.now() + 60_000;
  let line: RegExpMatchArray | null = null;
  while (!(line = log().match(/^\{"grpc".*\}$/m))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stopper(proc)();
      throw new Error(`fast-path demo did not start:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...(JSON.parse(line[0]) as Omit<FastpathDemo, "stop">), stop: stopper(proc) };
}

export async function startWebui(apiUrl: string): Promise<Service> {
  const { proc, log } = spawnService(process.execPath, [path.join(ROOT, "server", "main.mjs")], {
    ...process.env,
    HOST: "127.0.0.1",
    // Port 0: the kernel picks a free one, which the server prints (no race with other tests).
    PORT: "0",
    API_URL: apiUrl,
    APP_ENV: "development",
    DIST_DIR: path.join(ROOT, "dist"),
  });
  const deadline = Date.now() + 30_000;
  let match: RegExpMatchArray | null = null;
  while (!(match = log().match(/listening on http:\/\/127\.0\.0\.1:(\d+)/))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`WebUI server did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = `http://127.0.0.1:${match[1]}`;
  await waitForHttp(`${url}/healthz`, proc, log);
  return { url, proc, log, stop: stopper(proc) };
}

export function launchBrowser(): Promise<Browser> {
  // launch() gives every run a fresh, temporary profile (user data dir) of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
    // Debian's /usr/bin/chromium is a shell wrapper: give it the usual tools even in a sandbox.
    env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/bin:/bin` },
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${process.pid}-`));
}

/**
 * Where screenshots go: WEBUI_E2E_ARTIFACTS (the Makefile sets dist/test-artifacts/webui), else a
 * fixed folder under the temp dir (a Pants sandbox is deleted after the run).
 */
export function artifactsDir(): string {
  const dir = process.env.WEBUI_E2E_ARTIFACTS || path.join(os.tmpdir(), "myapp-webui-e2e-artifacts");
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Direct API calls (bypassing the UI) to set up users and to check what the UI did. Access tokens
 * live ACCESS_TOKEN_TTL seconds here, shorter than the suite: on a 401 it signs in again.
 */
export class ApiAs {
  private token = "";

  private constructor(
    readonly base: string,
    private readonly email: string,
    private readonly password: string,
  ) {}

  static async login(base: string, email: string, password: string): Promise<ApiAs> {
    const client = new ApiAs(base, email, password);
    await client.signIn();
    return client;
  }

  private async signIn(): Promise<void> {
    const res = await fetch(`${this.base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: this.email, password: this.password }),
    });
    if (!res.ok) throw new Error(`login ${this.email}: ${res.status} ${await res.text()}`);
    this.token = ((await res.json()) as { access_token: string }).access_token;
  }

  private send(method: string, p: string, body?: unknown): Promise<Response> {
    return fetch(`${this.base}/api/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test helper over JSON
  async call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    let res = await this.send(method, p, body);
    if (res.status === 401) {
      await this.signIn();
      res = await this.send(method, p, body);
    }
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
}
