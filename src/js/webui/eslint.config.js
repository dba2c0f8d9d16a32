// ESLint for the SPA, the Express server, the tests and the scripts: JavaScript's and TypeScript's
// recommended rules plus React's rules of hooks (the type checker cannot see a missing effect
// dependency or a hook called conditionally). Runs in `npm test`, so in `make test`.
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "bundle/", "node_modules/", "src.js.webui/", "test-results/", "src/api/schema.gen.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Express knows an error handler by its four parameters: `_next` must stay.
    rules: { "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }] },
  },
  {
    files: ["src/**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks },
    rules: reactHooks.configs.recommended.rules,
    languageOptions: { globals: globals.browser },
  },
  {
    files: ["server/**", "scripts/**", "e2e/**", "*.config.ts", "eslint.config.js"],
    languageOptions: { globals: globals.node },
  },
);
