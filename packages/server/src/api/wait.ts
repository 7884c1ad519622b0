/**
 * Answering a create request once its executions are over: `Prefer: wait=<seconds>`
 * (RFC 7240) on `POST …/executions` and `POST …/executions/batch`, so a client gets the
 * outcome in one request instead of a create and a watch stream.
 *
 * Waiting is cheap. Executions this replica drives end through the executor's end
 * listener: one listener for all waiting requests (registered while any waits), which
 * hands the in-memory final record to the requests waiting for that id; nothing is read
 * from the store. Executions driven elsewhere (another replica, or not claimed yet) are
 * read from the store every `watchPollMs`, once per execution however many requests
 * wait for it. A request stops waiting when its executions are over, when its wait runs
 * out, when its client goes away, or when the server closes; the last two leave nothing
 * behind (no listener, timer or map entry).
 */
import type { ExecutionRecord } from "../store/executions.js";
import type { ApiContext } from "./context.js";
import { TERMINAL_PHASES } from "./launch.js";

/** The longest wait a request may ask for, in seconds; a longer one is cut to it. */
export const MAX_WAIT_SECONDS = 60;

/** Store reads in flight at once when polling or refreshing records. */
const READS_AT_ONCE = 32;

/** The preferences of a `Prefer` header, split at commas outside quoted strings. */
function preferences(header: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const c = header[i];
    if (quoted && c === "\\") i++;
    else if (c === '"') quoted = !quoted;
    else if (c === "," && !quoted) {
      out.push(header.slice(start, i));
      start = i + 1;
    }
  }
  out.push(header.slice(start));
  return out;
}

/**
 * The seconds `Prefer: wait=<n>` asks for, at most {@link MAX_WAIT_SECONDS}; 0 without the
 * preference, for `wait=0`, and for a value that is not a whole number of seconds (RFC 7240:
 * a preference the server does not understand is ignored, never an error). Only the first
 * `wait` counts, as the RFC says of repeated preferences.
 */
export function preferredWait(header: string | string[] | undefined): number {
  if (header === undefined) return 0;
  for (const value of Array.isArray(header) ? header : [header]) {
    for (const pref of preferences(value)) {
      const head = pref.split(";")[0];
      const eq = head.indexOf("=");
      if ((eq < 0 ? head : head.slice(0, eq)).trim().toLowerCase() !== "wait") continue;
      let v = eq < 0 ? "" : head.slice(eq + 1).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return /^\d+$/.test(v) ? Math.min(Number(v), MAX_WAIT_SECONDS) : 0;
    }
  }
  return 0;
}

/** One waiting request. */
interface Waiter {
  /** The latest record of each of its executions. */
  readonly records: Map<string, ExecutionRecord>;
  /** Its executions not over yet. */
  readonly pending: Set<string>;
  /** Called once the last pending execution is over. */
  over: () => void;
}

/** Every waiting request of one server. */
export class ExecutionWaits {
  private readonly byId = new Map<string, Set<Waiter>>();
  private offEnd?: () => void;
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(private readonly ctx: ApiContext) {}

  /**
   * The records of `recs` once every one is over, or once `ms` ran out, the client went
   * away (`signal`) or the server closes, whichever comes first: in the same order, each
   * as it is then (read again from the store for those still running when the wait ran
   * out or the server closes).
   */
  async wait(recs: readonly ExecutionRecord[], ms: number, signal?: AbortSignal): Promise<ExecutionRecord[]> {
    const w: Waiter = {
      records: new Map(recs.map((r) => [r.id, r])),
      pending: new Set(recs.filter((r) => !TERMINAL_PHASES.has(r.phase)).map((r) => r.id)),
      over: () => undefined,
    };
    if (w.pending.size && ms > 0 && !signal?.aborted) {
      const why = await new Promise<"over" | "timeout" | "closing" | "gone">((resolve) => {
        let settled = false;
        const settle = (how: "over" | "timeout" | "closing" | "gone") => {
          if (settled) return;
          settled = true;
          clearTimeout(deadline);
          signal?.removeEventListener("abort", gone);
          this.ctx.streams.delete(closing);
          this.remove(w);
          resolve(how);
        };
        const deadline = setTimeout(() => settle("timeout"), ms);
        const gone = () => settle("gone");
        const closing = () => settle("closing");
        w.over = () => settle("over");
        signal?.addEventListener("abort", gone, { once: true });
        this.ctx.streams.add(closing);
        this.add(w);
      });
      if ((why === "timeout" || why === "closing") && w.pending.size) {
        for (const rec of await this.read([...w.pending])) w.records.set(rec.id, rec);
      }
    }
    return recs.map((r) => w.records.get(r.id) ?? r);
  }

  private add(w: Waiter): void {
    for (const id of w.pending) {
      let set = this.byId.get(id);
      if (!set) this.byId.set(id, (set = new Set()));
      set.add(w);
    }
    this.offEnd ??= this.ctx.executor.onExecutionEnd((rec) => this.deliver(rec));
    this.schedule();
  }

  private remove(w: Waiter): void {
    for (const id of w.records.keys()) this.forget(id, w);
    if (this.byId.size) return;
    this.offEnd?.();
    this.offEnd = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private forget(id: string, w: Waiter): void {
    const set = this.byId.get(id);
    if (!set) return;
    set.delete(w);
    if (set.size === 0) this.byId.delete(id);
  }

  /** A newer record of an execution: kept by its waiters; a terminal one ends their wait for it. */
  private deliver(rec: ExecutionRecord): void {
    const set = this.byId.get(rec.id);
    if (!set) return;
    const terminal = TERMINAL_PHASES.has(rec.phase);
    for (const w of [...set]) {
      if (!w.pending.has(rec.id)) continue;
      w.records.set(rec.id, rec);
      if (!terminal) continue;
      w.pending.delete(rec.id);
      this.forget(rec.id, w);
      if (w.pending.size === 0) w.over();
    }
  }

  /** Poll the store every `watchPollMs` while requests wait, one round at a time. */
  private schedule(): void {
    if (this.timer || this.polling || this.byId.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.polling = true;
      void this.poll().finally(() => {
        this.polling = false;
        this.schedule();
      });
    }, this.ctx.watchPollMs);
  }

  /**
   * Read the executions this replica does not drive: their end reaches no listener here.
   * One driven here is left to the end listener (if its run stops without ending, it is
   * not driven any more and the next round reads it).
   */
  private async poll(): Promise<void> {
    const ids = [...this.byId.keys()].filter((id) => !this.ctx.executor.drives(id));
    for (const rec of await this.read(ids)) this.deliver(rec);
  }

  /** The stored records of `ids` (without spec); those that cannot be read now are left out. */
  private async read(ids: string[]): Promise<ExecutionRecord[]> {
    const out: ExecutionRecord[] = [];
    for (let i = 0; i < ids.length; i += READS_AT_ONCE) {
      await Promise.all(
        ids.slice(i, i + READS_AT_ONCE).map(async (id) => {
          try {
            const rec = await this.ctx.store.executions.get(id, { spec: false });
            if (rec) out.push(rec);
          } catch {
            // The store hiccuped: the record known so far stands (polling tries again).
          }
        }),
      );
    }
    return out;
  }
}
