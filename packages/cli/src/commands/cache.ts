/**
 * `tern cache list` and `tern cache clear`: the local task cache under
 * `<project root>/.tern/cache`, where the project root is the nearest folder
 * at or above the current directory holding a package.json.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { CatalogEntry, DiskCatalog } from "@tern/core";
import { EXIT_OK, UsageError } from "../errors.js";
import type { Io } from "../io.js";
import type { Core } from "../load.js";
import { colorEnabled, formatBytes, pad, palette, truncate } from "../render/format.js";

export interface CacheListOptions {
  task?: string;
  json: boolean;
}

export interface CacheClearOptions {
  all: boolean;
  json: boolean;
}

/** The cache directory for the current directory, and a catalog on it (none when it does not exist). */
async function openCatalog(): Promise<{ dir: string; catalog?: DiskCatalog }> {
  const core: Core = await import("@tern/core");
  const dir = path.join(core.findProjectRoot(process.cwd()), ".tern", "cache");
  // Listing or clearing must not create a cache where there is none.
  if (!fs.existsSync(dir)) return { dir };
  return { dir, catalog: new core.DiskCatalog(dir) };
}

/** Print the cache entries as a table (or `--json`). */
export async function cacheList(opts: CacheListOptions, io: Io): Promise<number> {
  const { dir, catalog } = await openCatalog();
  let entries: CatalogEntry[] = [];
  try {
    entries = catalog ? await catalog.list(opts.task ? { task: opts.task } : {}) : [];
  } finally {
    await catalog?.close();
  }
  entries.sort((a, b) => a.task.localeCompare(b.task) || a.createdAt - b.createdAt);
  const totalBytes = entries.reduce((s, e) => s + e.sizeBytes, 0);
  if (opts.json) {
    await io.json({
      cache: dir,
      totalBytes,
      entries: entries.map((e) => ({ ...e, createdAt: new Date(e.createdAt).toISOString() })),
    });
    return EXIT_OK;
  }
  const where = path.relative(process.cwd(), dir) || dir;
  if (entries.length === 0) {
    io.out(`no cache entries${opts.task ? ` for task "${opts.task}"` : ""} in ${where}\n`);
    return EXIT_OK;
  }
  const p = palette(colorEnabled(io.stdout));
  const rows = entries.map((e) => [
    e.task,
    truncate(e.cacheVersion, 20),
    formatTime(e.createdAt),
    formatBytes(e.sizeBytes),
    `${e.producer.execution}/${e.producer.node}`,
  ]);
  const head = ["TASK", "CACHE VERSION", "CREATED", "SIZE", "PRODUCER (EXECUTION/NODE)"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : pad(c, widths[i]))).join("  ");
  io.out(`${p.bold(line(head))}\n${rows.map(line).join("\n")}\n`);
  io.out(
    p.dim(
      `${entries.length} entr${entries.length === 1 ? "y" : "ies"}, ${formatBytes(totalBytes)} in ${where}\n`,
    ),
  );
  return EXIT_OK;
}

/** Remove one task's entries, or all of them with `--all`. */
export async function cacheClear(task: string | undefined, opts: CacheClearOptions, io: Io): Promise<number> {
  if (!task && !opts.all) {
    throw new UsageError(
      "say which task's cache entries to clear, or --all",
      "tern cache clear say_hello   or   tern cache clear --all",
    );
  }
  if (task && opts.all) throw new UsageError("give a task name or --all, not both");
  const { dir, catalog } = await openCatalog();
  let removed = 0;
  let cachedTasks: string[] = [];
  try {
    if (catalog) {
      removed = await catalog.evict(task ? { task } : {});
      if (removed === 0 && task) cachedTasks = [...new Set((await catalog.list()).map((e) => e.task))].sort();
    }
  } finally {
    await catalog?.close();
  }
  if (opts.json) {
    await io.json({ cache: dir, task: task ?? null, removed });
    return EXIT_OK;
  }
  const what = task ? ` of task "${task}"` : "";
  io.out(`removed ${removed} cache entr${removed === 1 ? "y" : "ies"}${what}\n`);
  if (removed === 0 && task && cachedTasks.length)
    io.err(`  hint: the cache holds entries of: ${cachedTasks.join(", ")}\n`);
  return EXIT_OK;
}

function formatTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}
