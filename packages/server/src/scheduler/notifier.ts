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
 * Delivery is at most once per execution end on the replica where it ended: a replica
 * that dies before (or while) delivering does not hand the delivery over.
 */
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
}

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

  constructor(private readonly opts: NotifierOptions) {
    this.attempts = Math.max(1, opts.attempts ?? 4);
    this.backoffMs = opts.backoffMs ?? 500;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.logger = opts.logger ?? silentLogger;
    this.off = opts.source.onExecutionEnd((rec) => this.onEnd(rec));
  }

  /** Resolves when every delivery started so far is done (delivered or given up). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  /** Stop listening; deliveries in progress stop retrying. */
  async close(): Promise<void> {
    this.closed = true;
    this.off();
    this.stop.abort();
    await this.idle();
  }

  private onEnd(rec: ExecutionRecord): void {
    if (this.closed || !rec.launchPlan) return;
    const p = this.notify(rec).catch((e) => {
      this.logger.warn({ execution: rec.id, err: (e as Error).message }, "notifications: could not send");
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Send the notifications of an ended execution that ask for its phase. */
  async notify(rec: ExecutionRecord): Promise<void> {
    const lp = rec.launchPlan;
    if (!lp) return;
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
    await Promise.all(
      notifications
        .map((n, i) => ({ n, i }))
        .filter(({ n }) => (n.phases as string[]).includes(rec.phase))
        .map(({ n, i }) => this.deliver(n.webhook, text, `${rec.id}:${rec.phase}:${i}`)),
    );
  }

  private async deliver(url: string, body: string, delivery: string): Promise<void> {
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
          return;
        }
        problem = `HTTP ${res.status}`;
        retry = res.status === 429 || res.status >= 500;
      } catch (e) {
        problem = (e as Error).message;
      }
      if (!retry || attempt >= this.attempts || this.closed) {
        this.logger.warn(
          { url: redact(url), delivery, attempt, problem },
          "notifications: giving up on a webhook",
        );
        return;
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
