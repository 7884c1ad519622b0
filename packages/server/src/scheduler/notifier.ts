/**
 * Launch plan notifications: when an execution launched from a plan ends in one of
 * the phases a notification names, its webhook gets a POST with a JSON body
 *
 *   { execution, project, domain, launchPlan: { name, version }, phase, error?, outputs? }
 *
 * and the headers `content-type: application/json`, `user-agent: tern` and
 * `x-tern-delivery` (the same on every retry of one delivery, so a receiver can drop
 * duplicates). A delivery is retried a few times with exponential backoff on network
 * errors, timeouts, 429 and 5xx; other 4xx answers are final. Deliveries run in the
 * background: the executor never waits for a webhook.
 *
 * Delivery is at least once. Every execution launched from a plan has a row in the store's
 * notification outbox from the moment it is created; the notifier of the replica where it
 * ends claims that row (with a lease), delivers, and marks it done. Every notifier also
 * sweeps the outbox for ended executions whose row is still pending — their replica died
 * before delivering, or while delivering and its lease ran out — and delivers those. A
 * receiver may see a delivery twice (a replica died after the webhook answered and before
 * the row was marked): `x-tern-delivery` is the same both times.
 */
import { randomUUID } from "node:crypto";
import type { Json, LaunchPlanSpec, Notification } from "@tern/core";
import type { ExecutorLogger } from "../executor/logger.js";
import { silentLogger } from "../executor/logger.js";
import type { ExecutionRecord } from "../store/executions.js";
import type { Store } from "../store/store.js";

/** The JSON body a webhook receives. */
export interface NotificationBody {
  execution: string;
  project: string;
  domain: string;
  launchPlan: { name: string; version: string };
  phase: string;
  error?: unknown;
  outputs?: Json;
}

export interface NotifierOptions {
  store: Store;
  /** Where execution ends come from (an {@link Executor}). */
  source: { onExecutionEnd(listener: (rec: ExecutionRecord) => void): () => void };
  /** Attempts per delivery. @default 4 */
  attempts?: number;
  /** First retry delay; doubled each time, with ±20 % jitter. @default 500 */
  backoffMs?: number;
  /** Timeout of one POST. @default 10000 */
  timeoutMs?: number;
  /** The HTTP client (tests and proxies). @default globalThis.fetch */
  fetch?: typeof fetch;
  logger?: ExecutorLogger;
  /** This notifier's name in the outbox. @default a fresh id */
  owner?: string;
  /** How long a claimed delivery stays this notifier's. @default 120000 (longer than every retry of a delivery) */
  leaseTtlMs?: number;
  /** How often to look for deliveries other notifiers left undone; 0: never. @default 5000 */
  sweepIntervalMs?: number;
}

/** Deliveries one sweep takes on at most. */
const SWEEP_BATCH = 20;

export class Notifier {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly off: () => void;
  private closed = false;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly logger: ExecutorLogger;
  private readonly stop = new AbortController();
  private readonly owner: string;
  private readonly leaseTtlMs: number;
  private readonly sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;

  constructor(private readonly opts: NotifierOptions) {
    this.attempts = Math.max(1, opts.attempts ?? 4);
    this.backoffMs = opts.backoffMs ?? 500;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.logger = opts.logger ?? silentLogger;
    this.owner = opts.owner ?? `notifier-${randomUUID()}`;
    this.leaseTtlMs = opts.leaseTtlMs ?? 120_000;
    this.off = opts.source.onExecutionEnd((rec) => this.onEnd(rec));
    const every = opts.sweepIntervalMs ?? 5000;
    if (every > 0) {
      this.sweepTimer = setInterval(() => void this.sweep(), every);
      this.sweepTimer.unref();
    }
  }

  /**
   * Deliver what the outbox holds for ended executions nobody is delivering (their replica
   * died): claimed, delivered, marked done. Runs every `sweepIntervalMs`; callable directly.
   */
  sweep(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.sweeping ??= (async () => {
      try {
        const ids = await this.opts.store.notifications.claim(this.owner, this.leaseTtlMs, SWEEP_BATCH);
        for (const id of ids) {
          const rec = await this.opts.store.executions.get(id, { spec: false });
          if (rec) this.track(this.deliverAndMark(rec));
        }
      } catch (e) {
        this.logger.warn({ err: (e as Error).message }, "notifications: sweeping the outbox failed");
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Resolves when every delivery started so far is done (delivered or given up). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  /** Stop listening; deliveries in progress stop retrying. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.off();
    this.stop.abort();
    await this.idle();
  }

  private onEnd(rec: ExecutionRecord): void {
    if (this.closed || !rec.launchPlan) return;
    this.track(
      (async () => {
        // Ours to deliver unless another notifier's sweep got there first.
        const [claimed] = await this.opts.store.notifications.claim(this.owner, this.leaseTtlMs, 1, [rec.id]);
        if (claimed) await this.deliverAndMark(rec);
      })(),
      rec.id,
    );
  }

  private track(p: Promise<void>, execution?: string): void {
    const q = p.catch((e) => {
      this.logger.warn({ execution, err: (e as Error).message }, "notifications: could not send");
    });
    this.inFlight.add(q);
    void q.finally(() => this.inFlight.delete(q));
  }

  /** Deliver a claimed execution's notifications, then mark its outbox row done (unless closing mid-way). */
  private async deliverAndMark(rec: ExecutionRecord): Promise<void> {
    // Closing stops retries: what was not settled stays pending for the next notifier.
    if (await this.notify(rec)) await this.opts.store.notifications.done(rec.id, this.owner);
  }

  /**
   * Send the notifications of an ended execution that ask for its phase. True when each
   * was settled (delivered, or given up on), false when closing interrupted one.
   */
  async notify(rec: ExecutionRecord): Promise<boolean> {
    const lp = rec.launchPlan;
    if (!lp) return true;
    const plan = await this.opts.store.registry.get("launch_plan", {
      project: rec.project,
      domain: rec.domain,
      name: lp.name,
      version: lp.version,
    });
    const notifications = ((plan?.spec as unknown as LaunchPlanSpec | undefined)?.notifications ??
      []) as Notification[];
    const body: NotificationBody = {
      execution: rec.id,
      project: rec.project,
      domain: rec.domain,
      launchPlan: { name: lp.name, version: lp.version },
      phase: rec.phase,
      ...(rec.error ? { error: rec.error } : {}),
      ...(rec.phase === "succeeded" && rec.outputs !== undefined ? { outputs: rec.outputs } : {}),
    };
    const text = JSON.stringify(body);
    const settled = await Promise.all(
      notifications
        .map((n, i) => ({ n, i }))
        .filter(({ n }) => (n.phases as string[]).includes(rec.phase))
        .map(({ n, i }) => this.deliver(n.webhook, text, `${rec.id}:${rec.phase}:${i}`)),
    );
    return settled.every(Boolean);
  }

  /** POST one delivery, retrying; true once delivered or given up on, false when closing cut it short. */
  private async deliver(url: string, body: string, delivery: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      let retry = true;
      try {
        const res = await this.fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": "tern", "x-tern-delivery": delivery },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stop.signal]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.logger.debug({ url: redact(url), delivery, attempt }, "notifications: delivered");
          return true;
        }
        problem = `HTTP ${res.status}`;
        retry = res.status === 429 || res.status >= 500;
      } catch (e) {
        problem = (e as Error).message;
      }
      if (this.closed) return false;
      if (!retry || attempt >= this.attempts) {
        this.logger.warn(
          { url: redact(url), delivery, attempt, problem },
          "notifications: giving up on a webhook",
        );
        return true;
      }
      const delay = this.backoffMs * 2 ** (attempt - 1) * (0.8 + 0.4 * Math.random());
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        this.stop.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            r();
          },
          { once: true },
        );
      });
    }
  }
}

/** A webhook URL for logs: no credentials, no query (tokens often travel there). */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}
