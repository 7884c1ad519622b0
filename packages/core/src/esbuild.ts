import { createRequire } from "node:module";

type Esbuild = typeof import("esbuild");
let loaded: Esbuild | undefined;

/**
 * esbuild, loaded on first use with `require`: importing its ESM entry makes Node
 * scan the large CommonJS file for exports (~35 ms of every `tern run`).
 */
export function esbuild(): Esbuild {
  loaded ??= createRequire(import.meta.url)("esbuild") as Esbuild;
  return loaded;
}
