// Every setting of the WebUI server, read from the environment in this one place.
//
//   PORT      port to listen on (default 3000)
//   HOST      address to bind (default 0.0.0.0)
//   API_URL   base URL of the API that /api is proxied to (default http://flask-backend:5000)
//   APP_ENV   development | production (default production, as in every image: development is
//             opt-in, e.g. `make run`); in production the refresh cookie is
//             `__Host-`-prefixed and Secure (HTTPS only) and HSTS is sent
//   DIST_DIR  the built SPA (default: ../dist next to this folder)
//   API_TIMEOUT_MS  how long to wait for the API before answering 504 (default 30000)
//   TRUSTED_PROXY_HOPS  how many proxies in front of this server (e.g. the TLS ingress) append
//             to X-Forwarded-For (default 0: none, the TCP peer is the browser). Express then
//             takes the browser's address from the last N entries, and the server forwards
//             only that address to the API (whose own TRUSTED_PROXY_HOPS is 1: this server).

import path from "node:path";
import { fileURLToPath } from "node:url";

export class ConfigError extends Error {}

function intVar(env, name, fallback, min, max) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

/** @returns {{port:number, host:string, apiUrl:URL, appEnv:string, secureCookies:boolean, distDir:string, apiTimeoutMs:number, trustedProxyHops:number}} */
export function loadConfig(env = process.env) {
  const appEnv = env.APP_ENV || "production";
  if (appEnv !== "development" && appEnv !== "production") {
    throw new ConfigError(`APP_ENV must be "development" or "production", got "${appEnv}"`);
  }
  const rawApiUrl = env.API_URL || "http://flask-backend:5000";
  let apiUrl;
  try {
    apiUrl = new URL(rawApiUrl);
  } catch {
    throw new ConfigError(`API_URL is not a valid URL: "${rawApiUrl}"`);
  }
  if (apiUrl.protocol !== "http:" && apiUrl.protocol !== "https:") {
    throw new ConfigError(`API_URL must be an http:// or https:// URL, got "${rawApiUrl}"`);
  }
  const here = path.dirname(fileURLToPath(import.meta.url));
  return {
    port: intVar(env, "PORT", 3000, 0, 65535),
    host: env.HOST || "0.0.0.0",
    apiUrl,
    appEnv,
    secureCookies: appEnv !== "development",
    distDir: path.resolve(env.DIST_DIR || path.join(here, "..", "dist")),
    apiTimeoutMs: intVar(env, "API_TIMEOUT_MS", 30000, 100, 600000),
    trustedProxyHops: intVar(env, "TRUSTED_PROXY_HOPS", 0, 0, 5),
  };
}
