/**
 * A throwaway project for executor tests that run real worker processes: a task module
 * bundled with esbuild (its `@tern/core` and `zod` linked to the workspace's copies, so
 * the workers and the bundle share one core), compiled against that bundle.
 *
 * `layered` is a workflow of `width × layers` `step` tasks (each node of a layer
 * depends on the node with the same index in the layer before) and one `total` task
 * that sums the last layer. Every task body first appends one line
 * `<execution> <node> <attempt> <pid>` to the file named by its `log` input, then
 * sleeps `ms` (the node named `slow` sleeps `slowMs`): the log shows every time a body
 * ran, so a node that ran twice shows.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "@tern/core";

const SERVER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CORE_DIR = path.resolve(SERVER_DIR, "../core");
const ZOD_DIR = path.dirname(createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"));

/** Child-process script that runs an executor (see executor-child.mjs). */
export const CHILD_SCRIPT = path.join(SERVER_DIR, "test", "helpers", "executor-child.mjs");

export interface DurableProject {
  root: string;
  bundle: core.Bundle;
  /** The `layered` workflow compiled against the bundle. */
  compiled: core.CompiledWorkflow;
  /** Expected output of `layered`. */
  expected: number;
  /** Node ids of `layered`. */
  nodes: string[];
}

const TASKS = (width: number, layers: number) => `
import * as fs from "node:fs";
import { task, workflow } from "@tern/core";
import { z } from "zod";

const mark = (log: string, ctx: { execution: { id: string }; node: { id: string }; attempt: number }) =>
  fs.appendFileSync(log, \`\${ctx.execution.id} \${ctx.node.id} \${ctx.attempt} \${process.pid}\\n\`);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const step = task(
  {
    name: "step",
    inputs: { log: z.string(), ms: z.number(), x: z.number(), slow: z.string(), slowMs: z.number() },
    output: z.number(),
  },
  async ({ log, ms, x, slow, slowMs }, ctx) => {
    mark(log, ctx);
    await pause(ctx.node.id === slow ? slowMs : ms);
    return x + 1;
  },
);

export const total = task(
  { name: "total", inputs: { log: z.string(), xs: z.array(z.number()) }, output: z.number() },
  async ({ log, xs }, ctx) => {
    mark(log, ctx);
    return xs.reduce((a, b) => a + b, 0);
  },
);

export const layered = workflow(
  {
    name: "layered",
    inputs: { log: z.string(), ms: z.number(), slow: z.string().default(""), slowMs: z.number().default(0) },
    output: z.number(),
  },
  ({ log, ms, slow, slowMs }) => {
    let prev = Array.from({ length: ${width} }, (_, i) => step({ log, ms, x: i, slow, slowMs }, { id: \`l0_\${i}\` }));
    for (let l = 1; l < ${layers}; l++) prev = prev.map((p, i) => step({ log, ms, x: p, slow, slowMs }, { id: \`l\${l}_\${i}\` }));
    return total({ log, xs: prev }, { id: "total" });
  },
);
`;

/** Create the project and bundle it. */
export async function createDurableProject(
  opts: { width?: number; layers?: number } = {},
): Promise<DurableProject> {
  const width = opts.width ?? 6;
  const layers = opts.layers ?? 5;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-durable-"));
  fs.writeFileSync(
    path.join(root, "package.json"),
    JSON.stringify({ name: "durable-fixture", type: "module", private: true }),
  );
  fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
  fs.symlinkSync(CORE_DIR, path.join(root, "node_modules", "@tern", "core"), "dir");
  fs.symlinkSync(ZOD_DIR, path.join(root, "node_modules", "zod"), "dir");
  fs.writeFileSync(path.join(root, "tasks.ts"), TASKS(width, layers));
  const bundle = await core.bundleEntry(path.join(root, "tasks.ts"));
  const mod = await core.importBundle(bundle.path);
  const compiled = core.compile(mod.layered as core.AnyWorkflow, {
    bundle: bundle.digest,
    projectRoot: root,
  }).spec;
  const nodes: string[] = [];
  for (let l = 0; l < layers; l++) for (let i = 0; i < width; i++) nodes.push(`l${l}_${i}`);
  nodes.push("total");
  let expected = 0;
  for (let i = 0; i < width; i++) expected += i + layers;
  return { root, bundle, compiled, expected, nodes };
}

/** One line of the body log. */
export interface BodyRun {
  execution: string;
  node: string;
  attempt: number;
  pid: number;
}

export function readBodyLog(file: string): BodyRun[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [execution, node, attempt, pid] = l.split(" ");
      return { execution, node, attempt: Number(attempt), pid: Number(pid) };
    });
}

/** Node ids whose body ran more than once in an execution. */
export function ranTwice(runs: readonly BodyRun[]): string[] {
  const seen = new Map<string, number>();
  for (const r of runs) seen.set(`${r.execution} ${r.node}`, (seen.get(`${r.execution} ${r.node}`) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} (${n} times)`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie is as good as gone.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}

/** Poll `probe` until it returns something truthy; fail with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs: number,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
