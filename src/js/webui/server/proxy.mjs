// /api/* to the API: which request targets may pass, and the proxy itself (http-proxy-middleware
// over a keep-alive agent, bodies streamed), with the session endpoints' cookie handling.

import http from "node:http";
import https from "node:https";
import { createProxyMiddleware } from "http-proxy-middleware";
import {
  ISSUES_REFRESH,
  READS_REFRESH,
  clearedCookie,
  crossSiteReason,
  refreshCookieName,
  refreshCookie,
  refreshTokens,
} from "./session.mjs";

const MAX_AUTH_BODY = 64 * 1024;
// What the session endpoints' answers lose on the way: framing (the body is re-sent whole), the
// API's own cookies, hop-by-hop headers.
const DROP_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "trailer",
  "upgrade",
  "content-length",
  "content-encoding",
  "set-cookie",
]);
// RFC 3986 pchar: unreserved / sub-delims / ":" / "@" / pct-encoded.
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$/;
// Escapes that could turn into a separator, a dot segment or a second round of decoding
// somewhere behind us (%2e, %2f, %5c, %25), and control characters.
const REFUSED_ESCAPES = new Set([0x2e, 0x2f, 0x5c, 0x25, 0x7f]);
// Hop-by-hop headers (RFC 9110 7.6.1), the browser's cookies, Expect (Node answers 100-continue
// itself) and forwarding headers the client wrote (X-Forwarded-* are set below) stay here.
const DROP_REQUEST_HEADERS = [
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
  "cookie",
  "expect",
  "forwarded",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-real-ip",
];

export function errorBody(code, message, details) {
  return { error: details ? { code, message, details } : { code, message } };
}

/**
 * Why a raw request target may not be forwarded to the API, or null when it may: only an
 * origin-form target whose path is under /api/ and already normalised (no dot segments, no
 * empty segments, no backslash, no escaped '.', '/', '\' or '%', no control characters).
 * @param {string} target the request line's target, as received
 * @returns {string | null}
 */
export function refusedTarget(target) {
  if (!target.startsWith("/")) return "only origin-form request targets (/api/...) are accepted";
  const query = target.indexOf("?");
  const path = query < 0 ? target : target.slice(0, query);
  if (!path.startsWith("/api/")) return "only paths under /api/ are forwarded to the API";
  const segments = path.slice(1).split("/");
  for (const [i, segment] of segments.entries()) {
    if (segment === "" && i < segments.length - 1) return "the path has an empty segment (//)";
    if (segment === "." || segment === "..") return "the path has a dot segment (. or ..)";
    if (!PCHAR.test(segment)) return "the path has a character that must be escaped (such as a backslash)";
    for (const escape of segment.matchAll(/%(.{0,2})/g)) {
      const code = /^[0-9A-Fa-f]{2}$/.test(escape[1]) ? parseInt(escape[1], 16) : NaN;
      if (Number.isNaN(code)) return `the path has a malformed escape (%${escape[1]})`;
      if (code < 0x20 || REFUSED_ESCAPES.has(code)) {
        return `the path has an escaped '.', '/', '\\', '%' or control character (%${escape[1]})`;
      }
    }
  }
  return null;
}

/** The whole body of `stream`; over `limit` bytes it stops reading and rejects with status 413. */
function readBody(stream, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        stream.off("data", onData);
        stream.pause();
        reject(Object.assign(new Error(`request body over ${limit} bytes`), { status: 413 }));
        return;
      }
      chunks.push(chunk);
    };
    stream.on("data", onData);
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

/** The API is down, slow or cut the answer: a JSON 502/504 (or a reset once the answer has begun). */
function upstreamError(config, err, res) {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const timedOut = err.code === "ETIMEDOUT";
  res
    .status(timedOut ? 504 : 502)
    .set("Cache-Control", "no-store")
    .json(
      errorBody(
        timedOut ? "api_timeout" : "api_unavailable",
        timedOut
          ? `The API did not answer within ${config.apiTimeoutMs} ms`
          : `The API is not reachable (${err.code || err.message}); try again shortly`,
        { upstream: config.apiUrl.origin },
      ),
    );
}

/**
 * A session endpoint's answer as passed to the browser: the refresh token moved from the JSON
 * into the cookie (or the cookie cleared), the API's own cookies and hop-by-hop headers dropped.
 * @returns {{headers: Record<string, string | string[]>, body: Buffer}}
 */
function sessionAnswer(config, path, proxyRes, raw) {
  const status = proxyRes.statusCode ?? 502;
  const headers = {};
  for (const [name, value] of Object.entries(proxyRes.headers)) {
    if (!DROP_RESPONSE_HEADERS.has(name) && value !== undefined) headers[name] = value;
  }
  const setCookies = [];
  let payload = raw;
  if (status === 200 && ISSUES_REFRESH.has(path)) {
    try {
      const data = JSON.parse(raw.toString("utf8"));
      if (typeof data.refresh_token === "string") {
        setCookies.push(refreshCookie(data.refresh_token, data.refresh_expires_in, config.secureCookies));
        delete data.refresh_token;
      }
      payload = Buffer.from(JSON.stringify(data));
    } catch {
      // Not JSON: pass it on untouched; there is no token to move.
    }
  }
  if (path.endsWith("/logout") || (path.endsWith("/refresh") && status === 401)) {
    setCookies.push(clearedCookie(config.secureCookies));
  }
  if (setCookies.length) headers["set-cookie"] = setCookies;
  headers["cache-control"] = "no-store";
  headers["content-length"] = String(payload.length);
  return { headers, body: payload };
}

/**
 * The /api handler: refuses targets that are not normalised paths under /api/ (400), refuses
 * cross-site session requests (403), then forwards to API_URL's origin.
 * @param {{apiUrl: URL, secureCookies: boolean, apiTimeoutMs: number}} config
 * @returns {import("express").RequestHandler}
 */
export function createApiProxy(config) {
  const agentOptions = { keepAlive: true, maxSockets: 128, maxFreeSockets: 32 };
  const agent = config.apiUrl.protocol === "https:" ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  const cookieName = refreshCookieName(config.secureCookies);

  const common = {
    target: config.apiUrl.origin,
    agent,
    changeOrigin: true,
    on: {
      proxyReq: (proxyReq, req) => {
        // The browser's Connection header is about its own connection; the upstream one stays
        // open for the next request (httpxy sets "close" after a chunked body: leave that).
        if (!req.headers["transfer-encoding"]) proxyReq.removeHeader("connection");
        // A dead or hung API answers 504 after API_TIMEOUT_MS rather than holding the browser.
        proxyReq.setTimeout(config.apiTimeoutMs, () => {
          proxyReq.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }));
        });
        if (req.sessionBody) proxyReq.write(req.sessionBody);
      },
      error: (err, _req, res) => upstreamError(config, err, res),
    },
  };
  const stream = createProxyMiddleware({
    ...common,
    on: {
      ...common.on,
      proxyRes: (proxyRes) => {
        delete proxyRes.headers["set-cookie"];
      },
    },
  });
  // Session endpoints: the refresh token moves between the API's JSON and the HttpOnly cookie.
  const session = createProxyMiddleware({
    ...common,
    selfHandleResponse: true,
    on: {
      ...common.on,
      proxyRes: (proxyRes, req, res) => {
        readBody(proxyRes, 16 * MAX_AUTH_BODY).then(
          (raw) => {
            const { headers, body } = sessionAnswer(config, req.apiPath, proxyRes, raw);
            res.writeHead(proxyRes.statusCode ?? 502, headers).end(body);
          },
          (err) => {
            proxyRes.destroy();
            upstreamError(config, err, res);
          },
        );
      },
    },
  });

  return async (req, res, next) => {
    const refused = refusedTarget(req.originalUrl);
    if (refused) {
      res.status(400).json(errorBody("bad_request_target", `Not forwarded to the API: ${refused}`));
      return;
    }
    const query = req.originalUrl.indexOf("?");
    req.apiPath = query < 0 ? req.originalUrl : req.originalUrl.slice(0, query);
    // The mount point stripped /api from req.url: forward the checked target itself.
    req.url = req.originalUrl;

    const headers = req.headers;
    const cookieHeader = headers.cookie;
    for (const name of DROP_REQUEST_HEADERS) delete headers[name];
    // The browser's address as far as the trusted proxies (TRUSTED_PROXY_HOPS) vouch for it,
    // never an address the client wrote itself: the API trusts exactly this one hop.
    headers["x-forwarded-for"] = req.ip ?? "";
    headers["x-forwarded-proto"] = req.protocol;
    headers["x-forwarded-host"] = req.host ?? "";

    const path = req.apiPath;
    if (req.method !== "POST" || !(ISSUES_REFRESH.has(path) || READS_REFRESH.has(path))) {
      stream(req, res, next);
      return;
    }
    const crossSite = crossSiteReason(req);
    if (crossSite) {
      res.status(403).json(errorBody("forbidden", `Cross-site session requests are refused (${crossSite})`));
      return;
    }
    let body;
    try {
      body = await readBody(req, MAX_AUTH_BODY);
    } catch (err) {
      // The rest of an oversized body is not read: close the connection after this answer.
      const status = err.status || 400;
      res
        .set("Connection", "close")
        .status(status)
        .json(errorBody(status === 413 ? "payload_too_large" : "bad_request", err.message));
      return;
    }
    if (READS_REFRESH.has(path)) {
      const tokens = refreshTokens(cookieHeader, cookieName);
      if (tokens.length > 1) {
        res
          .status(400)
          .set("Set-Cookie", clearedCookie(config.secureCookies))
          .json(
            errorBody(
              "duplicate_session_cookie",
              `The request carries ${tokens.length} ${cookieName} cookies, so which session it means is unclear: sign in again`,
            ),
          );
        return;
      }
      if (!tokens.length && path.endsWith("/refresh")) {
        res.status(401).json(errorBody("unauthenticated", "No session: sign in again"));
        return;
      }
      body = Buffer.from(JSON.stringify(tokens.length ? { refresh_token: tokens[0] } : {}));
      headers["content-type"] = "application/json";
    }
    delete headers["transfer-encoding"];
    delete headers["accept-encoding"]; // the answer is rewritten here: keep it plain
    headers["content-length"] = String(body.length);
    req.sessionBody = body;
    session(req, res, next);
  };
}
