/**
 * Putting an engine together for local use and embedding: a child container with
 * the built-in backends and any configured plugins, a blob store, a catalog and a
 * task resolver.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InlineBackend, TASK_RESOLVER, type TaskResolver } from "./backends/inline.js";
import { type BlobStore, LocalBlobStore } from "./blob.js";
import { bundlePath, importBundle } from "./bundle.js";
import { type Catalog, DiskCatalog, MemoryCatalog } from "./catalog.js";
import { type Compiled, type CompileOptions, compile } from "./compile.js";
import { type AnyTask, type AnyWorkflow, definedTasks } from "./dsl.js";
import { Engine, type EngineOptions, type ExecutionResult, type StartOptions } from "./engine.js";
import { ErrorCodes, TernError } from "./errors.js";
import {
  BACKEND_CONFIG,
  BACKEND_PLUGIN,
  type BackendConfig,
  type BackendPlugin,
  BackendRegistry,
  checkContractVersion,
  type TernPlugin,
} from "./plugin.js";
import { type TaskSpec, taskKey } from "./spec.js";
import {
  createContainer,
  type DependencyContainer,
  isProvided,
  provide,
  resolve,
  resolveAll,
} from "./tokens.js";

/** Task definitions known to this process, by `name@version`. */
export class DefinitionIndex {
  private readonly byKey = new Map<string, AnyTask>();

  add(compiled: Compiled): void {
    for (const [k, d] of compiled.tasks) this.byKey.set(k, d);
  }

  /** Find a task's body: compiled here, defined here, or in its code bundle. */
  resolver(workDir: string): TaskResolver {
    const load = async (spec: TaskSpec): Promise<AnyTask> => {
      const bundle = spec.code?.bundle;
      if (bundle) await importBundle(bundlePath(workDir, bundle));
      const defs = definedTasks(spec.id.name);
      if (defs.length === 1) return defs[0];
      throw new TernError(
        ErrorCodes.SYSTEM,
        defs.length === 0
          ? `the code of task "${spec.id.name}" is not loaded${bundle ? ` (bundle ${bundle})` : ""}`
          : `${defs.length} tasks named "${spec.id.name}" are loaded; cannot tell which one to run`,
        { kind: "system" },
      );
    };
    // A task compiled here is returned synchronously: no promise on the per-attempt path.
    return (spec: TaskSpec) => this.byKey.get(taskKey(spec.id)) ?? load(spec);
  }
}

export interface LocalEngineOptions extends Partial<Omit<EngineOptions, "registry" | "blobs" | "catalog">> {
  /** Project directory; `.tern/` lives here. @default process.cwd() */
  workDir?: string;
  /** Backend for TypeScript (`node`) tasks: "inline" or "process". @default "inline" */
  backend?: string;
  /** Plugins to load (their factories' results). */
  plugins?: TernPlugin[];
  /** Task type → plugin id, and which plugins are enabled. */
  backendConfig?: BackendConfig;
  blobs?: BlobStore;
  /** "disk" keeps the catalog under `.tern/cache`; "memory" for this process only; or a catalog. @default "memory" */
  catalog?: Catalog | "disk" | "memory" | false;
  /** Size bound of the disk catalog. */
  cacheMaxBytes?: number;
  /** Worker processes of the `process` backend. @default number of CPUs */
  workers?: number;
  /** `process` backend: let attempts survive this engine and be adopted by the next (servers). @default false */
  durable?: boolean;
}

export interface LocalEngine {
  readonly engine: Engine;
  readonly container: DependencyContainer;
  readonly registry: BackendRegistry;
  readonly definitions: DefinitionIndex;
  readonly blobs: BlobStore;
  readonly catalog?: Catalog;
  readonly workDir: string;
  /** Compile (if needed) and run to the end. */
  run(
    def: AnyWorkflow | AnyTask | Compiled,
    inputs?: Record<string, unknown>,
    opts?: StartOptions & CompileOptions,
  ): Promise<ExecutionResult>;
  close(): Promise<void>;
}

/**
 * An engine for local runs and embedding.
 *
 * @example
 * const local = await createEngine();
 * const result = await local.run(hello, { name: "Ada" });
 * await local.close();
 */
export async function createEngine(opts: LocalEngineOptions = {}): Promise<LocalEngine> {
  const workDir = path.resolve(opts.workDir ?? process.cwd());
  const container = createContainer();
  const definitions = new DefinitionIndex();
  provide(container, TASK_RESOLVER, definitions.resolver(workDir));
  const backend = opts.backend ?? "inline";
  if (backend === "inline") container.register(BACKEND_PLUGIN, { useClass: InlineBackend });
  else if (backend === "process") {
    const { ProcessBackend, PROCESS_BACKEND_OPTIONS } = await import("./backends/process.js");
    provide(container, PROCESS_BACKEND_OPTIONS, { workers: opts.workers, workDir, durable: opts.durable });
    container.register(BACKEND_PLUGIN, { useClass: ProcessBackend });
  }
  for (const p of opts.plugins ?? []) {
    if (p?.$$type !== "tern.plugin") {
      throw new TernError(ErrorCodes.CONFIG, "an entry of plugins is not a Tern plugin", {
        hint: "list what a plugin package's factory returns, e.g. plugins: [k8s({ … })]",
      });
    }
    checkContractVersion(p.name, p.contractVersion);
    await p.register(container);
  }
  const base: BackendConfig =
    opts.backendConfig ?? (isProvided(container, BACKEND_CONFIG) ? resolve(container, BACKEND_CONFIG) : {});
  const plugins = resolveAll(container, BACKEND_PLUGIN);
  // An explicit backend decides who runs TypeScript (`node`) tasks, over any mapping in the config.
  const config: BackendConfig = opts.backend
    ? {
        ...base,
        defaultForTaskTypes: { ...base.defaultForTaskTypes, node: backendId(opts.backend, plugins) },
      }
    : base;
  const registry = new BackendRegistry(plugins, config);
  const blobs = opts.blobs ?? new LocalBlobStore(path.join(workDir, ".tern", "blobs"));
  let catalog: Catalog | undefined;
  if (opts.catalog === "disk") {
    catalog = new DiskCatalog(path.join(workDir, ".tern", "cache"), { maxBytes: opts.cacheMaxBytes });
  } else if (opts.catalog === undefined || opts.catalog === "memory") catalog = new MemoryCatalog();
  else if (opts.catalog) catalog = opts.catalog;

  const engine = new Engine({ ...opts, registry, blobs, catalog, workDir });
  return {
    engine,
    container,
    registry,
    definitions,
    blobs,
    catalog,
    workDir,
    async run(def, inputs = {}, ropts = {}) {
      const compiled = "spec" in def ? def : compile(def, { projectRoot: workDir, ...ropts });
      definitions.add(compiled);
      return engine.run(compiled, inputs, ropts);
    },
    async close() {
      await engine.close();
      container.clearInstances();
    },
  };
}

/**
 * The plugin a `backend` name selects for TypeScript tasks: the plugin with that id,
 * else the one plugin whose id starts with `<name>-` and runs `node` tasks
 * (`k8s` → `k8s-pod`).
 */
function backendId(name: string, plugins: readonly BackendPlugin<any>[]): string {
  if (plugins.some((p) => p.id === name)) return name;
  const candidates = plugins.filter((p) => p.id.startsWith(`${name}-`) && p.taskTypes.includes("node"));
  if (candidates.length === 1) return candidates[0].id;
  const runsNode = plugins.filter((p) => p.taskTypes.includes("node")).map((p) => p.id);
  throw new TernError(ErrorCodes.USAGE, `unknown backend "${name}"`, {
    hint: `backends that run TypeScript tasks: ${[...new Set(["inline", "process", ...runsNode])].join(", ")}; plugins come from tern.config.ts`,
  });
}

/**
 * Run a workflow or task in this process and return its result: the quickest way
 * to embed Tern.
 */
export async function run(
  def: AnyWorkflow | AnyTask,
  inputs: Record<string, unknown> = {},
  opts: LocalEngineOptions & StartOptions & CompileOptions = {},
): Promise<ExecutionResult> {
  const local = await createEngine(opts);
  try {
    return await local.run(def, inputs, opts);
  } finally {
    await local.close();
  }
}

/** True when `dir` has a `.tern` folder. */
export function hasTernDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, ".tern"));
}
