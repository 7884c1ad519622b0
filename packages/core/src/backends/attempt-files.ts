/**
 * The files that make a `process` backend attempt outlive the engine that launched it.
 * They live in the (local) blob store under the attempt's `outputPrefix`
 * (`executions/<p>/<d>/<execution>/<node>/<attempt>/`):
 *
 * - `worker`: a symlink whose target is `<pid>:<start>`, made by the worker before it
 *   runs the attempt: "this attempt runs in that process". One syscall, and readable
 *   without opening a file.
 * - `outputs.json` or `error.json`: the attempt's result, written by the worker *before*
 *   it replies to the engine. A small result is one `write` (a kill cannot split it; a
 *   reader that comes between `open` and `write` sees an empty file, which does not
 *   parse and so does not count); a large one goes through a temp file and a rename.
 *
 * A restarted engine launches an attempt that was in flight again under the same
 * attempt id; the backend then finds the result (and completes from it without
 * running anything), or the mark of a worker that still runs it (and waits for its
 * result), or the mark of a worker that is gone without a result (the attempt was
 * lost: a system error, retried).
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

/** Name of the worker's mark in an attempt's directory. */
export const WORKER_MARK = "worker";
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

/** Results up to this size (in UTF-16 units) are written with one `write`, without a rename. */
const DIRECT_WRITE_LIMIT = 32 * 1024;

/**
 * Write a result so that readers see all of it or something that does not parse.
 * Synchronous: a worker runs one attempt at a time, and this is on its reply path.
 */
export function writeResultFile(file: string, text: string): void {
  if (text.length <= DIRECT_WRITE_LIMIT) {
    fs.writeFileSync(file, text);
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** Mark `dir` (an attempt's directory, created here) as run by this process. */
export function markAttempt(dir: string, self: ProcessIdentity): void {
  fs.mkdirSync(dir, { recursive: true });
  const target = `${self.pid}:${self.start ?? ""}`;
  const mark = path.join(dir, WORKER_MARK);
  try {
    fs.symlinkSync(target, mark);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    // The same attempt again on another worker (a recycled attempt): the mark moves.
    fs.rmSync(mark, { force: true });
    fs.symlinkSync(target, mark);
  }
}

/** What an attempt's directory says about it. */
export type AttemptRecord =
  | { kind: "succeeded"; outputs: Json }
  | { kind: "failed"; error: ErrorDocument }
  | { kind: "marked"; worker: ProcessIdentity }
  | { kind: "none" };

/**
 * Read an attempt's directory: its result if one was written, else the mark of the
 * worker that took it, else nothing. Cheap when the directory does not exist (one
 * `stat`), which is the case for every attempt that never ran.
 */
export function readAttempt(dir: string): AttemptRecord {
  if (!fs.existsSync(dir)) return { kind: "none" };
  const result = readResult(dir);
  if (result) return result;
  let target: string;
  try {
    target = fs.readlinkSync(path.join(dir, WORKER_MARK));
  } catch {
    return { kind: "none" };
  }
  const [pid, start] = target.split(":");
  return { kind: "marked", worker: { pid: Number(pid), ...(start ? { start: Number(start) } : {}) } };
}

/**
 * The complete result written in an attempt's directory, if any. A file that does not
 * parse is one being written (or cut short by a crash): it does not count.
 */
export function readResult(
  dir: string,
): Exclude<AttemptRecord, { kind: "marked" } | { kind: "none" }> | undefined {
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
