/**
 * Who is signed in. The access token stays inside the ApiClient; this context only holds the
 * user, their scopes (read from the access token's `scopes` claim, for display decisions only:
 * the API checks them for real) and a message for the login page.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from "react";
import { type ApiClient, ApiError } from "../api/client";
import type { TokenResponse, User } from "../api/types";
import { type Role, ROLE_SCOPES } from "./access";

export type SessionState =
  | { status: "loading" }
  | { status: "anonymous"; message?: string }
  | { status: "authenticated"; user: User; scopes: readonly string[] };

interface SessionApi {
  state: SessionState;
  api: ApiClient;
  login(email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  changePassword(current: string, next: string): Promise<void>;
}

const SessionContext = createContext<SessionApi | null>(null);

/** The `scopes` claim of a JWT, without verifying it (the server does that). */
export function scopesFromToken(token: string, role: Role): readonly string[] {
  try {
    const payload = token.split(".")[1];
    if (!payload) return ROLE_SCOPES[role] ?? [];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as { scopes?: unknown };
    if (Array.isArray(claims.scopes) && claims.scopes.every((s) => typeof s === "string")) {
      return claims.scopes as string[];
    }
  } catch {
    // Not a JWT we can read: fall back to the role's table.
  }
  return ROLE_SCOPES[role] ?? [];
}

function authenticated(tokens: TokenResponse): SessionState {
  return {
    status: "authenticated",
    user: tokens.user,
    scopes: scopesFromToken(tokens.access_token, tokens.user.role as Role),
  };
}

export function SessionProvider({ api, children }: { api: ApiClient; children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ status: "loading" });

  useEffect(() => {
    const unlisten = api.listen(
      (tokens) => setState(authenticated(tokens)),
      (message) => setState({ status: "anonymous", message }),
    );
    let cancelled = false;
    // A reload keeps the HttpOnly cookie but loses the in-memory token: try to resume.
    api.refresh().then(
      () => undefined,
      (err: unknown) => {
        if (cancelled) return;
        const message =
          err instanceof ApiError && (err.status >= 500 || err.status === 0) ? err.message : undefined;
        setState({ status: "anonymous", message });
      },
    );
    return () => {
      cancelled = true;
      unlisten();
    };
  }, [api]);

  const login = useCallback(async (email: string, password: string) => {
    await api.login(email, password);
  }, [api]);

  const logout = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      setState({ status: "anonymous", message: "You have signed out." });
    }
  }, [api]);

  const changePassword = useCallback(async (current: string, next: string) => {
    await api.changePassword(current, next);
  }, [api]);

  const value = useMemo(
    () => ({ state, api, login, logout, changePassword }),
    [state, api, login, logout, changePassword],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionApi {
  const ctx = useContext(SessionContext);
  if (!ctx) throw new Error("useSession outside <SessionProvider>");
  return ctx;
}

/** The signed-in user; only for components rendered inside the authenticated shell. */
export function useUser(): { user: User; scopes: readonly string[] } {
  const { state } = useSession();
  if (state.status !== "authenticated") throw new Error("useUser without a session");
  return { user: state.user, scopes: state.scopes };
}
