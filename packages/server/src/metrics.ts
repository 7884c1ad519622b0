/**
 * Prometheus metrics of the control plane, served at `/metrics`:
 *
 * - `tern_executions` (gauge, by `phase`): executions in the store, counted on scrape;
 * - `tern_queue_depth` (gauge): queued executions no replica has started yet;
 * - `tern_executions_finished_total` (counter, by `phase`): terminal events this replica wrote;
 * - `tern_node_duration_seconds` (histogram, by `phase`, `plugin`): from a node's
 *   `running` event to its terminal event (cache hits and recovered nodes, which
 *   never run, are left out);
 * - `tern_plugin_errors_total` (counter, by `plugin`, `code`): system errors of node
 *   attempts (the platform failed, not the user's code);
 * - `tern_http_request_duration_seconds` (histogram, by `method`, `route`, `status`);
 * - the process's own metrics (`tern_process_*`, `tern_nodejs_*`).
 *
 * Node and execution events are observed as the executor appends them to the
 * store, so every execution this replica runs is counted whoever launched it.
 */
import type { ExecutionEvent } from "@tern/core";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { EventInput } from "./store/events.js";
import type { Store } from "./store/store.js";

const EXECUTION_PHASES = ["queued", "running", "aborting", "succeeded", "failed", "aborted"];
const TERMINAL = new Set(["succeeded", "failed", "aborted"]);
const NODE_TERMINAL = new Set(["succeeded", "failed", "aborted", "skipped"]);
/** Executions followed at once; beyond this the oldest are forgotten (a crash can leave some unfinished). */
const MAX_TRACKED_EXECUTIONS = 50_000;

export interface MetricsOptions {
  /** Where the execution gauges are counted from. */
  store?: Store;
  /** Include the process's CPU, memory and event-loop metrics. @default true */
  processMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<"method" | "route" | "status">;
  readonly nodeDuration: Histogram<"phase" | "plugin">;
  readonly pluginErrors: Counter<"plugin" | "code">;
  readonly executionsFinished: Counter<"phase">;
  /** Nodes seen running, per execution: when they started running and on which plugin. */
  private readonly tracked = new Map<string, Map<string, { runningAt?: number; plugin?: string }>>();

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const store = opts.store;
    this.httpDuration = new Histogram({
      name: "tern_http_request_duration_seconds",
      help: "Time to answer API requests, by method, route pattern and status.",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.nodeDuration = new Histogram({
      name: "tern_node_duration_seconds",
      help: "Node latency from its running event to its terminal event, by terminal phase and plugin.",
      labelNames: ["phase", "plugin"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600],
      registers,
    });
    this.pluginErrors = new Counter({
      name: "tern_plugin_errors_total",
      help: "System errors of node attempts (the plugin or the infrastructure failed), by plugin and error code.",
      labelNames: ["plugin", "code"],
      registers,
    });
    this.executionsFinished = new Counter({
      name: "tern_executions_finished_total",
      help: "Executions this replica ran to a terminal phase, by phase.",
      labelNames: ["phase"],
      registers,
    });
    new Gauge({
      name: "tern_executions",
      help: "Executions in the store, by phase (counted on scrape).",
      labelNames: ["phase"],
      registers,
      async collect() {
        if (!store) return;
        const counts = await store.executions.countByPhase();
        this.reset();
        for (const phase of new Set([...EXECUTION_PHASES, ...Object.keys(counts)]))
          this.set({ phase }, counts[phase] ?? 0);
      },
    });
    new Gauge({
      name: "tern_queue_depth",
      help: "Queued executions no replica has started yet.",
      registers,
      async collect() {
        if (!store) return;
        const counts = await store.executions.countByPhase();
        this.set(counts.queued ?? 0);
      },
    });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "tern_" });
  }

  /** Fold events of one execution in (they arrive in seq order). */
  observeEvents(execution: string, events: readonly (EventInput | ExecutionEvent)[]): void {
    for (const e of events) {
      if (e.node === undefined) {
        if (TERMINAL.has(e.phase)) {
          this.executionsFinished.inc({ phase: e.phase });
          this.tracked.delete(execution);
        }
        continue;
      }
      let nodes = this.tracked.get(execution);
      if (!nodes) {
        nodes = new Map();
        this.tracked.set(execution, nodes);
        if (this.tracked.size > MAX_TRACKED_EXECUTIONS)
          this.tracked.delete(this.tracked.keys().next().value as string);
      }
      let n = nodes.get(e.node);
      if (!n) {
        n = {};
        nodes.set(e.node, n);
      }
      if (e.plugin) n.plugin = e.plugin;
      const plugin = n.plugin ?? "none";
      if (e.phase === "running") n.runningAt = e.at;
      else if ((e.phase === "failed" || e.phase === "retrying") && e.error?.kind === "system") {
        this.pluginErrors.inc({ plugin, code: e.error.code });
      }
      if (NODE_TERMINAL.has(e.phase) || e.phase === "retrying") {
        if (n.runningAt !== undefined && !e.cached && !e.recovered) {
          this.nodeDuration.observe({ phase: e.phase, plugin }, Math.max(0, e.at - n.runningAt) / 1000);
        }
        n.runningAt = undefined;
        if (NODE_TERMINAL.has(e.phase)) nodes.delete(e.node);
      }
    }
  }

  /**
   * Observe every event the executor appends to `store` (wraps its event
   * repository's `append` and `writeGroup`; the write itself is unchanged and comes first).
   */
  instrument(store: Store): void {
    const events = store.events;
    const append = events.append.bind(events);
    // Every argument is passed on unchanged (the owner fence included): only what is stored is observed.
    events.append = async (...args: Parameters<typeof append>) => {
      await append(...args);
      try {
        this.observeEvents(args[0], args[1]);
      } catch {
        // metrics never fail a write
      }
    };
    // The group commit (the executor's writes, and appendMany through it).
    const writeGroup = events.writeGroup.bind(events);
    events.writeGroup = async (...args: Parameters<typeof writeGroup>) => {
      const outcome = await writeGroup(...args);
      try {
        args[0].appends?.forEach((it, i) => {
          if (!outcome.appended[i]) this.observeEvents(it.execution, it.events);
        });
      } catch {
        // metrics never fail a write
      }
      return outcome;
    };
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
