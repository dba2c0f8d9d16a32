/**
 * The one way the SPA talks to the API (through the Express server's /api proxy).
 *
 * The access token lives only in this object's memory. The refresh token is an HttpOnly cookie
 * the page cannot read: `refresh()` asks the server to use it. On a 401 the client refreshes once
 * (one refresh shared by every request that failed at the same time) and retries; when the
 * refresh fails the session is over and `onSessionExpired` tells the app.
 */
import type {
  AuditEvent,
  FastpathStats,
  FastpathStatus,
  ListQuery,
  Me,
  Page,
  Rule,
  RuleInput,
  SessionInfo,
  TokenResponse,
  User,
  UserCreate,
  UserPatch,
} from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** Per-field messages of a validation error (`details.fields`), if any. */
  get fields(): Record<string, string> {
    const fields = this.details.fields;
    return fields && typeof fields === "object" ? (fields as Record<string, string>) : {};
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

interface RequestOptions {
  body?: unknown;
  query?: ListQuery | Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  /** Auth endpoints answer 401 for bad credentials: never refresh-and-retry those. */
  noRetry?: boolean;
}

const AUTH_PATHS = new Set(["/auth/login", "/auth/refresh", "/auth/logout"]);

async function toApiError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): fall through to a generic message.
  }
  const err = (body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)
    ?.error;
  if (err?.code && err.message) return new ApiError(res.status, err.code, err.message, err.details ?? {});
  return new ApiError(res.status, `http_${res.status}`, `The server answered ${res.status} ${res.statusText}`.trim());
}

export class ApiClient {
  private accessToken: string | null = null;
  private refreshing: Promise<TokenResponse> | null = null;
  /** Called once when a refresh fails: the session is over. */
  onSessionExpired: ((reason: string) => void) | null = null;
  /** Called whenever a new token pair arrives (login, refresh, password change). */
  onTokens: ((tokens: TokenResponse) => void) | null = null;

  constructor(
    private readonly fetchImpl: FetchLike = (input, init) => fetch(input, init),
    private readonly base = "/api/v1",
  ) {}

  /** Set both session callbacks (the session provider does, once mounted); returns the undo. */
  listen(onTokens: (tokens: TokenResponse) => void, onSessionExpired: (reason: string) => void): () => void {
    this.onTokens = onTokens;
    this.onSessionExpired = onSessionExpired;
    return () => {
      if (this.onTokens === onTokens) this.onTokens = null;
      if (this.onSessionExpired === onSessionExpired) this.onSessionExpired = null;
    };
  }

  get hasToken(): boolean {
    return this.accessToken !== null;
  }

  private setTokens(tokens: TokenResponse): TokenResponse {
    this.accessToken = tokens.access_token;
    this.onTokens?.(tokens);
    return tokens;
  }

  clear(): void {
    this.accessToken = null;
  }

  private async send(method: string, path: string, opts: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json", ...opts.headers };
    if (this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let url = `${this.base}${path}`;
    if (opts.query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) {
        if (v !== undefined && v !== "") params.set(k, String(v));
      }
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    try {
      return await this.fetchImpl(url, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, "network_error", `Cannot reach the server: ${(err as Error).message}`);
    }
  }

  /** One request; on a 401 refresh the session once and retry. Returns the raw Response. */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    let res = await this.send(method, path, opts);
    if (res.status === 401 && !opts.noRetry && !AUTH_PATHS.has(path)) {
      try {
        await this.refresh();
      } catch (err) {
        const reason =
          err instanceof ApiError && err.status >= 500
            ? err.message
            : "Your session has ended. Please sign in again.";
        this.accessToken = null;
        this.onSessionExpired?.(reason);
        throw err instanceof ApiError && err.status >= 500
          ? err
          : new ApiError(401, "session_expired", reason);
      }
      res = await this.send(method, path, opts);
    }
    if (!res.ok) throw await toApiError(res);
    return res;
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(method, path, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Trade the HttpOnly refresh cookie for a new access token (shared by concurrent callers). */
  refresh(): Promise<TokenResponse> {
    let current = this.refreshing;
    if (!current) {
      const attempt = async () => {
        const res = await this.send("POST", "/auth/refresh", {});
        if (!res.ok) throw await toApiError(res);
        return this.setTokens((await res.json()) as TokenResponse);
      };
      // Refresh tokens are single-use: two tabs refreshing at once with the same cookie would look
      // like token theft to the API. A Web Lock lines the tabs up; the second one then sends the
      // cookie the first one received.
      const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
      const run = (locks ? locks.request("myapp-session-refresh", attempt) : attempt()) as Promise<TokenResponse>;
      current = run.finally(() => {
        this.refreshing = null;
      });
      this.refreshing = current;
    }
    return current;
  }

  // --- auth ---
  async login(email: string, password: string): Promise<TokenResponse> {
    const res = await this.send("POST", "/auth/login", { body: { email, password } });
    if (!res.ok) throw await toApiError(res);
    return this.setTokens((await res.json()) as TokenResponse);
  }

  async logout(): Promise<void> {
    try {
      await this.send("POST", "/auth/logout", {});
    } finally {
      this.accessToken = null;
    }
  }

  me(): Promise<Me> {
    return this.json<Me>("GET", "/auth/me");
  }

  async changePassword(current_password: string, new_password: string): Promise<TokenResponse> {
    const tokens = await this.json<TokenResponse>("POST", "/auth/password", {
      body: { current_password, new_password },
    });
    return this.setTokens(tokens);
  }

  // --- the caller's sessions ---
  async listSessions(): Promise<SessionInfo[]> {
    return (await this.json<{ items: SessionInfo[] }>("GET", "/auth/sessions")).items;
  }
  endSession(id: string, current_password: string): Promise<void> {
    return this.json("POST", `/auth/sessions/${encodeURIComponent(id)}/end`, { body: { current_password } });
  }
  async endOtherSessions(current_password: string): Promise<number> {
    return (await this.json<{ ended: number }>("POST", "/auth/sessions/end-others", { body: { current_password } })).ended;
  }

  // --- users ---
  async listUserSessions(id: number): Promise<SessionInfo[]> {
    return (await this.json<{ items: SessionInfo[] }>("GET", `/users/${id}/sessions`)).items;
  }
  async endUserSessions(id: number): Promise<number> {
    return (await this.json<{ ended: number }>("POST", `/users/${id}/sessions/end`)).ended;
  }
  listUsers(query: ListQuery): Promise<Page<User>> {
    return this.json("GET", "/users", { query });
  }
  createUser(body: UserCreate): Promise<User> {
    return this.json("POST", "/users", { body });
  }
  updateUser(id: number, body: UserPatch): Promise<User> {
    return this.json("PATCH", `/users/${id}`, { body });
  }
  deleteUser(id: number): Promise<void> {
    return this.json("DELETE", `/users/${id}`);
  }

  // --- rules ---
  listRules(query: ListQuery): Promise<Page<Rule>> {
    return this.json("GET", "/rules", { query });
  }
  getRule(id: number): Promise<Rule> {
    return this.json("GET", `/rules/${id}`);
  }
  createRule(body: RuleInput): Promise<Rule> {
    return this.json("POST", "/rules", { body });
  }
  /** Sends the revision the edit started from: a stale one answers 409 revision_conflict. */
  updateRule(id: number, body: RuleInput & { revision: number }): Promise<Rule> {
    return this.json("PUT", `/rules/${id}`, { body });
  }
  deleteRule(id: number): Promise<void> {
    return this.json("DELETE", `/rules/${id}`);
  }

  // --- audit and fast path ---
  listAudit(query: ListQuery): Promise<Page<AuditEvent>> {
    return this.json("GET", "/audit", { query });
  }
  fastpathStatus(): Promise<FastpathStatus> {
    return this.json("GET", "/fastpath/status");
  }
  fastpathStats(): Promise<FastpathStats> {
    return this.json("GET", "/fastpath/stats");
  }
}

export const api = new ApiClient();
