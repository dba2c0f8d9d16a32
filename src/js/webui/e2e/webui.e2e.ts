// The WebUI end to end: real API + real Express server + real Chromium, one fresh database.
// Tests run in file order; see vitest.e2e.config.ts.
import fs from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ACCESS_TOKEN_TTL,
  ADMIN,
  ApiAs,
  artifactsDir,
  launchBrowser,
  missingPrerequisite,
  type Service,
  startApi,
  startWebui,
  tempDir,
} from "./harness";

type Role = "admin" | "maintainer" | "viewer";
const PASSWORD = "e2e-password-123";

const missing = missingPrerequisite();
const ci = process.env.CI === "true" || process.env.CI === "1";

if (missing && ci) {
  describe("WebUI end-to-end", () => {
    it("has what it needs under CI", () => {
      throw new Error(`cannot run the end-to-end tests: ${missing}`);
    });
  });
} else if (missing) {
  describe.skip(`WebUI end-to-end (skipped: ${missing})`, () => {
    it("needs its prerequisites", () => undefined);
  });
  console.warn(`SKIPPED WebUI end-to-end tests: ${missing}`);
} else {
  suite();
}


function suite() {
  const run = randomUUID().slice(0, 8);
  const people: Record<Role, { email: string; password: string }> = {
    admin: ADMIN,
    maintainer: { email: `maintainer-${run}@example.com`, password: PASSWORD },
    viewer: { email: `viewer-${run}@example.com`, password: PASSWORD },
  };
  let dataDir: string;
  let api: Service;
  let webui: Service;
  let browser: Browser;
  let admin: ApiAs;
  let shots: string;
  // Signed in at the start; used at the end, once its access token has expired.
  let early: { context: BrowserContext; page: Page; at: number; seen: string[] };

  const openPages = new Set<Page>();
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ baseURL: webui.url, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const watch = (p: Page) => {
      openPages.add(p);
      // The CSP forbids inline script and style: anything the app does that breaks it is an error.
      p.on("console", (msg) => {
        if (msg.type() === "error" && /Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
      });
      p.on("pageerror", (err) => pageErrors.push(String(err)));
    };
    watch(page);
    context.on("page", watch);
    return { context, page };
  }

  async function signIn(page: Page, who: { email: string; password: string }, at = "/"): Promise<void> {
    await page.goto(at);
    await page.getByLabel("Email").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
  }

  /** A new viewer signed in from two browsers, `b` first; both are closed after `use`. */
  async function inTwoBrowsers(
    name: string,
    paths: { a: string; b: string },
    use: (a: Page, b: Page, who: { email: string; password: string }) => Promise<void>,
  ): Promise<void> {
    const who = { email: `${name}-${run}@example.com`, password: PASSWORD };
    expect((await admin.call("POST", "/users", { ...who, full_name: name, role: "viewer" })).status).toBe(201);
    const a = await newPage();
    const b = await newPage();
    try {
      await signIn(b.page, who, paths.b);
      await signIn(a.page, who, paths.a);
      await use(a.page, b.page, who);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  }

  beforeAll(async () => {
    shots = artifactsDir();
    dataDir = tempDir("webui-e2e-api");
    api = await startApi(dataDir);
    webui = await startWebui(api.url);
    browser = await launchBrowser();
    admin = await ApiAs.login(api.url, ADMIN.email, ADMIN.password);
    for (const role of ["maintainer", "viewer"] as const) {
      const res = await admin.call("POST", "/users", {
        email: people[role].email,
        password: PASSWORD,
        full_name: `E2E ${role}`,
        role,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    early = { ...(await newPage()), at: 0, seen: [] };
    early.page.on("response", (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith("/api/")) early.seen.push(`${r.request().method()} ${u.pathname} ${r.status()}`);
    });
    await signIn(early.page, people.viewer);
    early.at = Date.now();
  });

  // A failing test leaves a picture of every page it had open.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") {
      console.log(`--- API log (tail) ---\n${api.log().slice(-6000)}\n--- WebUI server log (tail) ---\n${webui.log().slice(-3000)}`);
      let i = 0;
      for (const page of openPages) {
        if (!page.isClosed()) {
          const name = `FAILED-${ctx.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}-${i++}`;
          await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true }).catch(() => undefined);
        }
      }
    }
    for (const page of openPages) if (page.isClosed()) openPages.delete(page);
  });

  afterAll(async () => {
    await browser?.close();
    await webui?.stop();
    await api?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`WebUI e2e screenshots: ${shots}`);
  });

  it("uses a client generated from the OpenAPI document the API serves (no drift)", async () => {
    const served = await (await fetch(`${api.url}/api/v1/openapi.json`)).json();
    const committed = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "..", "openapi.json"), "utf8"));
    expect(committed, "openapi.json is stale: fetch /api/v1/openapi.json from the API and commit it").toEqual(served);
  });

  const expectedNav: Record<Role, { shown: string[]; hidden: string[] }> = {
    admin: { shown: ["Dashboard", "Rules", "Users", "Audit log", "Profile"], hidden: [] },
    maintainer: { shown: ["Dashboard", "Rules", "Profile"], hidden: ["Users", "Audit log"] },
    viewer: { shown: ["Dashboard", "Rules", "Profile"], hidden: ["Users", "Audit log"] },
  };

  for (const role of ["admin", "maintainer", "viewer"] as const) {
    it(`${role}: signs in, sees their pages only, keeps no token in script reach, signs out`, async () => {
      const { context, page } = await newPage();
      try {
        await signIn(page, people[role]);
        await expect.poll(() => page.getByTestId("current-user").textContent()).toContain(role);
        const nav = page.getByRole("navigation", { name: "Main" });
        for (const name of expectedNav[role].shown) {
          expect(await nav.getByRole("link", { name, exact: true }).count(), name).toBe(1);
        }
        for (const name of expectedNav[role].hidden) {
          expect(await nav.getByRole("link", { name, exact: true }).count(), name).toBe(0);
        }
        await page.getByRole("heading", { name: "Dashboard" }).waitFor();
        await shot(page, `${role}-dashboard`);
        for (const name of expectedNav[role].shown.filter((n) => n !== "Dashboard")) {
          await nav.getByRole("link", { name, exact: true }).click();
          await page.getByRole("heading", { name, level: 1 }).waitFor();
          await page.locator('[role="status"]').filter({ hasText: /Loading/ }).waitFor({ state: "detached" });
          await shot(page, `${role}-${name.toLowerCase().replace(/ /g, "-")}`);
        }

        // The refresh token is only in an HttpOnly cookie; nothing token-like in web storage.
        const cookies = await context.cookies();
        const session = cookies.find((c) => c.name === "myapp_refresh");
        expect(session?.httpOnly).toBe(true);
        expect(session?.sameSite).toBe("Strict");
        expect(session?.path).toBe("/api/v1/auth");
        const storage = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }) + document.cookie);
        expect(storage).not.toMatch(/eyJ|refresh|access_token/);

        // A reload resumes the session through the cookie.
        await page.reload();
        await page.getByRole("navigation", { name: "Main" }).waitFor();

        await page.getByRole("button", { name: "Sign out" }).click();
        await page.getByText("You have signed out.").waitFor();
        expect((await context.cookies()).find((c) => c.name === "myapp_refresh")).toBeUndefined();
        await page.reload();
        await page.getByRole("button", { name: "Sign in" }).waitFor();
      } finally {
        await context.close();
      }
    });
  }

  it("viewer: no write controls, no admin pages, and the API refuses writes anyway", async () => {
    const ruleRes = await admin.call("POST", "/rules", {
      name: `viewer-visible-${run}`,
      source_cidr: "198.51.100.0/24",
      protocol: "any",
      action: "drop",
    });
    expect(ruleRes.status).toBe(201);
    const { context, page } = await newPage();
    try {
      await signIn(page, people.viewer, "/rules");
      await page.getByText(`viewer-visible-${run}`).waitFor();
      expect(await page.getByRole("button", { name: /new rule|edit|delete/i }).count()).toBe(0);
      await page.goto("/users");
      await page.getByRole("heading", { name: "Page not found" }).waitFor();
      await page.goto("/audit");
      await page.getByRole("heading", { name: "Page not found" }).waitFor();
      const viewer = await ApiAs.login(api.url, people.viewer.email, people.viewer.password);
      const write = await viewer.call("POST", "/rules", { name: "x", source_cidr: "192.0.2.0/24", action: "drop" });
      expect(write.status).toBe(403);
    } finally {
      await context.close();
    }
  });

  it("maintainer: edits rules but has no user management", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, people.maintainer, "/users");
      await page.getByRole("heading", { name: "Page not found" }).waitFor();
      await page.getByRole("link", { name: "Rules", exact: true }).click();
      await page.getByRole("button", { name: "New rule" }).waitFor();
    } finally {
      await context.close();
    }
  });

  it("admin: creates, edits and deletes a user", async () => {
    const email = `person-${run}@example.com`;
    const { context, page } = await newPage();
    try {
      await signIn(page, people.admin, "/users");
      await page.getByRole("button", { name: "New user" }).click();
      const form = page.getByRole("form", { name: "New user" });
      await form.getByLabel("Email").fill(email);
      await form.getByLabel("Full name").fill("Person Under Test");
      await form.getByLabel("Password").fill("short");
      await form.getByText("Use at least 12 characters (5 so far)").waitFor();
      await form.getByLabel("Password").fill("long-enough-password");
      await form.getByLabel("Role").selectOption("viewer");
      await shot(page, "admin-users-create");
      await form.getByRole("button", { name: "Create user" }).click();
      await page.getByText(`User ${email} created.`).waitFor();

      // The same email again: the API's 409 appears next to the email field, input kept.
      await page.getByRole("button", { name: "New user" }).click();
      const again = page.getByRole("form", { name: "New user" });
      await again.getByLabel("Email").fill(email.toUpperCase());
      await again.getByLabel("Full name").fill("Duplicate");
      await again.getByLabel("Password").fill("long-enough-password");
      await again.getByRole("button", { name: "Create user" }).click();
      await again.getByText(/already exists/).first().waitFor();
      expect(await again.getByLabel("Full name").inputValue()).toBe("Duplicate");
      await again.getByRole("button", { name: "Cancel" }).click();

      await page.getByLabel("Search users").fill(`person-${run}`);
      await page.getByRole("cell", { name: email, exact: true }).waitFor();
      await page.getByRole("button", { name: `Edit ${email}` }).click();
      const edit = page.getByRole("form", { name: `Edit ${email}` });
      await edit.getByLabel("Role").selectOption("maintainer");
      await edit.getByLabel("Active").uncheck();
      await edit.getByRole("button", { name: "Save" }).click();
      await page.getByText(`User ${email} saved.`).waitFor();
      const list = await admin.call("GET", `/users?q=${encodeURIComponent(email)}`);
      expect(list.body.items).toHaveLength(1);
      expect(list.body.items[0]).toMatchObject({ email, role: "maintainer", active: false });

      await page.getByRole("button", { name: `Delete ${email}` }).click();
      const dialog = page.getByRole("dialog");
      await shot(page, "admin-users-delete-confirm");
      await dialog.getByRole("button", { name: "Delete user" }).click();
      await page.getByText(`User ${email} deleted.`).waitFor();
      const after = await admin.call("GET", `/users?q=${encodeURIComponent(email)}`);
      expect(after.body.total).toBe(0);
    } finally {
      await context.close();
    }
  });

  it("admin: the users table searches, sorts and pages", async () => {
    const prefix = `page-${run}`;
    for (let i = 0; i < 12; i++) {
      const n = String(i).padStart(2, "0");
      const res = await admin.call("POST", "/users", {
        email: `${prefix}-${n}@example.com`,
        password: PASSWORD,
        full_name: `Paged ${n}`,
        role: "viewer",
      });
      expect(res.status).toBe(201);
    }
    const { context, page } = await newPage();
    try {
      await signIn(page, people.admin, "/users");
      await page.getByLabel("Search users").fill(prefix);
      await page.getByLabel("Per page").selectOption("10");
      await page.getByText("Page 1 of 2 (12 in all)").waitFor();
      const emails = () => page.locator("tbody tr td:first-child").allTextContents();
      expect(await emails()).toHaveLength(10);
      expect((await emails())[0]).toBe(`${prefix}-00@example.com`);
      await page.getByRole("button", { name: "Next" }).click();
      await page.getByText("Page 2 of 2 (12 in all)").waitFor();
      await expect.poll(emails).toEqual([`${prefix}-10@example.com`, `${prefix}-11@example.com`]);
      await page.getByRole("button", { name: "Previous" }).click();
      await page.getByText("Page 1 of 2 (12 in all)").waitFor();
      await page.getByRole("button", { name: /^Email/ }).click(); // ascending -> descending
      await expect.poll(async () => (await emails())[0]).toBe(`${prefix}-11@example.com`);
      expect(await page.getByRole("columnheader", { name: /^Email/ }).getAttribute("aria-sort")).toBe("descending");
      await shot(page, "admin-users-search-sort-page");
    } finally {
      await context.close();
    }
  });

  it("rules page tabs: live stats explain the missing fast path, history lists the changes", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, people.admin, "/rules");
      await page.getByRole("tab", { name: "Live stats" }).click();
      await page.getByText(/No fast path is configured/).waitFor();
      expect(page.url()).toContain("tab=live");
      await shot(page, "admin-rules-live-stats");
      await page.getByRole("tab", { name: "History" }).click();
      await page.getByRole("heading", { name: "Rule changes (audit log)" }).waitFor();
      await page.getByRole("cell", { name: "rule.create" }).first().waitFor();
      await shot(page, "admin-rules-history");
      await page.reload();
      expect(await page.getByRole("tab", { name: "History" }).getAttribute("aria-selected")).toBe("true");
    } finally {
      await context.close();
    }
  });

  it("maintainer: creates a rule, and a stale edit from a second tab shows the conflict", async () => {
    const name = `conflict-${run}`;
    const { context, page: tab1 } = await newPage();
    try {
      await signIn(tab1, people.maintainer, "/rules");
      await tab1.getByRole("button", { name: "New rule" }).click();
      const create = tab1.getByRole("form", { name: "New rule" });
      await create.getByLabel("Name").fill(name);
      await create.getByLabel("Source network").fill("203.0.113.0/33");
      await create.getByText("An IPv4 prefix is 0..32").waitFor();
      await create.getByLabel("Source network").fill("203.0.113.0/24");
      await create.getByLabel("Protocol").selectOption("tcp");
      await create.getByLabel("First port").fill("443");
      await create.getByLabel("Action").selectOption("rate_limit");
      await create.getByLabel("Packets per second").fill("1000");
      await create.getByRole("button", { name: "Create rule" }).click();
      await tab1.getByText(`Rule “${name}” saved (revision 1).`).waitFor();

      // Second tab of the same browser session.
      const tab2 = await context.newPage();
      await tab2.goto("/rules");
      await tab2.getByRole("button", { name: `Edit ${name}` }).click();
      const edit2 = tab2.getByRole("form", { name: `Edit rule ${name}` });
      await edit2.getByLabel("Name").waitFor();

      await tab1.getByRole("button", { name: `Edit ${name}` }).click();
      const edit1 = tab1.getByRole("form", { name: `Edit rule ${name}` });
      await edit1.getByLabel("Packets per second").fill("2000");
      await edit1.getByRole("button", { name: "Save rule" }).click();
      await tab1.getByText(`Rule “${name}” saved (revision 2).`).waitFor();

      await edit2.getByLabel("Name").fill(`${name}-mine`);
      await edit2.getByRole("button", { name: "Save rule" }).click();
      const conflict = edit2.getByRole("region", { name: "Conflict" });
      await conflict.waitFor();
      expect(await conflict.textContent()).toContain(`Revision 2 by ${people.maintainer.email}`);
      expect(await edit2.getByLabel("Name").inputValue()).toBe(`${name}-mine`);
      await shot(tab2, "maintainer-rules-conflict");
      await conflict.getByRole("button", { name: "Discard mine, load theirs" }).click();
      expect(await edit2.getByLabel("Name").inputValue()).toBe(name);
      expect(await edit2.getByLabel("Packets per second").inputValue()).toBe("2000");

      const rules = await admin.call("GET", `/rules?q=${name}`);
      expect(rules.body.items[0]).toMatchObject({ name, revision: 2, rate_limit_pps: 2000 });
    } finally {
      await context.close();
    }
  });

  it("a password change ends the other session", async () => {
    await inTwoBrowsers("pw", { a: "/profile", b: "/rules" }, async (a, b, who) => {
      // A common password is refused by the API; the form says why, under the field.
      await a.getByLabel("Current password").fill(who.password);
      await a.getByLabel("New password", { exact: true }).fill("qwerty123456");
      await a.getByLabel("Repeat new password").fill("qwerty123456");
      await a.getByRole("button", { name: "Change password" }).click();
      await a.getByText("This is one of the most commonly used passwords; choose another").waitFor();
      await a.getByLabel("Current password").fill(who.password);
      await a.getByLabel("New password", { exact: true }).fill("a-brand-new-password");
      await a.getByLabel("Repeat new password").fill("a-brand-new-password");
      await a.getByRole("button", { name: "Change password" }).click();
      await a.getByText("Password changed. Your other sessions have been signed out.").waitFor();

      // B's next request is refused and its refresh token is revoked: back to the login page.
      await b.getByRole("link", { name: "Dashboard", exact: true }).click();
      await b.getByText("Your session has ended. Please sign in again.").waitFor();
      await b.getByRole("button", { name: "Sign in" }).waitFor();

      // A carries on with the fresh session the change handed it.
      await a.getByRole("link", { name: "Rules", exact: true }).click();
      await a.getByRole("heading", { name: "Rules", level: 1 }).waitFor();
      await a.reload();
      await a.getByRole("navigation", { name: "Main" }).waitFor();
    });
  });

  it("a user ends their other session from the profile page", async () => {
    await inTwoBrowsers("sessions", { a: "/profile?tab=sessions", b: "/rules" }, async (a, b, who) => {
      const rows = a.locator(".tabs table tbody tr");
      await expect.poll(() => rows.count()).toBe(2);
      await a.getByText("This session").waitFor();
      await shot(a, "viewer-profile-sessions");
      await a.getByLabel("Your password, to end sessions").fill(who.password);
      await a.getByRole("button", { name: "End", exact: true }).click();
      await a.getByText("The session has ended.").waitFor();
      await expect.poll(() => rows.count()).toBe(1);

      await b.getByRole("link", { name: "Dashboard", exact: true }).click();
      await b.getByText("Your session has ended. Please sign in again.").waitFor();
    });
  });

  it("an expired access token is refreshed silently", async () => {
    const { page, seen } = early;
    // The one wait on the clock: the token must really expire (the API's minimum TTL is 30 s, and
    // it accepts 5 s of clock skew).
    const remaining = early.at + (ACCESS_TOKEN_TTL + 5 + 3) * 1000 - Date.now();
    if (remaining > 0) await page.waitForTimeout(remaining);
    await page.getByRole("link", { name: "Rules", exact: true }).click();
    await page.getByText(`viewer-visible-${run}`).waitFor();
    // (The refresh before the sign-in, without a cookie yet, is the expected 401 of a new visitor.)
    const firstExpired = seen.findIndex((s) => s.endsWith(" 401") && !s.includes("/auth/"));
    expect(firstExpired, seen.join("\n")).toBeGreaterThan(-1);
    // Requests in flight together may all meet the expiry; one refresh, then each is retried.
    const after = seen.slice(firstExpired + 1);
    expect(after, seen.join("\n")).toContain("POST /api/v1/auth/refresh 200");
    const refreshAt = after.indexOf("POST /api/v1/auth/refresh 200");
    expect(after.slice(refreshAt + 1), seen.join("\n")).toContain(seen[firstExpired]!.replace(/ 401$/, " 200"));
    expect(seen.filter((s) => s.includes("/auth/login"))).toHaveLength(1);
    expect(page.url()).toBe(`${webui.url}/rules`);
    await early.context.close();
  });

  it("serves the API's interactive docs through /api, from its own files, within their CSP", async () => {
    const { context, page } = await newPage();
    try {
      const elsewhere: string[] = [];
      page.on("request", (r) => {
        if (new URL(r.url()).origin !== webui.url) elsewhere.push(r.url());
      });
      await page.goto("/api/docs");
      await page.locator(".swagger-ui .info .title").filter({ hasText: "myapp API" }).waitFor();
      await page.locator(".opblock-summary-path", { hasText: "/api/v1/users" }).first().waitFor();
      expect(await page.getByRole("button", { name: /Authorize/ }).count()).toBeGreaterThan(0);
      expect(elsewhere).toEqual([]);
      await shot(page, "api-docs");
    } finally {
      await context.close();
    }
  });

  it("no page broke the Content Security Policy or threw an uncaught error", () => {
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it("the sidebar remembers being collapsed across a reload", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, people.viewer);
      await page.getByRole("button", { name: "Collapse sidebar" }).click();
      await shot(page, "viewer-dashboard-collapsed");
      await page.reload();
      await page.getByRole("button", { name: "Expand sidebar" }).waitFor();
      expect(await page.evaluate(() => ({ ...localStorage }))).toEqual({ "myapp.sidebar.collapsed": "1" });
    } finally {
      await context.close();
    }
  });

  it("the API going away shows an error, not a blank page", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, people.admin);
      await api.stop();
      await page.getByRole("link", { name: "Users", exact: true }).click();
      await page.getByRole("heading", { name: "Users", level: 1 }).waitFor();
      await page.getByRole("alert").filter({ hasText: /Could not load this page\. The API is not reachable/ }).first().waitFor();
      await shot(page, "admin-api-down");
      await page.reload();
      await page.getByText(/The API is not reachable/).waitFor();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      const health = await fetch(`${webui.url}/api/v1/auth/me`);
      expect(health.status).toBe(502);
      expect((await health.json()).error.code).toBe("api_unavailable");
    } finally {
      await context.close();
    }
  });
}
