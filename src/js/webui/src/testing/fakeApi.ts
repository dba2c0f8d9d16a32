// A scripted stand-in for the API behind the proxy, for component tests (the real API is used by
// the end-to-end suite). Each test says what the routes answer.
import { ApiClient } from "../api/client";
import type { Role } from "../auth/access";
import { ROLE_SCOPES } from "../auth/access";

export type Route = (body: unknown, url: URL) => [number, unknown?];

export function jwtFor(role: Role): string {
  const payload = btoa(JSON.stringify({ role, scopes: ROLE_SCOPES[role] })).replace(/=+$/, "");
  return `x.${payload}.y`;
}

export function userOf(role: Role, id = 1) {
  return {
    id,
    email: `${role}@example.com`,
    full_name: `The ${role}`,
    role,
    active: true,
    created_at: "2026-11-30T00:00:00Z",
    updated_at: "2026-11-30T00:00:00Z",
  };
}

export function session(role: Role) {
  return { access_token: jwtFor(role), token_type: "Bearer", expires_in: 900, refresh_expires_in: 600, user: userOf(role) };
}

export const emptyPage = { items: [], total: 0, page: 1, per_page: 20 };

/** Default answers for a signed-in `role`, overridden per "METHOD /path". */
export function fakeApi(role: Role | null, routes: Record<string, Route> = {}) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const defaults: Record<string, Route> = {
    "POST /api/v1/auth/refresh": () => (role ? [200, session(role)] : [401, { error: { code: "unauthenticated", message: "No session" } }]),
    "POST /api/v1/auth/logout": () => [204],
    "GET /api/v1/rules": () => [200, emptyPage],
    "GET /api/v1/users": () => [200, emptyPage],
    "GET /api/v1/audit": () => [200, emptyPage],
    "GET /api/v1/fastpath/status": () => [200, { configured: false, connected: false, address: null, error: null, last_sync_at: null, agent: null, agents: [] }],
    "GET /api/v1/fastpath/stats": () => [200, { configured: false, connected: false, missing_agents: [], timestamp: "", actions: {}, rules: [], parse_errors: {}, xsk: [] }],
  };
  const all = { ...defaults, ...routes };
  const api = new ApiClient(async (input, init) => {
    const url = new URL(input, "http://webui.test");
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    calls.push({ method, path: url.pathname, body });
    const route = all[`${method} ${url.pathname}`];
    if (!route) return new Response(JSON.stringify({ error: { code: "not_found", message: `no route ${method} ${url.pathname}` } }), { status: 404 });
    const [status, payload] = route(body, url);
    return new Response(payload === undefined ? null : JSON.stringify(payload), { status, headers: { "content-type": "application/json" } });
  });
  return { api, calls };
}
