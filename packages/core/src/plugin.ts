/**
 * The backend plugin contract, modelled on Flyte's plugin machinery and made
 * restart-safe by construction: `launch` returns a small JSON state that the
 * engine persists; everything after that (`check`, `abort`, `finalize`, `logs`)
 * works from that state alone, so a restarted engine re-attaches to running work.
 *
 * The engine, not the plugin, does rate limiting, retries, backoff, timeouts,
 * caching, reading outputs and recording events.
 */
import type { DependencyContainer } from "tsyringe";
import type { BlobStore } from "./blob.js";
import { ErrorCodes, type ErrorDocument, TernError } from "./errors.js";
import type { Json } from "./json.js";
import type { TaskSpec } from "./spec.js";
import { createToken, resolveAll, type Token } from "./tokens.js";

/** The contract version this core implements. A plugin built for another major is refused. */
export const CONTRACT_VERSION = "1.0";

export type TaskPhase =
  | "queued"
  | "waiting-for-resources"
  | "initializing"
  | "running"
  | "succeeded"
  | "failed"
  | "aborted";

export interface LogLink {
  name: string;
  url: string;
}

export interface TaskStatus {
  phase: TaskPhase;
  message?: string;
  logLinks?: LogLink[];
  externalUrl?: string;
  /** Set when `phase` is `failed`: who is to blame decides which retry budget is spent. */
  error?: ErrorDocument;
  /** The work was preempted (interruptible capacity reclaimed): a system retry. */
  preempted?: boolean;
  /**
   * Outputs given directly, for backends that run in reach of the engine. Otherwise the
   * engine reads `outputs.json` (or `error.json`) under `ctx.outputPrefix`.
   */
  outputs?: Json;
}

export interface TaskLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Everything a plugin gets for one attempt of one node. */
export interface TaskContext {
  readonly execution: { readonly id: string; readonly project: string; readonly domain: string };
  readonly node: { readonly id: string };
  readonly attempt: {
    /** Unique per attempt and stable across engine restarts: use it to make `launch` idempotent. */
    readonly id: string;
    /** 1-based. */
    readonly number: number;
    readonly interruptible: boolean;
    /**
     * True when no attempt with this id can have been launched before: its execution
     * started fresh in this engine (not resumed from stored events). A plugin that looks
     * for earlier work of the attempt on `launch` (to adopt it after a restart) may skip
     * the look then. Absent or false: look.
     */
    readonly firstLaunch?: boolean;
  };
  readonly task: TaskSpec;
  /** The node's inputs as literals (by-reference values are URIs). */
  readonly inputs: Readonly<Record<string, Json>>;
  /** Write the inputs to `<outputPrefix>/inputs.json` and return its URI (for remote work). */
  inputsUri(): Promise<string>;
  /** Where the work writes `outputs.json` or `error.json`. */
  readonly outputPrefix: string;
  /** Where a task may keep a checkpoint shared by the node's attempts. */
  readonly checkpointPrefix: string;
  readonly blobs: BlobStore;
  readonly logger: TaskLogger;
  /** Project directory (where bundles and the local `.tern/` live). */
  readonly workDir: string;
  /** Fired when the engine aborts the attempt. */
  readonly signal: AbortSignal;
  /** Tell the engine the work changed state, so it calls `check` now instead of at the next poll. */
  notify(): void;
}

export interface BackendLimits {
  /** Attempts in flight at once through this plugin. */
  maxConcurrent?: number;
  launchesPerSecond?: number;
  checksPerSecond?: number;
}

export interface BackendPlugin<S extends Json = Json> {
  readonly id: string;
  /** Task types this plugin can run. */
  readonly taskTypes: readonly string[];
  /** Contract version the plugin was written against (`CONTRACT_VERSION` of its core). */
  readonly contractVersion?: string;
  /** Start the work. Must be idempotent on `ctx.attempt.id`. The returned state is persisted. */
  launch(ctx: TaskContext): Promise<S>;
  /** Observe the work. Cheap, no side effects. */
  check(ctx: TaskContext, state: S): Promise<TaskStatus>;
  /** Stop the work. Idempotent. */
  abort(ctx: TaskContext, state: S): Promise<void>;
  /** Release resources after a terminal phase. */
  finalize?(ctx: TaskContext, state: S): Promise<void>;
  logs?(ctx: TaskContext, state: S): AsyncIterable<string>;
  /** Check a task spec before anything runs (bad resources, unknown keys…); throw a TernError. */
  validate?(task: TaskSpec): void;
  readonly limits?: BackendLimits;
  /**
   * The engine's caller stored the outcomes of these attempts durably (by `ctx.attempt.id`,
   * see `attemptId`): whatever the plugin keeps so that a restarted engine could adopt
   * them (journals, result files) is no longer needed for them. Optional, advisory: a
   * plugin that never hears it keeps recovery data as before.
   */
  recorded?(attempts: readonly string[]): void;
  /** Release pooled resources when the engine closes. */
  close?(): Promise<void>;
}

/** Every backend plugin registers itself under this token (`container.register(BACKEND_PLUGIN, …)`). */
export const BACKEND_PLUGIN: Token<BackendPlugin<any>> = createToken("tern.backend-plugin");

/** Configuration of which plugin runs which task type. */
export interface BackendConfig {
  /** Plugin ids to use; all registered plugins when absent. */
  enabled?: string[];
  /** Task type → plugin id, for types more than one plugin can run (Flyte's default-for-task-types). */
  defaultForTaskTypes?: Record<string, string>;
}
export const BACKEND_CONFIG: Token<BackendConfig> = createToken("tern.backend-config");

/**
 * A plugin package's default export: a factory returning one of these. Importing a
 * plugin registers nothing; `register` is called by the engine or server with its
 * own child container.
 */
export interface TernPlugin {
  readonly $$type: "tern.plugin";
  readonly name: string;
  /** Contract version the plugin implements, e.g. "1.0". */
  readonly contractVersion: string;
  register(container: DependencyContainer): void | Promise<void>;
}

export function definePlugin(p: Omit<TernPlugin, "$$type">): TernPlugin {
  return { $$type: "tern.plugin", ...p };
}

export function checkContractVersion(name: string, version: string | undefined): void {
  if (version === undefined) return;
  const major = (v: string) => v.split(".")[0];
  if (major(version) !== major(CONTRACT_VERSION)) {
    throw new TernError(
      ErrorCodes.PLUGIN_VERSION,
      `plugin "${name}" implements backend contract ${version}, but this @tern/core implements ${CONTRACT_VERSION}`,
      {
        hint: `install a version of "${name}" built for @tern/core with contract ${major(CONTRACT_VERSION)}.x`,
      },
    );
  }
}

/**
 * Maps task types to plugins. Built once at start-up; an ambiguous mapping is an
 * error then, not at the first task.
 */
export class BackendRegistry {
  private readonly byType = new Map<string, BackendPlugin<any>>();
  readonly plugins: readonly BackendPlugin<any>[];

  constructor(plugins: BackendPlugin<any>[], config: BackendConfig = {}) {
    const seen = new Map<string, BackendPlugin<any>>();
    for (const p of plugins) {
      checkContractVersion(p.id, p.contractVersion);
      if (seen.has(p.id) && seen.get(p.id) !== p) {
        throw new TernError(ErrorCodes.PLUGIN_AMBIGUOUS, `two backend plugins share the id "${p.id}"`, {
          hint: "give each plugin instance its own id",
        });
      }
      seen.set(p.id, p);
    }
    if (config.enabled) {
      for (const id of config.enabled) {
        if (!seen.has(id)) {
          throw new TernError(ErrorCodes.PLUGIN_UNKNOWN, `enabled plugin "${id}" is not registered`, {
            hint: `registered plugins: ${[...seen.keys()].join(", ") || "(none)"}; add its package to plugins in tern.config.ts`,
          });
        }
      }
    }
    const active = [...seen.values()].filter((p) => !config.enabled || config.enabled.includes(p.id));
    this.plugins = active;
    const candidates = new Map<string, BackendPlugin<any>[]>();
    for (const p of active) {
      for (const t of p.taskTypes) candidates.set(t, [...(candidates.get(t) ?? []), p]);
    }
    const defaults = config.defaultForTaskTypes ?? {};
    for (const [type, id] of Object.entries(defaults)) {
      const p = seen.get(id);
      if (!p || !active.includes(p)) {
        throw new TernError(
          ErrorCodes.PLUGIN_UNKNOWN,
          `task type "${type}" is mapped to plugin "${id}", which is not loaded`,
          {
            hint: `loaded plugins: ${active.map((x) => x.id).join(", ") || "(none)"}`,
          },
        );
      }
      this.byType.set(type, p);
    }
    for (const [type, ps] of candidates) {
      if (this.byType.has(type)) continue;
      if (ps.length > 1) {
        throw new TernError(
          ErrorCodes.PLUGIN_AMBIGUOUS,
          `task type "${type}" can run on several plugins: ${ps.map((p) => p.id).join(", ")}`,
          { hint: `choose one in tern.config.ts: defaultForTaskTypes: { "${type}": "${ps[0].id}" }` },
        );
      }
      this.byType.set(type, ps[0]);
    }
  }

  static fromContainer(c: DependencyContainer, config?: BackendConfig): BackendRegistry {
    return new BackendRegistry(resolveAll(c, BACKEND_PLUGIN), config);
  }

  /** The plugin for a task type; a clear error when none can run it. */
  forType(type: string, taskName?: string): BackendPlugin<any> {
    const p = this.byType.get(type);
    if (!p) {
      const known = [...this.byType.keys()].sort().join(", ");
      throw new TernError(
        ErrorCodes.PLUGIN_UNKNOWN_TYPE,
        `no backend plugin runs task type "${type}"${taskName ? ` (task "${taskName}")` : ""}`,
        {
          hint: `known task types: ${known || "(none)"}; load the plugin that provides "${type}" in tern.config.ts`,
        },
      );
    }
    return p;
  }

  get(id: string): BackendPlugin<any> | undefined {
    return this.plugins.find((p) => p.id === id);
  }
}
