import { describe, expect, it } from "vitest";
import { type Action, canAccess, type Resource, type Role } from "./access";

const RESOURCES: Resource[] = ["dashboard", "profile", "users", "rules", "audit", "fastpath"];
const ACTIONS: Action[] = ["read", "create", "update", "delete"];

// The expected table, written out independently of ROLE_SCOPES: a typo in either shows up.
const EXPECTED: Record<Role, Record<string, Action[]>> = {
  admin: {
    dashboard: ["read"],
    profile: ["read", "update"],
    users: ACTIONS,
    rules: ACTIONS,
    audit: ["read"],
    fastpath: ACTIONS,
  },
  maintainer: {
    dashboard: ["read"],
    profile: ["read", "update"],
    users: [],
    rules: ACTIONS,
    audit: [],
    fastpath: ACTIONS,
  },
  viewer: {
    dashboard: ["read"],
    profile: ["read", "update"],
    users: [],
    rules: ["read"],
    audit: [],
    fastpath: ["read"],
  },
};

describe("canAccess", () => {
  for (const role of Object.keys(EXPECTED) as Role[]) {
    for (const resource of RESOURCES) {
      for (const action of ACTIONS) {
        const allowed = EXPECTED[role][resource]!.includes(action);
        it(`${role} ${allowed ? "may" : "may not"} ${action} ${resource}`, () => {
          expect(canAccess(role, resource, action)).toBe(allowed);
        });
      }
    }
  }

  it("uses the token's scopes when given a list", () => {
    expect(canAccess(["rules:read"], "rules", "read")).toBe(true);
    expect(canAccess(["rules:read"], "rules", "update")).toBe(false);
    expect(canAccess(["users:write"], "users", "delete")).toBe(true);
    expect(canAccess([], "users", "read")).toBe(false);
    expect(canAccess([], "dashboard", "read")).toBe(true);
  });

  it("gives nothing to nobody", () => {
    expect(canAccess(null, "dashboard", "read")).toBe(false);
    expect(canAccess(undefined, "rules", "read")).toBe(false);
    expect(canAccess("root" as Role, "users", "read")).toBe(false);
  });
});
