import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, type FetchLike } from "./client";

const user = { id: 1, email: "a@example.com", full_name: "A", role: "admin", active: true, created_at: "", updated_at: "" };
const tokens = (n: number) => ({ access_token: `access-${n}`, token_type: "Bearer", expires_in: 900, refresh_expires_in: 60, user });
const json = (status: number, body: unknown) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const unauthorized = () => json(401, { error: { code: "invalid_token", message: "Token expired" } });

/** A scripted transport: records every call, answers by "METHOD path". */
function transport(handler: (method: string, path: string, auth: string | undefined) => Response | Promise<Response>) {
  const calls: { method: string; path: string; auth?: string }[] = [];
  const fetchImpl: FetchLike = async (url, init) => {
    const method = init?.method ?? "GET";
    const auth = (init?.headers as Record<string, string> | undefined)?.Authorization;
    calls.push({ method, path: url, auth });
    return handler(method, url, auth);
  };
  return { calls, fetchImpl };
}

describe("ApiClient session handling", () => {
  it("keeps the access token in memory and sends it as a Bearer token", async () => {
    const t = transport((_m, p) => (p.endsWith("/auth/login") ? json(200, tokens(1)) : json(200, { items: [], total: 0, page: 1, per_page: 20 })));
    const api = new ApiClient(t.fetchImpl);
    await api.login("a@example.com", "pw");
    await api.listRules({ page: 2, q: "" });
    expect(t.calls[1]).toEqual({ method: "GET", path: "/api/v1/rules?page=2", auth: "Bearer access-1" });
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
  });

  it("refreshes once on a 401 and retries the request with the new token", async () => {
    const t = transport((_m, p, auth) => {
      if (p.endsWith("/auth/login")) return json(200, tokens(1));
      if (p.endsWith("/auth/refresh")) return json(200, tokens(2));
      return auth === "Bearer access-2" ? json(200, { id: 5 }) : unauthorized();
    });
    const api = new ApiClient(t.fetchImpl);
    const onTokens = vi.fn();
    api.onTokens = onTokens;
    await api.login("a@example.com", "pw");
    await expect(api.getRule(5)).resolves.toEqual({ id: 5 });
    expect(t.calls.map((c) => `${c.method} ${c.path} ${c.auth ?? ""}`.trim())).toEqual([
      "POST /api/v1/auth/login",
      "GET /api/v1/rules/5 Bearer access-1",
      "POST /api/v1/auth/refresh Bearer access-1",
      "GET /api/v1/rules/5 Bearer access-2",
    ]);
    expect(onTokens).toHaveBeenCalledTimes(2);
  });

  it("shares one refresh between requests that fail together", async () => {
    let refreshes = 0;
    const t = transport(async (_m, p, auth) => {
      if (p.endsWith("/auth/refresh")) {
        refreshes += 1;
        await new Promise((r) => setTimeout(r, 10));
        return json(200, tokens(2));
      }
      return auth === "Bearer access-2" ? json(200, { ok: p }) : unauthorized();
    });
    const api = new ApiClient(t.fetchImpl);
    const results = await Promise.all([api.getRule(1), api.getRule(2), api.fastpathStatus()]);
    expect(results).toHaveLength(3);
    expect(refreshes).toBe(1);
  });

  it("does not loop: a second 401 after the refresh is the caller's error", async () => {
    const t = transport((_m, p) => (p.endsWith("/auth/refresh") ? json(200, tokens(2)) : unauthorized()));
    const api = new ApiClient(t.fetchImpl);
    await expect(api.getRule(1)).rejects.toMatchObject({ status: 401, code: "invalid_token" });
    expect(t.calls.filter((c) => c.path.endsWith("/auth/refresh"))).toHaveLength(1);
  });

  it("ends the session when the refresh fails, with a message for the login page", async () => {
    const t = transport((_m, p) =>
      p.endsWith("/auth/refresh") ? json(401, { error: { code: "invalid_token", message: "spent" } }) : unauthorized(),
    );
    const api = new ApiClient(t.fetchImpl);
    const expired = vi.fn();
    api.onSessionExpired = expired;
    await expect(api.listUsers({})).rejects.toMatchObject({ code: "session_expired" });
    expect(expired).toHaveBeenCalledWith("Your session has ended. Please sign in again.");
    expect(api.hasToken).toBe(false);
  });

  it("never refreshes for a failed login", async () => {
    const t = transport(() => json(401, { error: { code: "invalid_credentials", message: "Wrong email or password" } }));
    const api = new ApiClient(t.fetchImpl);
    await expect(api.login("a@example.com", "bad")).rejects.toMatchObject({
      status: 401,
      code: "invalid_credentials",
      message: "Wrong email or password",
    });
    expect(t.calls).toHaveLength(1);
  });

  it("turns the proxy's 502 and network failures into readable errors", async () => {
    const down = new ApiClient(
      transport(() => json(502, { error: { code: "api_unavailable", message: "The API is not reachable (ECONNREFUSED)" } })).fetchImpl,
    );
    await expect(down.listRules({})).rejects.toMatchObject({ status: 502, code: "api_unavailable" });
    const offline = new ApiClient(async () => {
      throw new TypeError("Failed to fetch");
    });
    const err = await offline.listRules({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).message).toContain("Failed to fetch");
    const html = new ApiClient(async () => new Response("<html>bad gateway</html>", { status: 503, statusText: "Service Unavailable" }));
    await expect(html.listRules({})).rejects.toMatchObject({ status: 503, code: "http_503" });
  });

  it("exposes the API's per-field messages", async () => {
    const api = new ApiClient(
      transport(() =>
        json(422, { error: { code: "validation_error", message: "Request validation failed", details: { fields: { email: "bad" } } } }),
      ).fetchImpl,
    );
    const err = (await api.createUser({ email: "x", password: "p", full_name: "f", role: "viewer", active: true }).catch((e) => e)) as ApiError;
    expect(err.fields).toEqual({ email: "bad" });
  });
});
