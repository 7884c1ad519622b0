/**
 * `startTestEngine`: a real engine (`createEngine` from `@tern/core`) in a temporary
 * project directory, for running workflows through plugins in tests; plus helpers that
 * turn a plugin factory's result into plugin instances, and an instance back into a
 * `TernPlugin` an engine can load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  type AnyTask,
  type AnyWorkflow,
  BACKEND_PLUGIN,
  type BackendPlugin,
  type BlobStore,
  CONTRACT_VERSION,
  type Compiled,
  type CompiledWorkflow,
  type CompileOptions,
  createContainer,
  createEngine,
  definePlugin,
  type ExecutionResult,
  type LocalEngine,
  type LocalEngineOptions,
  resolveAll,
  type StartOptions,
  type TernPlugin,
} from "@tern/core";

export interface TestEngineOptions extends Omit<LocalEngineOptions, "workDir"> {
  /** Project directory. @default a temporary directory, removed by `close()` */
  workDir?: string;
}

export interface TestEngine {
  /** The engine as `createEngine` returns it (registry, container, definitions…). */
  readonly engine: LocalEngine;
  readonly blobs: BlobStore;
  readonly workDir: string;
  /** Run a workflow, a task, a `compile()` result, or a hand-made `CompiledWorkflow` to the end. */
  run(
    def: AnyWorkflow | AnyTask | Compiled | CompiledWorkflow,
    inputs?: Record<string, unknown>,
    opts?: StartOptions & CompileOptions,
  ): Promise<ExecutionResult>;
  /** Closes the engine (and so its plugins) and removes the temporary directory. */
  close(): Promise<void>;
}

function isCompiledWorkflow(v: unknown): v is CompiledWorkflow {
  return typeof v === "object" && v !== null && "workflow" in v && "tasks" in v && !("spec" in v);
}

/**
 * Starts an engine for a test.
 *
 * @example
 * const te = await startTestEngine({ plugins: [k8s({ clusters })], backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } } });
 * const result = await te.run(myWorkflow, { n: 3 });
 * await te.close();
 */
export async function startTestEngine(opts: TestEngineOptions = {}): Promise<TestEngine> {
  const own = opts.workDir ? undefined : mkdtempSync(path.join(os.tmpdir(), "tern-test-engine-"));
  const workDir = opts.workDir ?? own!;
  let engine: LocalEngine;
  try {
    engine = await createEngine({ catalog: "memory", ...opts, workDir });
  } catch (e) {
    if (own) rmSync(own, { recursive: true, force: true });
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    engine,
    blobs: engine.blobs,
    workDir,
    run(def, inputs = {}, ropts = {}) {
      if (isCompiledWorkflow(def)) return engine.engine.run(def, inputs, ropts);
      return engine.run(def, inputs, ropts);
    },
    close() {
      closed ??= (async () => {
        await engine.close();
        if (own) rmSync(own, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

/** The backend plugin instances a plugin package's factory result registers, in a fresh container. */
export async function resolveBackendPlugins(plugin: TernPlugin): Promise<BackendPlugin[]> {
  const c = createContainer();
  await plugin.register(c);
  return resolveAll(c, BACKEND_PLUGIN);
}

/** One backend plugin instance, by id, from a plugin package's factory result. */
export async function resolveBackendPlugin<P extends BackendPlugin<any> = BackendPlugin>(
  plugin: TernPlugin,
  id: string,
): Promise<P> {
  const all = await resolveBackendPlugins(plugin);
  const p = all.find((x) => x.id === id);
  if (!p)
    throw new Error(
      `${plugin.name} registers no backend plugin "${id}" (it registers: ${all.map((x) => x.id).join(", ") || "none"})`,
    );
  return p as P;
}

/** Wraps plugin instances as a `TernPlugin`, so an engine made by {@link startTestEngine} can load them. */
export function asTernPlugin(name: string, ...plugins: BackendPlugin<any>[]): TernPlugin {
  return definePlugin({
    name,
    contractVersion: CONTRACT_VERSION,
    register(c) {
      for (const p of plugins) c.register(BACKEND_PLUGIN, { useValue: p });
    },
  });
}
