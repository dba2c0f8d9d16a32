import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { App } from "./App";
import type { Role } from "./auth/access";
import { SIDEBAR_KEY } from "./components/Shell";
import { fakeApi, session, userOf } from "./testing/fakeApi";

function at(path: string) {
  window.history.pushState({}, "", path);
}

beforeEach(() => at("/"));

const rule = {
  id: 7,
  name: "block-doc-net",
  source_cidr: "203.0.113.0/24",
  protocol: "tcp",
  dst_port_min: 80,
  dst_port_max: 80,
  action: "drop",
  rate_limit_pps: null,
  sample_rate: null,
  enabled: true,
  priority: 100,
  revision: 1,
  created_by: "admin@example.com",
  updated_by: "admin@example.com",
  created_at: "2026-11-30T00:00:00Z",
  updated_at: "2026-11-30T00:00:00Z",
  sync_state: "disabled",
  sync_error: null,
};

describe("navigation by role", () => {
  const cases: [Role, string[], string[]][] = [
    ["admin", ["Dashboard", "Rules", "Users", "Audit log", "Profile"], []],
    ["maintainer", ["Dashboard", "Rules", "Profile"], ["Users", "Audit log"]],
    ["viewer", ["Dashboard", "Rules", "Profile"], ["Users", "Audit log"]],
  ];
  it.each(cases)("%s sees exactly their pages", async (role, shown, hidden) => {
    render(<App api={fakeApi(role).api} />);
    const nav = await screen.findByRole("navigation", { name: "Main" });
    for (const name of shown) expect(within(nav).getByRole("link", { name })).toBeInTheDocument();
    for (const name of hidden) expect(within(nav).queryByRole("link", { name })).not.toBeInTheDocument();
  });

  it("does not route to a page the role cannot read", async () => {
    at("/users");
    render(<App api={fakeApi("viewer").api} />);
    expect(await screen.findByRole("heading", { name: "Page not found" })).toBeInTheDocument();
  });

  it("shows a viewer no create, edit or delete controls on rules", async () => {
    at("/rules");
    const { api } = fakeApi("viewer", { "GET /api/v1/rules": () => [200, { items: [rule], total: 1, page: 1, per_page: 20 }] });
    render(<App api={api} />);
    expect(await screen.findByText("block-doc-net")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /new rule/i })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /edit/i })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /delete/i })).not.toBeInTheDocument();
    expect(screen.queryByRole("columnheader", { name: "Actions" })).not.toBeInTheDocument();
  });

  it("remembers the collapsed sidebar (UI state only, never a token)", async () => {
    const user = userEvent.setup();
    const { unmount } = render(<App api={fakeApi("admin").api} />);
    await user.click(await screen.findByRole("button", { name: "Collapse sidebar" }));
    expect(localStorage.getItem(SIDEBAR_KEY)).toBe("1");
    unmount();
    render(<App api={fakeApi("admin").api} />);
    expect(await screen.findByRole("button", { name: "Expand sidebar" })).toBeInTheDocument();
    for (let i = 0; i < localStorage.length; i++) {
      expect(localStorage.getItem(localStorage.key(i)!)).not.toMatch(/^x\.|access|refresh/);
    }
  });
});

describe("login form", () => {
  it("validates as the user types and keeps the input after a refused login", async () => {
    const user = userEvent.setup();
    const { api } = fakeApi(null, {
      "POST /api/v1/auth/login": () => [401, { error: { code: "invalid_credentials", message: "Wrong email or password" } }],
    });
    render(<App api={api} />);
    const email = await screen.findByLabelText("Email");
    await user.type(email, "admin");
    expect(screen.getByText(/Enter an email address/)).toBeInTheDocument();
    await user.type(email, "@example.com");
    expect(screen.queryByText(/Enter an email address/)).not.toBeInTheDocument();
    await user.type(screen.getByLabelText("Password"), "not-the-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Wrong email or password")).toBeInTheDocument();
    expect(email).toHaveValue("admin@example.com");
    expect(screen.getByLabelText("Password")).toHaveValue("not-the-password");
  });

  it("signs in and lands on the page asked for", async () => {
    const user = userEvent.setup();
    at("/rules");
    const { api } = fakeApi(null, { "POST /api/v1/auth/login": () => [200, session("maintainer")] });
    render(<App api={api} />);
    await user.type(await screen.findByLabelText("Email"), "maintainer@example.com");
    await user.type(screen.getByLabelText("Password"), "a-long-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("heading", { name: "Rules", level: 1 })).toBeInTheDocument();
    expect(window.location.pathname).toBe("/rules");
  });

  it("says when the API is down instead of showing a blank page", async () => {
    const { api } = fakeApi(null, {
      "POST /api/v1/auth/refresh": () => [502, { error: { code: "api_unavailable", message: "The API is not reachable (ECONNREFUSED)" } }],
    });
    render(<App api={api} />);
    expect(await screen.findByText(/The API is not reachable/)).toBeInTheDocument();
  });
});

describe("users form", () => {
  it("checks fields while typing and shows the API's errors next to their field", async () => {
    const user = userEvent.setup();
    at("/users");
    const { api, calls } = fakeApi("admin", {
      "POST /api/v1/users": () => [409, { error: { code: "duplicate", message: "A user with e-mail taken@example.com already exists", details: { field: "email" } } }],
    });
    render(<App api={api} />);
    await user.click(await screen.findByRole("button", { name: "New user" }));
    const form = screen.getByRole("form", { name: "New user" });
    const password = within(form).getByLabelText("Password");
    await user.type(password, "short");
    expect(within(form).getByText("Use at least 12 characters (5 so far)")).toBeInTheDocument();
    await user.type(password, "-but-now-long");
    expect(within(form).queryByText(/Use at least 12/)).not.toBeInTheDocument();
    await user.type(within(form).getByLabelText("Email"), "taken@example.com");
    await user.type(within(form).getByLabelText("Full name"), "Taken");
    await user.selectOptions(within(form).getByLabelText("Role"), "maintainer");
    await user.click(within(form).getByRole("button", { name: "Create user" }));
    const emailField = within(form).getByLabelText("Email");
    await waitFor(() => expect(emailField).toHaveAccessibleDescription(/already exists/));
    expect(emailField).toHaveValue("taken@example.com");
    expect(within(form).getByLabelText("Full name")).toHaveValue("Taken");
    expect(within(form).getByLabelText("Role")).toHaveValue("maintainer");
    expect(calls.find((c) => c.method === "POST" && c.path === "/api/v1/users")?.body).toEqual({
      email: "taken@example.com",
      full_name: "Taken",
      password: "short-but-now-long",
      role: "maintainer",
      active: true,
    });
  });

  it("signs a user out everywhere from their edit form", async () => {
    const user = userEvent.setup();
    at("/users");
    const other = { ...userOf("viewer", 2), email: "other@example.com" };
    const live = { id: "c".repeat(32), started_at: "2026-11-30T08:00:00Z", last_active_at: "2026-11-30T09:00:00Z", expires_at: "2026-11-30T20:00:00Z", current: false };
    let sessions = [live, { ...live, id: "d".repeat(32) }];
    const { api, calls } = fakeApi("admin", {
      "GET /api/v1/users": () => [200, { items: [userOf("admin"), other], total: 2, page: 1, per_page: 20 }],
      "GET /api/v1/users/2/sessions": () => [200, { items: sessions }],
      "POST /api/v1/users/2/sessions/end": () => {
        sessions = [];
        return [200, { ended: 2 }];
      },
    });
    render(<App api={api} />);
    await user.click(await screen.findByRole("button", { name: "Edit other@example.com" }));
    const form = screen.getByRole("form", { name: "Edit other@example.com" });
    expect(await within(form).findByText(/Signed in: 2 sessions\./)).toBeInTheDocument();
    await user.click(within(form).getByRole("button", { name: "Sign out everywhere" }));
    expect(await within(form).findByText("2 sessions ended.")).toBeInTheDocument();
    expect(await within(form).findByText(/Signed in: 0 sessions\./)).toBeInTheDocument();
    expect(within(form).getByRole("button", { name: "Sign out everywhere" })).toBeDisabled();
    expect(calls.filter((c) => c.path === "/api/v1/users/2/sessions/end")).toHaveLength(1);
  });

  it("asks before deleting and reports the API's refusal", async () => {
    const user = userEvent.setup();
    at("/users");
    const other = { ...userOf("admin", 2), email: "other@example.com" };
    const { api, calls } = fakeApi("admin", {
      "GET /api/v1/users": () => [200, { items: [userOf("admin"), other], total: 2, page: 1, per_page: 20 }],
      "DELETE /api/v1/users/2": () => [409, { error: { code: "last_admin", message: "The last active admin cannot be deleted" } }],
    });
    render(<App api={api} />);
    expect(screen.queryByRole("button", { name: "Delete admin@example.com" })).not.toBeInTheDocument(); // not yourself
    await user.click(await screen.findByRole("button", { name: "Delete other@example.com" }));
    const dialog = screen.getByRole("dialog");
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    await user.click(screen.getByRole("button", { name: "Delete other@example.com" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete user" }));
    expect(await screen.findByText("The last active admin cannot be deleted")).toBeInTheDocument();
  });
});

describe("rule form", () => {
  it("shows the conflict and keeps the user's edit when the rule changed meanwhile", async () => {
    const user = userEvent.setup();
    at("/rules");
    const theirs = { ...rule, name: "their-name", revision: 2, updated_by: "maintainer@example.com" };
    const { api, calls } = fakeApi("maintainer", {
      "GET /api/v1/rules": () => [200, { items: [rule], total: 1, page: 1, per_page: 20 }],
      "PUT /api/v1/rules/7": (body) =>
        (body as { revision: number }).revision === 2
          ? [200, { ...theirs, name: "my-name", revision: 3 }]
          : [409, { error: { code: "revision_conflict", message: "Revision 1 is stale", details: { current: theirs } } }],
    });
    render(<App api={api} />);
    await user.click(await screen.findByRole("button", { name: "Edit block-doc-net" }));
    const form = screen.getByRole("form", { name: "Edit rule block-doc-net" });
    const name = within(form).getByLabelText("Name");
    await user.clear(name);
    await user.type(name, "my-name");
    await user.click(within(form).getByRole("button", { name: "Save rule" }));
    const conflict = await within(form).findByRole("region", { name: "Conflict" });
    expect(conflict).toHaveTextContent("Revision 2 by maintainer@example.com");
    expect(conflict).toHaveTextContent("their-name");
    expect(name).toHaveValue("my-name");
    await user.click(within(conflict).getByRole("button", { name: /Keep mine/ }));
    await user.click(within(form).getByRole("button", { name: "Save rule" }));
    expect(await screen.findByText(/saved \(revision 3\)/)).toBeInTheDocument();
    const puts = calls.filter((c) => c.method === "PUT").map((c) => (c.body as { revision: number; name: string }));
    expect(puts.map((p) => [p.name, p.revision])).toEqual([
      ["my-name", 1],
      ["my-name", 2],
    ]);
  });

  const protectedAnswer = (body: unknown): [number, unknown] =>
    (body as { override: boolean }).override
      ? [201, { ...rule, id: 8, name: "ctl", source_cidr: "10.0.0.0/8" }]
      : [422, { error: { code: "validation_error", message: "Rule 'ctl': source_cidr 10.0.0.0/8 overlaps the protected prefix 10.244.0.0/16", details: { fields: { source_cidr: "Overlaps the protected prefix 10.244.0.0/16" }, protected_prefix: "10.244.0.0/16" } } }];

  async function createInProtectedPrefix(role: Role) {
    const user = userEvent.setup();
    at("/rules");
    const { api, calls } = fakeApi(role, { "POST /api/v1/rules": protectedAnswer });
    render(<App api={api} />);
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    const form = screen.getByRole("form", { name: "New rule" });
    await user.type(within(form).getByLabelText("Name"), "ctl");
    await user.type(within(form).getByLabelText("Source network"), "10.0.0.0/8");
    await user.click(within(form).getByRole("button", { name: "Create rule" }));
    await waitFor(() =>
      expect(within(form).getByLabelText("Source network")).toHaveAccessibleDescription(/protected prefix 10\.244\.0\.0\/16/),
    );
    return { user, form, calls };
  }

  it("offers an admin to save a rule in a protected prefix anyway, with override", async () => {
    const { user, form, calls } = await createInProtectedPrefix("admin");
    const box = within(form).getByLabelText("Save anyway: override the protected prefix 10.244.0.0/16");
    expect(box).not.toBeChecked();
    await user.click(box);
    await user.click(within(form).getByRole("button", { name: "Create rule" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "POST" && c.path === "/api/v1/rules")).toHaveLength(2));
    const posts = calls.filter((c) => c.method === "POST" && c.path === "/api/v1/rules");
    expect(posts.map((c) => (c.body as { override: boolean }).override)).toEqual([false, true]);
  });

  it("withdraws the override when the admin changes the network", async () => {
    const { user, form } = await createInProtectedPrefix("admin");
    await user.type(within(form).getByLabelText("Source network"), "1");
    expect(within(form).queryByLabelText(/override the protected prefix/)).not.toBeInTheDocument();
  });

  it("shows a maintainer the protected prefix beside the field and no override", async () => {
    const { form, calls } = await createInProtectedPrefix("maintainer");
    expect(within(form).queryByLabelText(/override the protected prefix/)).not.toBeInTheDocument();
    expect(calls.filter((c) => c.method === "POST" && c.path === "/api/v1/rules")).toHaveLength(1);
  });

  it("validates the network and the port range as the user types", async () => {
    const user = userEvent.setup();
    at("/rules");
    render(<App api={fakeApi("admin").api} />);
    await user.click(await screen.findByRole("button", { name: "New rule" }));
    const form = screen.getByRole("form", { name: "New rule" });
    await user.type(within(form).getByLabelText("Source network"), "203.0.113.0/33");
    expect(within(form).getByText("An IPv4 prefix is 0..32")).toBeInTheDocument();
    await user.selectOptions(within(form).getByLabelText("Protocol"), "tcp");
    await user.type(within(form).getByLabelText("First port"), "443");
    await user.type(within(form).getByLabelText("Last port"), "80");
    expect(within(form).getByText("The last port must not be below the first")).toBeInTheDocument();
  });
});

describe("profile", () => {
  it("maps the API's field names onto the password form", async () => {
    const user = userEvent.setup();
    at("/profile");
    const { api } = fakeApi("viewer", {
      "POST /api/v1/auth/password": () => [422, { error: { code: "validation_error", message: "Current password is incorrect", details: { fields: { current_password: "Current password is incorrect" } } } }],
    });
    render(<App api={api} />);
    await user.type(await screen.findByLabelText("Current password"), "wrong-password");
    await user.type(screen.getByLabelText("New password"), "a-brand-new-password");
    await user.type(screen.getByLabelText("Repeat new password"), "a-brand-new-passwor");
    expect(screen.getByText("The two new passwords differ")).toBeInTheDocument();
    await user.type(screen.getByLabelText("Repeat new password"), "d");
    await user.click(screen.getByRole("button", { name: "Change password" }));
    await waitFor(() => expect(screen.getByLabelText("Current password")).toHaveAccessibleDescription("Current password is incorrect"));
    expect(screen.getByLabelText("New password")).toHaveValue("a-brand-new-password");
  });

  it("lists the sessions and ends the others with the password", async () => {
    const user = userEvent.setup();
    at("/profile?tab=sessions");
    const mine = { id: "a".repeat(32), started_at: "2026-11-30T08:00:00Z", last_active_at: "2026-11-30T09:00:00Z", expires_at: "2026-11-30T20:00:00Z", current: true };
    const other = { ...mine, id: "b".repeat(32), current: false };
    let live = [mine, other];
    const { api, calls } = fakeApi("viewer", {
      "GET /api/v1/auth/sessions": () => [200, { items: live }],
      "POST /api/v1/auth/sessions/end-others": (body) => {
        if ((body as { current_password: string }).current_password !== "my-password-123") {
          return [422, { error: { code: "validation_error", message: "Current password is incorrect", details: { fields: { current_password: "Current password is incorrect" } } } }];
        }
        live = [mine];
        return [200, { ended: 1 }];
      },
    });
    render(<App api={api} />);
    expect(await screen.findByText("This session")).toBeInTheDocument();
    const endOthers = screen.getByRole("button", { name: "End all other sessions" });
    await user.click(endOthers);
    expect(screen.getByText("Enter your current password to end sessions.")).toBeInTheDocument();
    expect(calls.some((c) => c.path.endsWith("/end-others"))).toBe(false);
    await user.type(screen.getByLabelText("Your password, to end sessions"), "wrong-password-1");
    await user.click(endOthers);
    expect(await screen.findByText("Current password is incorrect")).toBeInTheDocument();
    await user.clear(screen.getByLabelText("Your password, to end sessions"));
    await user.type(screen.getByLabelText("Your password, to end sessions"), "my-password-123");
    await user.click(endOthers);
    expect(await screen.findByText("1 other session has ended.")).toBeInTheDocument();
    expect(await screen.findByText("No other session: you are signed in here only.")).toBeInTheDocument();
  });
});
