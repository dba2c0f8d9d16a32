import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";

// CI runs these beside every other test on a 2-CPU machine: wait for the DOM generously (findBy*,
// waitFor) instead of failing on a slow render. A passing run is not slowed down by this.
configure({ asyncUtilTimeout: 10_000 });

afterEach(() => {
  cleanup();
  if (typeof localStorage !== "undefined") localStorage.clear();
});
