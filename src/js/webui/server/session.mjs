// The refresh token never reaches the browser's JavaScript: the server takes it out of the API's
// JSON answers and keeps it in an HttpOnly, SameSite=Strict cookie scoped to the auth endpoints,
// and puts it back into the bodies of /auth/refresh and /auth/logout.

export const REFRESH_COOKIE = "myapp_refresh";
export const COOKIE_PATH = "/api/v1/auth";

/** Endpoints whose 200 answer carries a new refresh token. */
export const ISSUES_REFRESH = new Set(["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/password"]);
/** Endpoints that need the refresh token from the cookie in their body. */
export const READS_REFRESH = new Set(["/api/v1/auth/refresh", "/api/v1/auth/logout"]);

export function parseCookies(header) {
  const cookies = {};
  if (!header) return cookies;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || name in cookies) continue;
    try {
      cookies[name] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      cookies[name] = part.slice(eq + 1).trim();
    }
  }
  return cookies;
}

export function refreshCookie(token, maxAgeSeconds, secure) {
  const attrs = [
    `${REFRESH_COOKIE}=${encodeURIComponent(token)}`,
    `Path=${COOKIE_PATH}`,
    "HttpOnly",
    "SameSite=Strict",
  ];
  if (Number.isInteger(maxAgeSeconds) && maxAgeSeconds > 0) attrs.push(`Max-Age=${maxAgeSeconds}`);
  if (secure) attrs.push("Secure");
  return attrs.join("; ");
}

export function clearedCookie(secure) {
  const attrs = [`${REFRESH_COOKIE}=`, `Path=${COOKIE_PATH}`, "HttpOnly", "SameSite=Strict", "Max-Age=0"];
  if (secure) attrs.push("Secure");
  return attrs.join("; ");
}
