// @vitest-environment node
// The Express server against a small recording HTTP server standing in for the API (the real API
// is exercised by the end-to-end suite): what reaches the API, what reaches the browser.
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.mjs";

type Seen = { method: string; url: string; headers: http.IncomingHttpHeaders; body: string };
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

function startWebui(apiUrl: URL, secureCookies = false): Promise<void> {
  webui = http.createServer(createApp({ apiUrl, distDir, secureCookies, apiTimeoutMs: 2000 }));
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

  it("refuses cross-origin session requests", async () => {
    const res = await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { cookie: "myapp_refresh=x", origin: "https://evil.example" },
    });
    expect(res.status).toBe(403);
    expect(seen).toHaveLength(0);
  });

  it("marks the cookie Secure outside development", async () => {
    const previous = webui;
    const previousBase = base;
    await startWebui(upstreamUrl, true);
    try {
      reply = () => ({ status: 200, body: tokens });
      const res = await fetch(`${base}/api/v1/auth/login`, { method: "POST", body: "{}" });
      expect(res.headers.get("set-cookie")).toContain("Secure");
      expect(res.headers.get("strict-transport-security")).toContain("max-age=31536000");
    } finally {
      await new Promise((r) => webui.close(r));
      webui = previous;
      base = previousBase;
    }
  });

  it("answers 502 with a JSON error when the API is down", async () => {
    const dead = http.createServer();
    const port = await listen(dead);
    await new Promise((r) => dead.close(r));
    const previous = webui;
    const previousBase = base;
    await startWebui(new URL(`http://127.0.0.1:${port}`));
    try {
      const res = await fetch(`${base}/api/v1/users`);
      expect(res.status).toBe(502);
      const body = await res.json();
      expect(body.error.code).toBe("api_unavailable");
      expect(body.error.message).toMatch(/not reachable/);
    } finally {
      await new Promise((r) => webui.close(r));
      webui = previous;
      base = previousBase;
    }
  });
});
