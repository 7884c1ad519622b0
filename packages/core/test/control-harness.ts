/**
 * Runs control-fixture.ts on each built-in backend.
 *
 * - inline: the test imports the fixture directly; the engine calls the same definitions
 *   (compiled without a bundle, so the resolver finds them by name in this process).
 * - process: a temporary project with node_modules links to this @tern/core and zod holds a
 *   copy of the fixture, bundled with esbuild; specs are compiled with the bundle digest, so
 *   worker processes load it and run the bodies there.
 *
 * Bodies log their calls under a state directory (`TERN_CONTROL_STATE`, set here before any
 * worker starts, so workers inherit it); {@link calls} reads them back by execution id.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AnyTask,
  type AnyWorkflow,
  bundleEntry,
  type Compiled,
  type CompileOptions,
  compile,
  createEngine,
  type ExecutionHandle,
  type ExecutionResult,
  type LocalEngine,
  type LocalEngineOptions,
  type StartOptions,
} from "@tern/core";
import { afterAll, beforeAll, expect } from "vitest";

export type BackendName = "inline" | "process";
export const BACKENDS: BackendName[] = ["inline", "process"];

const TEST_DIR = path.dirname(fileURLToPath(import.meta.url));
const CORE_DIR = path.resolve(TEST_DIR, "..");
const ZOD_DIR = path.dirname(createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"));

const state = fs.mkdtempSync(path.join(os.tmpdir(), "tern-control-state-"));
process.env.TERN_CONTROL_STATE = state;

let project: Promise<{ root: string; digest: string }> | undefined;

/** The temporary project with the bundled fixture (made once per test file). */
function fixtureProject(): Promise<{ root: string; digest: string }> {
  project ??= (async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-control-"));
    fs.writeFileSync(
      path.join(root, "package.json"),
      JSON.stringify({ name: "control-fixture", type: "module", private: true }),
    );
    fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
    fs.symlinkSync(CORE_DIR, path.join(root, "node_modules", "@tern", "core"), "dir");
    fs.symlinkSync(ZOD_DIR, path.join(root, "node_modules", "zod"), "dir");
    fs.copyFileSync(path.join(TEST_DIR, "control-fixture.ts"), path.join(root, "control-fixture.ts"));
    const bundle = await bundleEntry(path.join(root, "control-fixture.ts"));
    return { root, digest: bundle.digest };
  })();
  return project;
}

afterAll(async () => {
  if (project) fs.rmSync((await project).root, { recursive: true, force: true });
  fs.rmSync(state, { recursive: true, force: true });
});

export interface Call {
  task: string;
  node: string;
  attempt: number;
  pid: number;
  what?: unknown;
}

/** Body calls an execution logged, in order. */
export function calls(execution: string): Call[] {
  const f = path.join(state, `${execution}.log`);
  if (!fs.existsSync(f)) return [];
  return fs
    .readFileSync(f, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Call);
}

/** Body calls of one task. */
export function callsOf(execution: string, task: string): Call[] {
  return calls(execution).filter((c) => c.task === task);
}

export function stateFile(name: string): string {
  return path.join(state, name);
}

export interface Backend {
  readonly name: BackendName;
  readonly local: LocalEngine;
  compile(def: AnyWorkflow | AnyTask, opts?: CompileOptions): Compiled;
  /** Start an execution of a definition (or of a compiled spec). */
  start(
    def: AnyWorkflow | AnyTask | Compiled,
    inputs?: Record<string, unknown>,
    opts?: StartOptions,
  ): ExecutionHandle;
  run(
    def: AnyWorkflow | AnyTask | Compiled,
    inputs?: Record<string, unknown>,
    opts?: StartOptions,
  ): Promise<{ handle: ExecutionHandle; result: ExecutionResult }>;
}

/**
 * An engine on `name`, made before the tests of the enclosing describe and closed after
 * them. Fields are usable inside tests.
 */
export function useBackend(name: BackendName, opts: Partial<LocalEngineOptions> = {}): Backend {
  let local: LocalEngine | undefined;
  let root = "";
  let digest = "";
  const b: Backend = {
    name,
    get local() {
      if (!local) throw new Error("the backend is made in beforeAll");
      return local;
    },
    compile(def, copts = {}) {
      return compile(def, { projectRoot: root, ...(name === "process" ? { bundle: digest } : {}), ...copts });
    },
    start(def, inputs = {}, sopts = {}) {
      const compiled = "spec" in def ? def : b.compile(def);
      b.local.definitions.add(compiled);
      return b.local.engine.start(compiled, inputs, sopts);
    },
    async run(def, inputs = {}, sopts = {}) {
      const handle = b.start(def, inputs, sopts);
      return { handle, result: await handle.result };
    },
  };
  beforeAll(async () => {
    ({ root, digest } = await fixtureProject());
    local = await createEngine({ backend: name, workDir: root, workers: 4, catalog: "memory", ...opts });
  });
  afterAll(async () => {
    await local?.close();
  });
  return b;
}

/** Assert success, showing the error when there is one. */
export function expectSucceeded(result: ExecutionResult): void {
  expect(result.error).toBeUndefined();
  expect(result.phase).toBe("succeeded");
}

/** The summary of a node by its fully qualified id. */
export function nodeOf(result: ExecutionResult, id: string) {
  const n = result.nodes.find((x) => x.id === id);
  if (!n)
    throw new Error(`no node "${id}" in the result (nodes: ${result.nodes.map((x) => x.id).join(", ")})`);
  return n;
}
