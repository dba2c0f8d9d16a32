// @vitest-environment node
// Issue 13: the WebUI builds, is tested and runs on a Node.js LTS that is still supported, and the
// image runs the same major as the build. These tests run on the build's node (Pants' [nodejs],
// i.e. scripts/node.sh's, in CI too), so they also fail when that node falls out of support.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// End of life of the even (LTS) majors, from the Node.js release schedule. A new LTS major is
// added here when the build moves to it.
const LTS_END_OF_LIFE: Record<number, string> = {
  20: "2026-04-30",
  22: "2027-04-30",
  24: "2028-04-30",
  26: "2029-04-30",
};

const here = path.dirname(fileURLToPath(import.meta.url));

function supported(major: number, today = new Date()): boolean {
  const end = LTS_END_OF_LIFE[major];
  return end !== undefined && today < new Date(`${end}T23:59:59Z`);
}

describe("Node.js runtime", () => {
  it("knows Node 20 is past its end of life (so the checks below can fail)", () => {
    expect(supported(20, new Date("2026-12-04T00:00:00Z"))).toBe(false);
    expect(supported(25)).toBe(false);
  });

  it("builds and tests on a supported LTS major", () => {
    const major = Number(process.versions.node.split(".")[0]);
    expect(supported(major), `node ${process.versions.node}`).toBe(true);
  });

  it("the image runs the build's major, from node:<major> images only", () => {
    const dockerfile = readFileSync(path.join(here, "..", "Dockerfile"), "utf8");
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(bases.length).toBeGreaterThan(0);
    const build = process.versions.node.split(".")[0];
    for (const base of bases) expect(base).toMatch(new RegExp(`/node:${build}[-.]`));
  });
});
