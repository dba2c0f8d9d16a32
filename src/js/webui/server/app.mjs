// The WebUI server: the built SPA, /healthz, and /api proxied to the API with the refresh token
// kept in an HttpOnly cookie (see session.mjs).

import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import compression from "compression";
import express from "express";
import helmet from "helmet";
import {
  clearedCookie,
  ISSUES_REFRESH,
  parseCookies,
  READS_REFRESH,
  REFRESH_COOKIE,
  refreshCookie,
} from "./session.mjs";

const MAX_AUTH_BODY = 64 * 1024;
// Hop-by-hop headers (RFC 9110 7.6.1) and the browser's cookies stay on this side of the proxy.
const DROP_REQUEST_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "cookie",
]);
const DROP_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "trailer",
  "content-length",
]);

function errorBody(code, message, details) {
  return { error: details ? { code, message, details } : { code, message } };
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(Object.assign(new Error("request body too large"), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Origin check for the cookie-reading endpoints: SameSite=Strict plus same-origin requests. */
function crossOrigin(req) {
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

/**
 * @param {{apiUrl: URL, distDir: string, secureCookies: boolean, apiTimeoutMs: number}} config
 * @returns {import("express").Express}
 */
export function createApp(config) {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          "default-src": ["'self'"],
          "script-src": ["'self'"],
          "style-src": ["'self'"],
          "img-src": ["'self'", "data:"],
          "font-src": ["'self'"],
          "connect-src": ["'self'"],
          "object-src": ["'none'"],
          "base-uri": ["'self'"],
          "form-action": ["'self'"],
          "frame-ancestors": ["'none'"],
        },
      },
      referrerPolicy: { policy: "strict-origin-when-cross-origin" },
      // HSTS only where the site is served over HTTPS (outside development).
      strictTransportSecurity: config.secureCookies ? { maxAge: 31536000 } : false,
      crossOriginEmbedderPolicy: false,
      xFrameOptions: { action: "deny" },
    }),
  );

  app.get("/healthz", (_req, res) => {
    res.set("Cache-Control", "no-store").json({ status: "ok" });
  });

  app.use("/api", (req, res) => proxy(config, req, res));

  // Hashed assets never change under the same name: cache them for a year.
  app.use(
    "/assets",
    compression(),
    express.static(path.join(config.distDir, "assets"), {
      immutable: true,
      maxAge: "365d",
      index: false,
      fallthrough: false,
    }),
  );

  const indexPath = path.join(config.distDir, "index.html");
  app.use(
    compression(),
    express.static(config.distDir, {
      index: false,
      maxAge: "1h",
      setHeaders: (res, file) => {
        if (path.basename(file) === "index.html") res.setHeader("Cache-Control", "no-cache");
      },
    }),
  );
  // Client-side routes: every other GET gets the SPA shell, revalidated on each load so a new
  // deployment's asset names are picked up at once.
  app.get(/.*/, (_req, res, next) => {
    fs.readFile(indexPath, (err, html) => {
      if (err) return next(err);
      res.set("Cache-Control", "no-cache").type("html").send(html);
    });
  });

  // express.static(fallthrough: false) reports a missing asset as a 404 error.
  app.use((err, _req, res, _next) => {
    const status = err.status || err.statusCode || 500;
    if (status >= 500) console.error("webui: request failed:", err);
    res
      .status(status)
      .json(errorBody(status === 404 ? "not_found" : "internal_error", status === 404 ? "Not found" : "Internal server error"));
  });
  return app;
}

async function proxy(config, req, res) {
  const target = new URL(req.originalUrl, config.apiUrl);
  const pathname = target.pathname;
  const cookies = parseCookies(req.headers.cookie);
  const handlesSession = req.method === "POST" && (ISSUES_REFRESH.has(pathname) || READS_REFRESH.has(pathname));

  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!DROP_REQUEST_HEADERS.has(name)) headers[name] = value;
  }
  headers["x-forwarded-for"] = [req.headers["x-forwarded-for"], req.socket.remoteAddress].filter(Boolean).join(", ");
  headers["x-forwarded-proto"] = req.protocol;
  headers["x-forwarded-host"] = req.headers.host ?? "";

  let body = null;
  if (handlesSession) {
    if (READS_REFRESH.has(pathname) && crossOrigin(req)) {
      res.status(403).json(errorBody("forbidden", "Cross-origin session requests are refused"));
      return;
    }
    try {
      body = await readBody(req, MAX_AUTH_BODY);
    } catch (err) {
      res.status(err.status || 400).json(errorBody("bad_request", err.message));
      return;
    }
    if (READS_REFRESH.has(pathname)) {
      const token = cookies[REFRESH_COOKIE];
      if (!token && pathname.endsWith("/refresh")) {
        res.status(401).json(errorBody("unauthenticated", "No session: sign in again"));
        return;
      }
      body = Buffer.from(JSON.stringify(token ? { refresh_token: token } : {}));
      headers["content-type"] = "application/json";
    }
    headers["content-length"] = String(body.length);
    delete headers["accept-encoding"]; // the answer is parsed here, keep it plain
  }

  const client = target.protocol === "https:" ? https : http;
  const upstream = client.request(target, { method: req.method, headers, timeout: config.apiTimeoutMs });

  upstream.on("timeout", () => {
    upstream.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" }));
  });
  upstream.on("error", (err) => {
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
  });

  upstream.on("response", async (apiRes) => {
    const outHeaders = {};
    for (const [name, value] of Object.entries(apiRes.headers)) {
      if (!DROP_RESPONSE_HEADERS.has(name) && name !== "set-cookie") outHeaders[name] = value;
    }
    if (!handlesSession) {
      if (apiRes.headers["content-length"]) outHeaders["content-length"] = apiRes.headers["content-length"];
      res.writeHead(apiRes.statusCode ?? 502, outHeaders);
      apiRes.pipe(res);
      return;
    }
    let raw;
    try {
      raw = await readBody(apiRes, 16 * MAX_AUTH_BODY);
    } catch (err) {
      res.status(502).json(errorBody("api_unavailable", `The API's answer was cut off: ${err.message}`));
      return;
    }
    const status = apiRes.statusCode ?? 502;
    const setCookies = [];
    let payload = raw;
    if (status === 200 && ISSUES_REFRESH.has(pathname)) {
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
    if (pathname.endsWith("/logout") || (pathname.endsWith("/refresh") && status === 401)) {
      setCookies.push(clearedCookie(config.secureCookies));
    }
    if (setCookies.length) outHeaders["set-cookie"] = setCookies;
    outHeaders["cache-control"] = "no-store";
    outHeaders["content-length"] = String(payload.length);
    res.writeHead(status, outHeaders);
    res.end(payload);
  });

  if (body !== null) {
    upstream.end(body);
  } else {
    req.pipe(upstream);
  }
}
