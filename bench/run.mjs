#!/usr/bin/env node
/**
 * Run the benchmarks one after another (never in parallel: they measure a 2-core
 * machine) and leave their results in bench/results/*.json.
 *
 *   pnpm bench                 every benchmark
 *   pnpm bench b1 b4           only these (by prefix)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const scripts = fs
  .readdirSync(here)
  .filter((f) => /^b\d+-.*\.mjs$/.test(f))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort((a, b) => Number(a.match(/^b(\d+)/)[1]) - Number(b.match(/^b(\d+)/)[1]));
if (scripts.length === 0) {
  console.error(
    `no benchmark matches ${wanted.join(", ")}; have: ${fs
      .readdirSync(here)
      .filter((f) => /^b\d+-/.test(f))
      .join(", ")}`,
  );
  process.exit(2);
}
let failed = 0;
for (const s of scripts) {
  console.log(`\n── ${s}`);
  const r = spawnSync(process.execPath, [path.join(here, s)], {
    stdio: "inherit",
    cwd: path.resolve(here, ".."),
  });
  if (r.status !== 0) {
    failed++;
    console.error(`${s} exited with ${r.status ?? r.signal}`);
  }
}
console.log(`\n${scripts.length - failed} benchmarks ran, ${failed} failed; results in bench/results/`);
process.exit(failed ? 1 : 0);
