// Entry point: `node server/main.mjs` (the WebUI container's command).
import { createApp } from "./app.mjs";
import { ConfigError, loadConfig } from "./config.mjs";

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`webui: configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

const server = createApp(config).listen(config.port, config.host, () => {
  const { port } = server.address();
  console.log(
    `webui: listening on http://${config.host}:${port} (APP_ENV=${config.appEnv}, API_URL=${config.apiUrl.origin}, dist=${config.distDir})`,
  );
});

function shutdown(signal) {
  console.log(`webui: ${signal} received, closing`);
  server.close(() => process.exit(0));
  // Keep-alive connections would hold close() open: give them a moment, then leave.
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
