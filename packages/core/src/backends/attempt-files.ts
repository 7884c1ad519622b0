/**
 * An attempt's files under its `outputPrefix` in the (local) blob store
 * (`executions/<p>/<d>/<execution>/<node>/<attempt>/`): `outputs.json` or `error.json`,
 * its result. Large outputs are written there by the worker before it replies; every
 * other result reaches them when the worker's journal is settled (see
 * `attempt-journal.ts`). Also: telling a worker process apart from a later process that
 * got the same pid.
 *
 * Used by the parent (`process.ts`) and the worker (`bin/tern-execute.ts`); node:fs only.
 * @internal
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { ErrorDocument } from "../errors.js";
import type { Json } from "../json.js";
import { tmpPath } from "../tmp-path.js";

export const OUTPUTS_FILE = "outputs.json";
export const ERROR_FILE = "error.json";

/** A process, told apart from a later one that reuses its pid by its start time. */
export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (`/proc/<pid>/stat` field 22); absent off Linux. */
  start?: number;
}

const HAS_PROC = (() => {
  try {
    return fs.existsSync("/proc/self/stat");
  } catch {
    return false;
  }
})();

/** Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses). */
function procStat(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** A process's start time (clock ticks since boot), or undefined when unknown. */
export function processStartTime(pid: number): number | undefined {
  if (!HAS_PROC) return undefined;
  const f = procStat(pid);
  const start = f ? Number(f[19]) : Number.NaN;
  return Number.isFinite(start) ? start : undefined;
}

/**
 * Whether the worker process `id` still runs. On Linux a zombie counts as gone, a
 * different start time means the pid was reused, and the command line must be a Tern
 * worker's (`tern-worker` / `tern-execute`), so an unrelated process that got the pid
 * is not taken for one. Elsewhere, `kill(pid, 0)`.
 */
export function isWorkerAlive(id: ProcessIdentity): boolean {
  if (!Number.isInteger(id.pid) || id.pid <= 0) return false;
  if (!HAS_PROC) {
    try {
      process.kill(id.pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM";
    }
  }
  const f = procStat(id.pid);
  if (!f) return false;
  if (f[0] === "Z" || f[0] === "X" || f[0] === "x") return false;
  if (id.start !== undefined && Number(f[19]) !== id.start) return false;
  try {
    const cmd = fs.readFileSync(`/proc/${id.pid}/cmdline`, "utf8");
    return cmd.includes("tern-worker") || cmd.includes("tern-execute");
  } catch {
    return false;
  }
}

/** The local directory of a `file:` blob store root. */
export function blobRootDir(root: string): string {
  return fileURLToPath(root);
}

/** Write `text` to `file` (creating its directory) so that readers see all of it or nothing. */
export function writeResultFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tmpPath(file);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** The same, without blocking the caller's thread. */
export async function writeResultFileAsync(file: string, text: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = tmpPath(file);
  await fs.promises.writeFile(tmp, text);
  await fs.promises.rename(tmp, file);
}

/** A stored result of an attempt. */
export type StoredResult = { kind: "succeeded"; outputs: Json } | { kind: "failed"; error: ErrorDocument };

/**
 * The result under an attempt's directory (its outputPrefix), if any. Cheap when the
 * directory does not exist (one `stat`), which is the case for nearly every attempt.
 */
export function readResult(dir: string): StoredResult | undefined {
  if (!fs.existsSync(dir)) return undefined;
  const outputs = readJson(path.join(dir, OUTPUTS_FILE));
  if (outputs.ok) return { kind: "succeeded", outputs: outputs.value as Json };
  const error = readJson(path.join(dir, ERROR_FILE));
  if (error.ok && error.value && typeof error.value === "object")
    return { kind: "failed", error: error.value as ErrorDocument };
  return undefined;
}

function readJson(file: string): { ok: true; value: unknown } | { ok: false } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return { ok: false };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}
