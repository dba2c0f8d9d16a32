// @vitest-environment node
// The Express server against a small recording HTTP server standing in for the API (the real API
// is exercised by the end-to-end suite): what reaches the API, what reaches the browser.
import fs from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.mjs";

type Seen = { method: string; url: string; headers: http.IncomingHttpHeaders; body: string; remotePort: number };
type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

let upstream: http.Server;
let upstreamUrl: URL;
let seen: Seen[] = [];
let reply: (req: Seen) => Reply = () => ({ status: 200, body: {} });
let webui: http.Server;
let base: string;
let distDir: string;

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
}

type Options = { secureCookies?: boolean; trustedProxyHops?: number; apiTimeoutMs?: number };

function startWebui(apiUrl: URL, options: Options = {}): Promise<void> {
  const { secureCookies = false, trustedProxyHops = 0, apiTimeoutMs = 2000 } = options;
  webui = http.createServer(createApp({ apiUrl, distDir, secureCookies, apiTimeoutMs, trustedProxyHops }));
  return listen(webui).then((port) => {
    base = `http://127.0.0.1:${port}`;
  });
}

beforeAll(async () => {
  distDir = fs.mkdtempSync(path.join(os.tmpdir(), "webui-dist-"));
  fs.mkdirSync(path.join(distDir, "assets"));
  fs.writeFileSync(path.join(distDir, "index.html"), "<!doctype html><title>myapp</title>");
  fs.writeFileSync(path.join(distDir, "assets", "index-abc123.js"), "console.log(1)");
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const entry = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        remotePort: req.socket.remotePort ?? 0,
      };
      seen.push(entry);
      const r = reply(entry);
      res.writeHead(r.status, { "content-type": "application/json", ...r.headers });
      res.end(r.body === undefined ? "" : JSON.stringify(r.body));
    });
  });
  upstreamUrl = new URL(`http://127.0.0.1:${await listen(upstream)}`);
  await startWebui(upstreamUrl);
});

afterEach(() => {
  seen = [];
  reply = () => ({ status: 200, body: {} });
});

afterAll(async () => {
  await new Promise((r) => webui.close(r));
  await new Promise((r) => upstream.close(r));
  fs.rmSync(distDir, { recursive: true, force: true });
});

const tokens = {
  access_token: "access-1",
  token_type: "Bearer",
  expires_in: 900,
  refresh_token: "refresh-1",
  refresh_expires_in: 1209600,
  user: { id: 1, email: "admin@example.com", role: "admin" },
};

describe("static files and headers", () => {
  it("answers /healthz", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("sends the security headers", async () => {
    const res = await fetch(`${base}/`);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("strict-origin-when-cross-origin");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-powered-by")).toBeNull();
  });

  it("serves index.html with no-cache for client routes, and hashed assets for a year", async () => {
    for (const route of ["/", "/users", "/rules/3", "/index.html"]) {
      const res = await fetch(`${base}${route}`);
      expect(res.status, route).toBe(200);
      expect(res.headers.get("cache-control"), route).toBe("no-cache");
      expect(await res.text()).toContain("<title>myapp</title>");
    }
    const asset = await fetch(`${base}/assets/index-abc123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
  });

  it("answers 404 for a missing asset instead of the SPA shell", async () => {
    const res = await fetch(`${base}/assets/index-gone.js`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("not_found");
  });
});

describe("proxy", () => {
  it("passes other API calls through unchanged, without the browser's cookies", async () => {
    reply = () => ({ status: 201, body: { id: 7 }, headers: { etag: '"1"', "x-request-id": "r1" } });
    const res = await fetch(`${base}/api/v1/rules?page=2`, {
      method: "POST",
      headers: { authorization: "Bearer a", "content-type": "application/json", cookie: "myapp_refresh=secret" },
      body: JSON.stringify({ name: "r" }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("etag")).toBe('"1"');
    expect(res.headers.get("x-request-id")).toBe("r1");
    expect(await res.json()).toEqual({ id: 7 });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe("/api/v1/rules?page=2");
    expect(seen[0]!.headers.authorization).toBe("Bearer a");
    expect(seen[0]!.headers.cookie).toBeUndefined();
    expect(JSON.parse(seen[0]!.body)).toEqual({ name: "r" });
  });

  it("moves the refresh token from the login answer into an HttpOnly cookie", async () => {
    reply = () => ({ status: 200, body: tokens });
    const res = await fetch(`${base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "admin@example.com", password: "pw" }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.refresh_token).toBeUndefined();
    expect(body.access_token).toBe("access-1");
    const cookie = res.headers.get("set-cookie") ?? "";
    expect(cookie).toContain("myapp_refresh=refresh-1");
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).toContain("Path=/api/v1/auth");
    expect(cookie).toContain("Max-Age=1209600");
    expect(cookie).not.toContain("Secure");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(JSON.parse(seen[0]!.body)).toEqual({ email: "admin@example.com", password: "pw" });
  });

  it("passes a failed login through without setting a cookie", async () => {
    const err = { error: { code: "invalid_credentials", message: "Wrong email or password" } };
    reply = () => ({ status: 401, body: err });
    const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", body: "{}" });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual(err);
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("refreshes with the token from the cookie and rotates the cookie", async () => {
    reply = () => ({ status: 200, body: { ...tokens, refresh_token: "refresh-2" } });
    const res = await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { cookie: "other=1; myapp_refresh=refresh-1" },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(seen[0]!.body)).toEqual({ refresh_token: "refresh-1" });
    expect(res.headers.get("set-cookie")).toContain("myapp_refresh=refresh-2");
    expect((await res.json()).refresh_token).toBeUndefined();
  });

  it("ignores a refresh token the page tries to send in the body", async () => {
    reply = () => ({ status: 200, body: tokens });
    await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { cookie: "myapp_refresh=from-cookie" },
      body: JSON.stringify({ refresh_token: "from-script" }),
    });
    expect(JSON.parse(seen[0]!.body)).toEqual({ refresh_token: "from-cookie" });
  });

  it("answers 401 to a refresh without a cookie, without asking the API", async () => {
    const res = await fetch(`${base}/api/v1/auth/refresh`, { method: "POST" });
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe("unauthenticated");
    expect(seen).toHaveLength(0);
  });

  it("clears the cookie when the API refuses the refresh token", async () => {
    reply = () => ({ status: 401, body: { error: { code: "invalid_token", message: "spent" } } });
    const res = await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { cookie: "myapp_refresh=spent" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toContain("Max-Age=0");
  });

  it("revokes on logout with the cookie's token and clears the cookie", async () => {
    reply = () => ({ status: 204 });
    const res = await fetch(`${base}/api/v1/auth/logout`, {
      method: "POST",
      headers: { authorization: "Bearer a", cookie: "myapp_refresh=refresh-9" },
    });
    expect(res.status).toBe(204);
    expect(seen[0]!.headers.authorization).toBe("Bearer a");
    expect(JSON.parse(seen[0]!.body)).toEqual({ refresh_token: "refresh-9" });
    expect(res.headers.get("set-cookie")).toContain("myapp_refresh=;");
  });

  it("answers 413 to an oversized login body, without asking the API", async () => {
    const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", body: "x".repeat(200 * 1024) });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toEqual({ code: "payload_too_large", message: "request body over 65536 bytes" });
    expect(seen).toHaveLength(0);
  });

  it("refuses cross-origin session requests", async () => {
    const res = await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { cookie: "myapp_refresh=x", origin: "https://evil.example" },
    });
    expect(res.status).toBe(403);
    expect(seen).toHaveLength(0);
  });

  it("answers 502 with a JSON error when the API is down", async () => {
    const dead = http.createServer();
    const port = await listen(dead);
    await new Promise((r) => dead.close(r));
    await withWebui(new URL(`http://127.0.0.1:${port}`), {}, async () => {
      const res = await fetch(`${base}/api/v1/users`);
      expect(res.status).toBe(502);
      const body = await res.json();
      expect(body.error.code).toBe("api_unavailable");
      expect(body.error.message).toMatch(/not reachable/);
    });
  });

  it("answers 504 when the API does not answer in time", async () => {
    const hung = http.createServer(() => {});
    const port = await listen(hung);
    try {
      await withWebui(new URL(`http://127.0.0.1:${port}`), { apiTimeoutMs: 200 }, async () => {
        const res = await fetch(`${base}/api/v1/users`);
        expect(res.status).toBe(504);
        expect((await res.json()).error.code).toBe("api_timeout");
      });
    } finally {
      hung.closeAllConnections();
      await new Promise((r) => hung.close(r));
    }
  });

  it("reuses upstream connections (keep-alive) and streams large bodies both ways", async () => {
    const big = "x".repeat(3 * 1024 * 1024);
    reply = (req) => ({ status: 200, body: { size: req.body.length, echo: big } });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/api/v1/rules`, { method: "PUT", body: big });
      expect((await res.json()).size).toBe(JSON.stringify(big).length - 2);
    }
    expect(new Set(seen.map((s) => s.remotePort)).size).toBe(1);
  });
});

/** Runs `fn` against a second WebUI server (other settings), then puts the shared one back. */
async function withWebui(apiUrl: URL, options: Options, fn: () => Promise<void>): Promise<void> {
  const previous = webui;
  const previousBase = base;
  await startWebui(apiUrl, options);
  try {
    await fn();
  } finally {
    await new Promise((r) => webui.close(r));
    webui = previous;
    base = previousBase;
  }
}

/** Writes `request` as is on a new TCP connection and returns the raw answer. */
function rawRequest(request: string): Promise<string> {
  const { port } = webui.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString()));
  });
}

function rawGet(target: string, headers = ""): Promise<string> {
  return rawRequest(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
}

describe("the /api proxy forwards only normalised paths under /api/ to API_URL", () => {
  // Stands for an internal service or a metadata endpoint on another loopback address: a
  // request that names it must never reach it.
  let decoy: net.Server;
  let decoyPort: number;
  let decoyConnections = 0;
  const decoySockets = new Set<net.Socket>();

  beforeAll(async () => {
    decoy = net.createServer((socket) => {
      decoyConnections += 1;
      decoySockets.add(socket);
      socket.end("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret");
    });
    decoyPort = await new Promise<number>((resolve) =>
      decoy.listen(0, "127.0.0.2", () => resolve((decoy.address() as AddressInfo).port)),
    );
  });

  afterAll(async () => {
    for (const socket of decoySockets) socket.destroy();
    await new Promise((r) => decoy.close(r));
  });

  it("the decoy on 127.0.0.2 answers when asked directly (so the tests below can fail)", async () => {
    const before = decoyConnections;
    const res = await fetch(`http://127.0.0.2:${decoyPort}/api/x`);
    expect(await res.text()).toBe("secret");
    expect(decoyConnections).toBe(before + 1);
  });

  it.each([
    (p: number) => `http://127.0.0.2:${p}/api/x`,
    (p: number) => `http://127.0.0.2:${p}/api/v1/users?x=1`,
    (p: number) => `HTTP://127.0.0.2:${p}/api/x`,
    (p: number) => `http://127.0.0.2:${p}/`,
  ])("refuses the absolute-form target %#: 400, nothing reaches any upstream", async (target) => {
    const before = decoyConnections;
    const answer = await rawGet(target(decoyPort));
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"code":"bad_request_target"');
    expect(answer).not.toContain("secret");
    expect(decoyConnections).toBe(before);
    expect(seen).toHaveLength(0);
  });

  it("takes //host/... as a local path (the SPA shell), not as a host to fetch from", async () => {
    const before = decoyConnections;
    const answer = await rawGet(`//127.0.0.2:${decoyPort}/api/x`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain("<title>myapp</title>");
    expect(decoyConnections).toBe(before);
    expect(seen).toHaveLength(0);
  });

  it.each([
    "/api/../metrics",
    "/api/v1/../../metrics",
    "/api/%2e%2e/metrics",
    "/api/%2E%2E/metrics",
    "/api/.%2e/metrics",
    "/api/%2e./metrics",
    "/api/v1/..%2fmetrics",
    "/api/v1%2f..%2f..%2fmetrics",
    "/api/v1%2F..%2F..%2Fmetrics",
    "/api/..\\metrics",
    "/api/v1/..%5cmetrics",
    "/api/v1/..%5Cmetrics",
    "/api/%252e%252e/metrics",
    "/api/%252e%252e%252fmetrics",
    "/api/./v1/users",
    "/api//metrics",
    "/api/v1/%00",
    "/api/v1/%zz",
    "/api/v1/users%",
    "/API/../metrics",
    "/api",
    "/api?x=/api/",
  ])("refuses %s with 400 and a JSON error, nothing reaches the API", async (target) => {
    const answer = await rawGet(target);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toMatch(/content-type: application\/json/i);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
    expect(body.error.code).toBe("bad_request_target");
    expect(body.error.message).toMatch(/^Not forwarded to the API: /);
    expect(seen).toHaveLength(0);
  });

  it("forwards a normal path and its query untouched", async () => {
    const answer = await rawGet("/api/v1/rules/web.1?q=..%2f..&sort=-name");
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen.map((s) => s.url)).toEqual(["/api/v1/rules/web.1?q=..%2f..&sort=-name"]);
  });

  it("never returns the API's /metrics", async () => {
    reply = (req) => (req.url === "/metrics" ? { status: 200, body: "api_requests_total 1" } : { status: 404 });
    for (const target of ["/api/../metrics", "/api/%2e%2e/metrics", "/api/..\\metrics", "/metrics"]) {
      expect(await rawGet(target)).not.toContain("api_requests_total");
    }
    expect(seen).toHaveLength(0);
  });
});

describe("session endpoints refuse cross-site requests", () => {
  it.each([
    ["/api/v1/auth/login", { origin: "https://evil.example" }],
    ["/api/v1/auth/login", { origin: "null" }],
    ["/api/v1/auth/login", { "sec-fetch-site": "cross-site" }],
    ["/api/v1/auth/login", { "sec-fetch-site": "same-site", origin: "https://sub.example" }],
    ["/api/v1/auth/refresh", { origin: "https://evil.example", cookie: "myapp_refresh=x" }],
    ["/api/v1/auth/logout", { "sec-fetch-site": "cross-site", cookie: "myapp_refresh=x" }],
    ["/api/v1/auth/password", { origin: "http://127.0.0.1:1" }],
  ])("%s with %o: 403", async (path, headers) => {
    const res = await fetch(`${base}${path}`, { method: "POST", headers, body: "{}" });
    expect(res.status).toBe(403);
    const body = await res.json();
    expect(body.error.code).toBe("forbidden");
    expect(body.error.message).toMatch(/Cross-site session requests are refused/);
    expect(seen).toHaveLength(0);
  });

  it("lets same-origin requests and clients that send no Origin (curl) through", async () => {
    reply = () => ({ status: 200, body: tokens });
    const sameOrigin = { origin: base, "sec-fetch-site": "same-origin" };
    for (const headers of [sameOrigin, {}]) {
      const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers, body: "{}" });
      expect(res.status).toBe(200);
    }
    expect(seen).toHaveLength(2);
  });
});

describe("production session cookie", () => {
  it("is __Host-myapp_refresh: Secure, Path=/, no Domain; HSTS is on", async () => {
    await withWebui(upstreamUrl, { secureCookies: true }, async () => {
      reply = () => ({ status: 200, body: tokens });
      const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", body: "{}" });
      const cookie = res.headers.get("set-cookie") ?? "";
      expect(cookie).toMatch(/^__Host-myapp_refresh=refresh-1; /);
      expect(cookie.split("; ")).toEqual(
        expect.arrayContaining(["Path=/", "Secure", "HttpOnly", "SameSite=Strict"]),
      );
      expect(cookie).not.toMatch(/Domain=/i);
      expect(res.headers.get("strict-transport-security")).toContain("max-age=31536000");
    });
  });

  it("is read back on refresh; the unprefixed name is ignored", async () => {
    await withWebui(upstreamUrl, { secureCookies: true }, async () => {
      reply = () => ({ status: 200, body: tokens });
      const res = await fetch(`${base}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { cookie: "myapp_refresh=planted; __Host-myapp_refresh=real" },
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(seen[0]!.body)).toEqual({ refresh_token: "real" });
      const planted = await fetch(`${base}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { cookie: "myapp_refresh=planted" },
      });
      expect(planted.status).toBe(401);
      expect(seen).toHaveLength(1);
    });
  });

  it.each([
    [false, "myapp_refresh=a; myapp_refresh=b"],
    [true, "__Host-myapp_refresh=a; other=1; __Host-myapp_refresh=b"],
  ])("refuses duplicate refresh cookies (secure: %s) with 400 instead of taking one", async (secure, cookie) => {
    await withWebui(upstreamUrl, { secureCookies: secure }, async () => {
      for (const path of ["/api/v1/auth/refresh", "/api/v1/auth/logout"]) {
        const res = await fetch(`${base}${path}`, { method: "POST", headers: { cookie } });
        expect(res.status).toBe(400);
        const body = await res.json();
        expect(body.error.code).toBe("duplicate_session_cookie");
        expect(body.error.message).toMatch(/carries 2 .*myapp_refresh cookies.*sign in again/);
        expect(res.headers.get("set-cookie")).toContain("Max-Age=0");
      }
      expect(seen).toHaveLength(0);
    });
  });
});

describe("X-Forwarded-For reaching the API", () => {
  it.each([
    [0, undefined, "127.0.0.1"],
    [0, "203.0.113.7", "127.0.0.1"],
    [1, "203.0.113.7", "203.0.113.7"],
    [1, "6.6.6.6, 203.0.113.7", "203.0.113.7"],
    [1, "6.6.6.6,203.0.113.7", "203.0.113.7"],
    [2, "6.6.6.6, 198.51.100.9, 203.0.113.7", "198.51.100.9"],
    [2, undefined, "127.0.0.1"],
  ])("TRUSTED_PROXY_HOPS=%s, X-Forwarded-For %s: the API sees only %s", async (hops, chain, expected) => {
    await withWebui(upstreamUrl, { trustedProxyHops: hops }, async () => {
      const headers: Record<string, string> = chain ? { "x-forwarded-for": chain } : {};
      await fetch(`${base}/api/v1/users`, { headers });
      await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers, body: "{}" });
      expect(seen.map((s) => String(s.headers["x-forwarded-for"]).replace(/^::ffff:/, ""))).toEqual([expected, expected]);
    });
  });

  it("drops the forwarding headers a client writes itself", async () => {
    await fetch(`${base}/api/v1/users`, {
      headers: { forwarded: "for=6.6.6.6", "x-real-ip": "6.6.6.6", "x-forwarded-port": "1", "x-forwarded-prefix": "/x" },
    });
    for (const name of ["forwarded", "x-real-ip", "x-forwarded-port", "x-forwarded-prefix"]) {
      expect(seen[0]!.headers[name], name).toBeUndefined();
    }
    expect(seen[0]!.headers["x-forwarded-proto"]).toBe("http");
  });
});
