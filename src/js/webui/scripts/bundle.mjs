// `npm run bundle`: the deployable WebUI as src.js.webui/webui-bundle.tar.gz (what the container image unpacks),
// holding bundle/ = server/ (without tests), dist/ (the built SPA), package.json + lock and the
// production node_modules.
//
// The tarball is made here, from the files npm just wrote, not by a Pants `archive` target: Pants
// 2.17 hardlinks large files from its store into sandboxes, a hardlink made elsewhere meanwhile
// changes a file's ctime, and GNU tar then fails with "file changed as we read it"
// (pantsbuild/pants#19740; seen here on react-dom in a CI run).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const out = path.join(root, "bundle");

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, "server"), { recursive: true });
for (const file of fs.readdirSync(path.join(root, "server"))) {
  if (file.endsWith(".mjs") && !file.includes(".test.")) {
    fs.copyFileSync(path.join(root, "server", file), path.join(out, "server", file));
  }
}
fs.cpSync(path.join(root, "dist"), path.join(out, "dist"), { recursive: true });
for (const file of ["package.json", "package-lock.json"]) {
  fs.copyFileSync(path.join(root, file), path.join(out, file));
}
// npm hands scripts a cache path that may be relative to the package root: pin it, or the cache
// would land inside bundle/.
const cache = path.resolve(root, process.env.npm_config_cache || path.join(os.homedir(), ".npm"));
execFileSync(
  "npm",
  ["ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
  { cwd: out, stdio: "inherit", env: { ...process.env, npm_config_cache: cache } },
);
// Reproducible: entries sorted, owner and times fixed (the SPA's asset names carry content hashes).
// Under src.js.webui/, as Pants names its other packages in dist/ (the image build context).
const tarball = path.join(root, "src.js.webui", "webui-bundle.tar.gz");
fs.mkdirSync(path.dirname(tarball), { recursive: true });
execFileSync(
  "tar",
  [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=2000-01-01 00:00Z",
    "-czf",
    tarball,
    "bundle",
  ],
  // Pants runs build scripts with only node's own folder on PATH: tar and gzip are the system's.
  { cwd: root, stdio: "inherit", env: { ...process.env, GZIP: "-n", PATH: `${process.env.PATH ?? ""}:/usr/bin:/bin` } },
);
fs.rmSync(out, { recursive: true, force: true });
console.log(`bundle: ${tarball}`);
