// The refresh token never reaches the browser's JavaScript: the server takes it out of the API's
// JSON answers and keeps it in an HttpOnly, SameSite=Strict cookie, and puts it back into the
// bodies of /auth/refresh and /auth/logout.
//
// Outside development the cookie is `__Host-myapp_refresh` (Secure, Path=/, no Domain): the
// browser then refuses one set by a sibling subdomain or over plain HTTP, so nobody can plant a
// second session cookie next to ours. Development runs on http://localhost, where a __Host-
// cookie cannot be set, and keeps `myapp_refresh` scoped to the auth endpoints.

const COOKIE_BASE = "myapp_refresh";
const DEV_COOKIE_PATH = "/api/v1/auth";

/** Endpoints whose 200 answer carries a new refresh token. */
export const ISSUES_REFRESH = new Set(["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/password"]);
/** Endpoints that need the refresh token from the cookie in their body. */
export const READS_REFRESH = new Set(["/api/v1/auth/refresh", "/api/v1/auth/logout"]);

/** @param {boolean} secure */
export function refreshCookieName(secure) {
  return secure ? `__Host-${COOKIE_BASE}` : COOKIE_BASE;
}

function cookieScope(secure) {
  return secure ? ["Path=/", "Secure"] : [`Path=${DEV_COOKIE_PATH}`];
}

/**
 * Every value of the cookie `name` in a Cookie header, in order. Kept by hand because the usual
 * parsers (the `cookie` package, cookie-parser) keep only the first of duplicate names: the very
 * ambiguity the proxy refuses.
 * @param {string | undefined} header
 * @param {string} name
 * @returns {string[]}
 */
export function refreshTokens(header, name) {
  const values = [];
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      values.push(decodeURIComponent(raw));
    } catch {
      values.push(raw);
    }
  }
  return values;
}

export function refreshCookie(token, maxAgeSeconds, secure) {
  const attrs = [
    `${refreshCookieName(secure)}=${encodeURIComponent(token)}`,
    ...cookieScope(secure),
    "HttpOnly",
    "SameSite=Strict",
  ];
  if (Number.isInteger(maxAgeSeconds) && maxAgeSeconds > 0) attrs.push(`Max-Age=${maxAgeSeconds}`);
  return attrs.join("; ");
}

export function clearedCookie(secure) {
  return [`${refreshCookieName(secure)}=`, ...cookieScope(secure), "HttpOnly", "SameSite=Strict", "Max-Age=0"].join(
    "; ",
  );
}

/**
 * Why a request to a session endpoint looks cross-site, or null when it is same-origin (or
 * comes from a client that is not a browser: browsers always send Origin, and Sec-Fetch-Site
 * where they know it, on a POST). SameSite=Strict already keeps the cookie off cross-site
 * requests; this also stops a cross-site login (login CSRF) and a sibling subdomain.
 * @param {import("express").Request} req
 * @returns {string | null}
 */
export function crossSiteReason(req) {
  const fetchSite = req.get("sec-fetch-site");
  if (fetchSite && fetchSite !== "same-origin") return `Sec-Fetch-Site: ${fetchSite}`;
  const origin = req.get("origin");
  if (origin === undefined) return null;
  let host;
  try {
    host = new URL(origin).host;
  } catch {
    return `Origin: ${origin}`;
  }
  return host === req.host ? null : `Origin: ${origin}`;
}
