// The WebUI server: the built SPA, /healthz, and /api proxied to the API with the refresh token
// kept in an HttpOnly cookie (see session.mjs).

import fs from "node:fs";
import path from "node:path";
import compression from "compression";
import express from "express";
import helmet from "helmet";
import { createApiProxy, errorBody } from "./proxy.mjs";

/**
 * @param {{apiUrl: URL, distDir: string, secureCookies: boolean, apiTimeoutMs: number, trustedProxyHops: number}} config
 * @returns {import("express").Express}
 */
export function createApp(config) {
  const app = express();
  app.disable("x-powered-by");
  // req.ip and req.protocol believe X-Forwarded-* only from the configured number of proxies in
  // front of us (0: none), so a client cannot choose the address the API throttles on.
  app.set("trust proxy", config.trustedProxyHops > 0 ? config.trustedProxyHops : false);

  // An absolute-form target (`GET http://host/...`) is for forward proxies; we are not one.
  app.use((req, res, next) => {
    if (req.url.startsWith("/")) return next();
    res.status(400).json(errorBody("bad_request_target", "Only origin-form request targets (/path) are accepted"));
  });

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

  app.use("/api", createApiProxy(config));

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
