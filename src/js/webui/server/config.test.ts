// @vitest-environment node
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.mjs";

describe("loadConfig", () => {
  it("has working defaults", () => {
    const c = loadConfig({});
    expect(c.port).toBe(3000);
    expect(c.apiUrl.href).toBe("http://flask-backend:5000/");
    expect(c.trustedProxyHops).toBe(0);
  });

  it("runs as production when APP_ENV is unset: development is opt-in", () => {
    const c = loadConfig({});
    expect(c.appEnv).toBe("production");
    expect(c.secureCookies).toBe(true);
    expect(loadConfig({ APP_ENV: "" }).secureCookies).toBe(true);
    expect(loadConfig({ APP_ENV: "development" }).secureCookies).toBe(false);
  });

  it("reads TRUSTED_PROXY_HOPS", () => {
    expect(loadConfig({ TRUSTED_PROXY_HOPS: "1" }).trustedProxyHops).toBe(1);
  });

  it("marks cookies Secure in production", () => {
    expect(loadConfig({ APP_ENV: "production" }).secureCookies).toBe(true);
  });

  it.each([
    [{ PORT: "http" }, /PORT must be an integer/],
    [{ PORT: "70000" }, /PORT must be an integer/],
    [{ API_URL: "flask-backend:5000" }, /API_URL must be an http/],
    [{ API_URL: "::nope" }, /API_URL is not a valid URL/],
    [{ APP_ENV: "staging" }, /APP_ENV must be/],
    [{ TRUSTED_PROXY_HOPS: "-1" }, /TRUSTED_PROXY_HOPS must be an integer between 0 and 5/],
    [{ TRUSTED_PROXY_HOPS: "true" }, /TRUSTED_PROXY_HOPS must be an integer/],
  ])("names the bad variable in %o", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
