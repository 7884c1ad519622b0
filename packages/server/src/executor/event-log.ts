/**
 * The writer of one execution's event log: events are appended in the order the
 * engine emits them, in batches, fenced by this replica's lease.
 *
 * - Never reordered: a batch leaves the queue only once the store has it; while an
 *   append fails, later events wait behind it.
 * - A failed append (the database is unreachable, a deadlock, a timeout) is retried
 *   with backoff, for as long as the lease may still be ours; the executor's lease
 *   loop decides when it is not, and detaches the execution.
 * - A refused append (`TERN_E_CONFLICT`: another replica holds the execution now, or
 *   wrote the seq first) means the execution is someone else's: the log stops and
 *   reports it lost, and the executor detaches it. Nothing is lost either way: the
 *   replica that holds the execution resumes it from what is stored.
 *
 * Each batch is appended together with the node rows it changes (the projection), in
 * one transaction.
 */
import { ErrorCodes, type ExecutionEvent, TernError } from "@tern/core";
import type { ExecutionPatch } from "../store/executions.js";
import type { Store } from "../store/store.js";
import type { ExecutorLogger } from "./logger.js";
import { NodeProjection } from "./projection.js";
import type { EventWriter } from "./writer.js";

/** Events per append (one transaction). */
const MAX_BATCH = 2000;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

export interface EventLogOptions {
  store: Store;
  execution: string;
  /** This replica: appends are fenced by its lease. */
  owner: string;
  logger: ExecutorLogger;
  /** The log was refused by the store: the execution belongs to another replica. */
  onLost: (error: TernError) => void;
  /** Group commit shared by the executor's logs; without it each batch is its own transaction. */
  writer?: EventWriter;
  /** A batch is stored (called once per batch, in order). */
  onStored?: (events: readonly ExecutionEvent[]) => void;
}

export class EventLog {
  readonly projection: NodeProjection;
  private queue: ExecutionEvent[] = [];
  private running?: Promise<void>;
  private stopped = false;
  private lostError?: TernError;
  private drainWaiters: (() => void)[] = [];
  /** The execution's end, to record with the last batch. */
  private ending?: { patch: ExecutionPatch; resolve(stored: boolean): void };
  private retryTimer?: { timer: NodeJS.Timeout; wake: () => void };

  constructor(private readonly opts: EventLogOptions) {
    this.projection = new NodeProjection(opts.execution);
  }

  /** Why the store refused this log, once it did. */
  get lost(): TernError | undefined {
    return this.lostError;
  }

  /** Events queued and not yet stored. */
  get pending(): number {
    return this.queue.length;
  }

  /** The events queued and not yet stored, in order. */
  queued(): readonly ExecutionEvent[] {
    return this.queue.slice();
  }

  /** Queue an event; it is appended after every event queued before it. */
  push(e: ExecutionEvent): void {
    if (this.stopped) return;
    this.queue.push(e);
    this.running ??= this.flushSoon();
  }

  /**
   * Write the node projection's changed rows soon, even without new events (the rows a
   * resumed execution marks for rewriting). Goes through the same serialized flush as
   * appends, so rows are never written out of order.
   */
  writeProjectionSoon(): void {
    if (this.stopped) return;
    this.running ??= this.flushSoon();
  }

  /** Resolves once everything queued so far is stored (or the log stopped). */
  drain(): Promise<void> {
    if (this.queue.length === 0 && !this.running) return Promise.resolve();
    if (this.stopped) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /**
   * Store everything queued, and with the last batch (in its transaction) record the
   * execution's end on its record, giving the lease up. Resolves true once stored, false
   * when the log stopped first (the execution is no longer ours).
   */
  end(patch: ExecutionPatch): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.ending = { patch, resolve };
      this.running ??= this.flushSoon();
    });
  }

  /** Stop writing: what is still queued is dropped (another replica rebuilds it). */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.ending?.resolve(false);
    this.ending = undefined;
    this.retryTimer?.wake();
    this.settleDrains();
  }

  private settleDrains(): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  private async flushSoon(): Promise<void> {
    // Let the engine's synchronous burst of events land in one batch.
    await new Promise((r) => setImmediate(r));
    try {
      await this.flush();
    } finally {
      this.running = undefined;
      // Events or the end that came while the last write (or the projection) was under way.
      if ((this.queue.length || this.ending) && !this.stopped) this.running = this.flushSoon();
      else this.settleDrains();
    }
  }

  private async flush(): Promise<void> {
    let failures = 0;
    while ((this.queue.length || this.ending) && !this.stopped) {
      const batch = this.queue.length <= MAX_BATCH ? this.queue.slice() : this.queue.slice(0, MAX_BATCH);
      // Folding a batch twice (after a failed append) counts nothing twice: the projection skips seen seqs.
      for (const e of batch) this.projection.apply(e);
      const nodes = this.projection.take();
      // The end goes with the batch that empties the queue.
      const ending = batch.length === this.queue.length ? this.ending : undefined;
      try {
        const { store, writer, execution, owner } = this.opts;
        const finish = ending ? { finish: ending.patch } : {};
        if (writer) await writer.append({ execution, events: batch, owner, nodes, ...finish });
        else await store.events.append(execution, batch, { owner, nodes, ...finish });
      } catch (e) {
        this.projection.restore(nodes);
        if (this.stopped) return;
        if (e instanceof TernError && (e.code === ErrorCodes.CONFLICT || e.code === ErrorCodes.NOT_FOUND)) {
          this.lostError = e;
          this.opts.logger.warn(
            { execution: this.opts.execution, err: e.message },
            "event log refused: the execution is no longer ours",
          );
          this.stop();
          this.opts.onLost(e);
          return;
        }
        failures++;
        const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failures - 1));
        this.opts.logger.warn(
          {
            execution: this.opts.execution,
            err: (e as Error).message,
            retryInMs: delay,
            pending: this.queue.length,
          },
          "appending events failed; retrying",
        );
        await this.sleep(delay);
        continue;
      }
      failures = 0;
      // The batch is stored: only now does it leave the queue (nothing else removes from the front).
      this.queue.splice(0, batch.length);
      try {
        this.opts.onStored?.(batch);
      } catch {
        // the listener's failure is its own
      }
      if (ending && this.ending === ending) {
        this.ending = undefined;
        ending.resolve(true);
      }
    }
    if (!this.stopped) await this.writeProjection();
  }

  /** Write the rows of nodes changed by stored events; a failure keeps them for the next batch. */
  private async writeProjection(): Promise<void> {
    const rows = this.projection.take();
    if (rows.length === 0) return;
    try {
      await this.opts.store.nodes.putMany(rows);
    } catch (e) {
      this.projection.restore(rows);
      this.opts.logger.warn(
        { execution: this.opts.execution, err: (e as Error).message },
        "writing the node projection failed; retrying with the next batch",
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.retryTimer = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.retryTimer = { timer, wake };
    });
  }
}
