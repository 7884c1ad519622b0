/**
 * Group commit for event logs: the batches every execution's log hands over while a
 * write is under way are stored together in the next one — one transaction, one fence
 * query, one multi-row insert of events and one of node rows for all of them — instead of
 * a transaction per execution. Under load that is most of the store's work per event.
 *
 * Each batch is still fenced by its own execution's lease and seq: a refused batch gets
 * its own error (as a lone append would), the others are stored. When the shared
 * transaction itself fails, each batch is retried alone, so one execution's trouble is
 * never another's.
 */
import type { TernError } from "@tern/core";
import type { AppendItem } from "../store/events.js";
import type { Store } from "../store/store.js";

/** How long a write waits for more batches (SQLite writes synchronously: nothing gathers during one). */
const WINDOW_MS = 1;
/** Batches per transaction at most. */
const MAX_ITEMS = 256;

interface Pending extends AppendItem {
  resolve(): void;
  reject(e: unknown): void;
}

export class EventWriter {
  private queue: Pending[] = [];
  private running = false;
  private scheduled = false;

  constructor(private readonly store: Store) {}

  /** Store one execution's batch (with its node rows); settles like `store.events.append`. */
  append(item: AppendItem): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...item, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // A short window: the batches of every execution that emits meanwhile land in the same write.
    setTimeout(() => {
      this.scheduled = false;
      void this.drain();
    }, WINDOW_MS);
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) await this.write(this.queue.splice(0, MAX_ITEMS));
    } finally {
      this.running = false;
    }
  }

  private async write(items: Pending[]): Promise<void> {
    let errors: (TernError | undefined)[];
    try {
      errors = await this.store.events.appendMany(items);
    } catch (e) {
      if (items.length === 1) return items[0].reject(e);
      // The shared transaction failed: each batch on its own, so each gets its own outcome.
      for (const it of items) {
        try {
          await this.store.events.append(it.execution, it.events, { owner: it.owner, nodes: it.nodes });
          it.resolve();
        } catch (err) {
          it.reject(err);
        }
      }
      return;
    }
    items.forEach((it, i) => {
      const err = errors[i];
      if (err) it.reject(err);
      else it.resolve();
    });
  }
}
