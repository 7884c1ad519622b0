/**
 * Group commit for the executor's writes: the new executions and the event batches every
 * execution's log hands over while a write is under way are stored together in the next
 * one — one transaction, one fence query, one multi-row insert of executions, of events
 * and of node rows — instead of a transaction each. Under load that is most of the
 * store's work per execution.
 *
 * Each batch is still fenced by its own execution's lease and seq, and each new execution
 * gets its own outcome: a refused item gets its own error (as a lone write would), the
 * others are stored. When the shared transaction itself fails, each item is retried alone,
 * so one execution's trouble is never another's.
 */
import type { TernError } from "@tern/core";
import type { AppendItem } from "../store/events.js";
import type { ExecutionRecord, NewExecution } from "../store/executions.js";
import type { Store } from "../store/store.js";

/**
 * How long a write waits for more items. SQLite writes synchronously, so nothing gathers
 * during a write; a commit costs about as much as the rest of a small transaction, so the
 * more items share one, the less each costs. The window follows the load: half a
 * millisecond per item the last write carried, within these bounds — a lone item waits
 * the minimum, and under load (thousands of items a second) writes settle at the maximum.
 */
const WINDOW_MIN_MS = 1;
const WINDOW_MAX_MS = 8;
/** Items per transaction at most. */
const MAX_ITEMS = 512;

type Pending =
  | { kind: "append"; item: AppendItem; resolve(): void; reject(e: unknown): void }
  | { kind: "create"; item: NewExecution; resolve(r: ExecutionRecord): void; reject(e: unknown): void };

export class EventWriter {
  private queue: Pending[] = [];
  private running = false;
  private scheduled = false;
  private lastItems = 0;

  constructor(private readonly store: Store) {}

  /** Store one execution's batch (with its node rows); settles like `store.events.append`. */
  append(item: AppendItem): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: "append", item, resolve, reject }));
  }

  /** Store a new execution; settles like `store.executions.create`. */
  create(item: NewExecution): Promise<ExecutionRecord> {
    return new Promise((resolve, reject) => this.enqueue({ kind: "create", item, resolve, reject }));
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // A short window: the items of every execution that writes meanwhile land in the same transaction.
    const window = Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, this.lastItems / 2));
    setTimeout(() => {
      this.scheduled = false;
      void this.drain();
    }, window);
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        const items = this.queue.splice(0, MAX_ITEMS);
        this.lastItems = items.length;
        await this.write(items);
      }
    } finally {
      this.running = false;
    }
  }

  private async write(items: Pending[]): Promise<void> {
    const creates = items.filter((p) => p.kind === "create");
    const appends = items.filter((p) => p.kind === "append");
    let created: (ExecutionRecord | TernError)[];
    let appended: (TernError | undefined)[];
    try {
      ({ created, appended } = await this.store.events.writeGroup({
        creates: creates.map((p) => p.item),
        appends: appends.map((p) => p.item),
      }));
    } catch (e) {
      if (items.length === 1) return items[0].reject(e);
      // The shared transaction failed: each item on its own, so each gets its own outcome.
      for (const p of items) await this.alone(p);
      return;
    }
    creates.forEach((p, i) => {
      const r = created[i];
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
    });
    appends.forEach((p, i) => {
      const err = appended[i];
      if (err) p.reject(err);
      else p.resolve();
    });
  }

  private async alone(p: Pending): Promise<void> {
    try {
      if (p.kind === "create") p.resolve(await this.store.executions.create(p.item));
      else {
        const { execution, events, ...opts } = p.item;
        await this.store.events.append(execution, events, opts);
        p.resolve();
      }
    } catch (err) {
      p.reject(err);
    }
  }
}
