// The /api proxy in front of the real API, from outside as an attacker would try it: raw request
// lines (no client library normalises them), absolute-form targets and dot segments aimed at the
// API's /metrics or at another host. Nothing but normalised /api/ paths may reach the API.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, missingPrerequisite, type Service, startApi, startWebui, tempDir } from "./harness";

const missing = missingPrerequisite();
const ci = process.env.CI === "true" || process.env.CI === "1";

if (missing && ci) {
  describe("WebUI /api proxy against the real API", () => {
    it("has what it needs under CI", () => {
      throw new Error(`cannot run the proxy end-to-end tests: ${missing}`);
    });
  });
} else if (missing) {
  describe.skip(`WebUI /api proxy against the real API (skipped: ${missing})`, () => {
    it("needs its prerequisites", () => undefined);
  });
} else {
  suite();
}

/** Writes one raw request on a new connection to `url`'s host and port; the whole answer. */
function raw(url: string, requestLine: string, headers = ""): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(Number(port), hostname, () =>
      socket.write(`${requestLine}\r\nHost: ${hostname}:${port}\r\n${headers}Connection: close\r\n\r\n`),
    );
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString()));
  });
}

function suite() {
  let api: Service;
  let webui: Service;
  let decoy: net.Server;
  let decoyPort: number;
  const decoyHits: string[] = [];

  beforeAll(async () => {
    api = await startApi(tempDir("webui-proxy-e2e-"));
    webui = await startWebui(api.url);
    // Another loopback address stands for cloud metadata or an internal service.
    decoy = net.createServer((socket) => {
      socket.once("data", (d: Buffer) => decoyHits.push(d.toString().split("\r\n")[0]!));
      socket.end("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret");
    });
    decoyPort = await new Promise<number>((resolve) =>
      decoy.listen(0, "127.0.0.2", () => resolve((decoy.address() as net.AddressInfo).port)),
    );
  });

  afterAll(async () => {
    await webui?.stop();
    await api?.stop();
    await new Promise((r) => decoy?.close(r));
  });

  it("the API serves /metrics when asked directly (so the checks below can fail)", async () => {
    const res = await fetch(`${api.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^# (HELP|TYPE) /m);
  });

  it.each([
    "GET /api/../metrics HTTP/1.1",
    "GET /api/%2e%2e/metrics HTTP/1.1",
    "GET /api/%2E%2E/metrics HTTP/1.1",
    "GET /api/v1/..%2f..%2fmetrics HTTP/1.1",
    "GET /api/..\\metrics HTTP/1.1",
    "GET /api/%5c../metrics HTTP/1.1",
    "GET /api/%252e%252e/metrics HTTP/1.1",
  ])("%s: 400 JSON, never the API's metrics", async (line) => {
    const answer = await raw(webui.url, line);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"code":"bad_request_target"');
    expect(answer).not.toMatch(/# (HELP|TYPE) /);
  });

  it("refuses absolute-form targets: neither another host nor the API's own /metrics is fetched", async () => {
    const targets = [
      `http://127.0.0.2:${decoyPort}/api/x`,
      `http://127.0.0.2:${decoyPort}/latest/meta-data/`,
      `${api.url}/metrics`,
      `${api.url}/api/v1/health`,
    ];
    for (const target of targets) {
      const answer = await raw(webui.url, `GET ${target} HTTP/1.1`);
      expect(answer, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, target).not.toContain("secret");
      expect(answer, target).not.toMatch(/# (HELP|TYPE) /);
    }
    expect(decoyHits).toEqual([]);
  });

  it("still signs in through a normal path, and refuses the same login from another site", async () => {
    const body = JSON.stringify(ADMIN);
    const login = (headers: Record<string, string>) =>
      fetch(`${webui.url}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
    const crossSite = await login({ origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    const ok = await login({ origin: webui.url });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("set-cookie")).toMatch(/^myapp_refresh=/);
    expect((await ok.json()).access_token).toBeTruthy();
  });
}
