/**
 * The one access table of the WebUI. Navigation, routes and buttons all ask `canAccess`; the API
 * enforces the same rules on its side (scopes in the access token), the UI only mirrors them so
 * that nobody is shown a control that would be refused.
 */

export type Role = "admin" | "maintainer" | "viewer";
export type Resource = "dashboard" | "profile" | "users" | "rules" | "audit" | "fastpath";
export type Action = "read" | "create" | "update" | "delete";

/** Scopes per role, as in API_CONTRACT.md (the API puts these into the token's `scopes`). */
export const ROLE_SCOPES: Readonly<Record<Role, readonly string[]>> = {
  admin: [
    "users:read",
    "users:write",
    "rules:read",
    "rules:write",
    "audit:read",
    "fastpath:read",
    "fastpath:write",
  ],
  maintainer: ["rules:read", "rules:write", "fastpath:read", "fastpath:write"],
  viewer: ["rules:read", "fastpath:read"],
};

/** Pages every signed-in user has, whatever the scopes. */
const ALWAYS_READABLE: ReadonlySet<Resource> = new Set(["dashboard", "profile"]);

export function isRole(value: unknown): value is Role {
  return value === "admin" || value === "maintainer" || value === "viewer";
}

/**
 * May a user with this role (or this list of scopes, when the API sent them) do `action` on
 * `resource`? Unknown roles and empty scope lists get nothing but their own pages.
 */
export function canAccess(
  subject: Role | readonly string[] | null | undefined,
  resource: Resource,
  action: Action = "read",
): boolean {
  if (subject == null) return false;
  if (ALWAYS_READABLE.has(resource) && action === "read") return true;
  if (resource === "profile" && action === "update") return true;
  const scopes: readonly string[] = Array.isArray(subject)
    ? subject
    : isRole(subject)
      ? ROLE_SCOPES[subject]
      : [];
  const needed = `${resource}:${action === "read" ? "read" : "write"}`;
  return scopes.includes(needed);
}
