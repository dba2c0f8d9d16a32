// @vitest-environment node
// WCAG 2.x contrast of every text/background pair the stylesheet uses, read from styles.css itself
// so a colour change that breaks AA (4.5:1 for text) fails here.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const css = fs.readFileSync(path.join(import.meta.dirname, "styles.css"), "utf8");
const vars = Object.fromEntries([...css.matchAll(/--([a-z0-9-]+):\s*(#[0-9a-f]{6})/gi)].map((m) => [m[1], m[2]]));

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) =>
    c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4,
  );
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

const v = (name: string) => {
  const value = vars[name];
  if (!value) throw new Error(`styles.css has no --${name}`);
  return value;
};

// [foreground, background, where]
const PAIRS: [string, string, string][] = [
  [v("text"), v("bg"), "body text"],
  [v("text"), v("panel"), "text in cards and the top bar"],
  [v("text"), v("panel-2"), "button labels"],
  [v("muted"), v("bg"), "secondary text"],
  [v("muted"), v("panel"), "secondary text in cards"],
  [v("muted"), "#020617", "sidebar headings"],
  [v("text"), "#020617", "sidebar links"],
  [v("gold"), v("bg"), "headings and accents"],
  [v("gold"), v("panel"), "active sidebar link, table headers in cards"],
  [v("gold"), "#020617", "brand in the sidebar"],
  [v("bg"), v("gold"), "primary button label"],
  [v("bg"), v("gold-strong"), "primary button label, hovered"],
  [v("danger"), v("bg"), "field errors"],
  [v("danger"), v("panel"), "field errors in cards"],
  [v("danger"), v("panel-2"), "danger button label"],
  [v("ok"), v("bg"), "synced badge"],
  ["#fee2e2", "#450a0a", "error alert"],
  ["#dbeafe", "#172554", "info alert"],
  ["#dcfce7", "#052e16", "success alert"],
];

describe("colour contrast (WCAG AA, 4.5:1)", () => {
  it("finds the palette in styles.css", () => {
    for (const name of ["bg", "panel", "panel-2", "text", "muted", "gold", "gold-strong", "danger", "ok"]) {
      expect(vars[name], name).toMatch(/^#/);
    }
    expect(v("gold").toLowerCase()).toBe("#fbbf24"); // amber-400
  });

  it.each(PAIRS)("%s on %s (%s)", (fg, bg) => {
    expect(contrast(fg, bg)).toBeGreaterThanOrEqual(4.5);
  });
});
