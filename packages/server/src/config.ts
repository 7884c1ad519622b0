/**
 * `tern.config.ts`: the server's optional configuration file, loaded like user
 * code (bundled by esbuild, imported from `.tern/bundles`), so it can import
 * plugin packages and compute values.
 *
 * @example
 * // tern.config.ts
 * import k8s from "@tern/plugin-k8s";
 * export default {
 *   plugins: [k8s({ namespace: "tern" })],
 *   backendConfig: { defaultForTaskTypes: { pod: "k8s" } },
 *   tokens: [{ name: "ci", tokenSha256: "…", grants: [{ project: "*", domain: "development", role: "runner" }] }],
 *   projects: ["analytics", { name: "ml", description: "models" }],
 * };
 */
import * as path from "node:path";
import {
  type BackendConfig,
  bundleEntry,
  ErrorCodes,
  importBundle,
  TernError,
  type TernPlugin,
} from "@tern/core";
import { parseTokens, type TokenSpec } from "./auth/tokens.js";

/** What `tern.config.ts` may export (as its default export). */
export interface ServerConfig {
  /** Backend plugins (what their factories return). */
  plugins?: TernPlugin[];
  /** Which plugins run which task types. */
  backendConfig?: BackendConfig;
  /** Backend for TypeScript tasks: "process" (default) or "inline". */
  backend?: string;
  /** Worker processes of the process backend. */
  workers?: number;
  /** API tokens and their grants (see `TokenSpec`); none means the loopback-only open sandbox. */
  tokens?: TokenSpec[];
  /** Projects created at start-up (besides "default"). */
  projects?: (string | { name: string; description?: string })[];
}

function bad(file: string, message: string, hint?: string): TernError {
  return new TernError(ErrorCodes.CONFIG, `${file}: ${message}`, hint ? { hint } : {});
}

/** Check a config object's shape (tokens are hashed here). */
export function checkServerConfig(value: unknown, file = "server config"): ServerConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad(
      file,
      "the default export must be an object",
      "export default { plugins: [...], tokens: [...] }",
    );
  }
  const c = value as Record<string, unknown>;
  const known = new Set(["plugins", "backendConfig", "backend", "workers", "tokens", "projects"]);
  const unknown = Object.keys(c).filter((k) => !known.has(k));
  if (unknown.length)
    throw bad(
      file,
      `unknown setting${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}`,
      `settings are: ${[...known].join(", ")}`,
    );
  if (c.plugins !== undefined && !Array.isArray(c.plugins)) throw bad(file, "plugins must be a list");
  if (c.backend !== undefined && typeof c.backend !== "string") throw bad(file, "backend must be a string");
  if (c.workers !== undefined && (!Number.isInteger(c.workers) || (c.workers as number) < 1))
    throw bad(file, "workers must be a whole number ≥ 1");
  if (c.projects !== undefined) {
    if (!Array.isArray(c.projects))
      throw bad(file, "projects must be a list of names or { name, description }");
    for (const p of c.projects) {
      const name = typeof p === "string" ? p : (p as { name?: unknown } | null)?.name;
      if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]{0,199}$/.test(name))
        throw bad(file, `invalid project name ${JSON.stringify(name)}`);
    }
  }
  return {
    ...(c as ServerConfig),
    ...(c.tokens !== undefined ? { tokens: parseTokens(c.tokens, `${file} (tokens)`) } : {}),
  };
}

/** Bundle, import and check a `tern.config.ts` (or `.js`). */
export async function loadServerConfig(file: string): Promise<ServerConfig> {
  const abs = path.resolve(file);
  const bundle = await bundleEntry(abs);
  const mod = await importBundle(bundle.path);
  const value = mod.default ?? mod.config;
  if (value === undefined) throw bad(file, "has no default export", "export default { plugins: [...] }");
  return checkServerConfig(value, file);
}
