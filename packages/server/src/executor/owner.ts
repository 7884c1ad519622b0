/**
 * Replica identities. The default owner name of an executor says where it runs:
 * `replica-<random>@<hostname>#<pid>.<start>` (start: the process's start time in
 * clock ticks since boot, on Linux). A replica on the same host can then tell that
 * the owner of some executions is a process that no longer exists (killed, crashed)
 * and take them over at once, instead of waiting for their leases to expire: that is
 * what makes a `kill -9` of `tern serve` followed by a restart resume in well under a
 * second.
 *
 * Assumption: replicas that share a hostname share a PID namespace (one machine, or
 * one container). Replicas with other names (`owner` given) rely on lease expiry only.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";

export interface OwnerIdentity {
  host: string;
  pid: number;
  /** Process start time (clock ticks since boot); absent off Linux. */
  start?: number;
}

const PATTERN = /^[^@#]*@([^#]+)#(\d+)\.(\d*)$/;

function startTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const n = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh owner name for this process. */
export function defaultOwner(): string {
  return `replica-${randomBytes(4).toString("hex")}@${os.hostname()}#${process.pid}.${startTicks(process.pid) ?? ""}`;
}

/** The identity in an owner name made by {@link defaultOwner}, else undefined. */
export function parseOwner(owner: string): OwnerIdentity | undefined {
  const m = PATTERN.exec(owner);
  if (!m) return undefined;
  return { host: m[1], pid: Number(m[2]), ...(m[3] ? { start: Number(m[3]) } : {}) };
}

/**
 * True only when `owner` names a process on this host that is gone (no such pid, a
 * zombie, or a pid reused by a process that started at another time). Unknown or
 * remote owners are never "dead" here: their leases expire instead.
 */
export function isDeadLocalOwner(owner: string): boolean {
  const id = parseOwner(owner);
  if (!id || id.host !== os.hostname() || id.pid === process.pid) return false;
  try {
    process.kill(id.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${id.pid}/stat`, "utf8");
  } catch {
    return false; // alive by kill(0), and no /proc to say more
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return true;
  return id.start !== undefined && Number(fields[19]) !== id.start;
}
