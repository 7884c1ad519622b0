/**
 * Running one attempt of a TypeScript task: materialize by-reference inputs,
 * validate inputs against the task's zod schemas, call the body with `ctx`,
 * validate the output, upload by-reference outputs. The same function runs in
 * the engine's process (`inline`), in a pooled worker (`process`) and in a pod
 * (`tern-execute`): the same code runs locally and in production.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type BlobStore, digestPath, putContent } from "../blob.js";
import { compileDynamic } from "../compile.js";
import { isDynamic } from "../control.js";
import {
  type AnyTask,
  collectHandles,
  type Shape,
  type TaskCtx,
  WorkflowBuilder,
  withAsyncBuilder,
} from "../dsl.js";
import { ErrorCodes, type ErrorDocument, TernError, toErrorDocument } from "../errors.js";
import type { Json } from "../json.js";
import type { TaskLogger } from "../plugin.js";
import type { TaskSpec } from "../spec.js";
import { isTernRef } from "../types.js";

export interface ExecuteRequest {
  task: TaskSpec;
  /** Input values: literals, or in-process values. */
  inputs: Record<string, unknown>;
  execution: { id: string; project: string; domain: string };
  node: string;
  attempt: number;
  /** Blob key under which checkpoints of this node live. */
  checkpointPrefix: string;
  /** Project directory; scratch space goes under its `.tern/scratch`. */
  workDir: string;
}

export type ExecuteResult = { ok: true; outputs: unknown } | { ok: false; error: ErrorDocument };

export interface ExecuteEnv {
  blobs: BlobStore;
  logger: TaskLogger;
  signal: AbortSignal;
}

export async function executeTask(
  def: AnyTask,
  req: ExecuteRequest,
  env: ExecuteEnv,
): Promise<ExecuteResult> {
  // Awaits only what is a promise: a synchronous body with plain inputs and outputs completes
  // without yielding, so an in-process backend sees it done at its first check (no poll).
  const name = req.task.id.name;
  let inputs: Record<string, unknown>;
  try {
    const prepared = prepareInputs(def, req, env.blobs);
    inputs = prepared instanceof Promise ? await prepared : prepared;
  } catch (e) {
    return { ok: false, error: toErrorDocument(e) };
  }
  if (isDynamic(def)) return runDynamicBody(def, inputs, req, env);
  let result: unknown;
  try {
    result = def.fn(inputs as never, new Ctx(req, env));
    if (isPromiseLike(result)) result = await result;
  } catch (e) {
    const doc = toErrorDocument(e, "user");
    if (!(e instanceof TernError)) doc.details = { ...doc.details, task: name };
    return { ok: false, error: doc };
  }
  try {
    const out = finishOutput(def, name, result, env.blobs);
    return { ok: true, outputs: out instanceof Promise ? await out : out };
  } catch (e) {
    return { ok: false, error: toErrorDocument(e, "user") };
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === "object" || typeof v === "function") &&
    v !== null &&
    typeof (v as { then?: unknown }).then === "function"
  );
}

/**
 * A dynamic body runs with real inputs inside a workflow builder; the graph it
 * builds is compiled (and so type-checked) here, before any of it runs. The
 * result is the sub-DAG the engine runs in place of the node.
 */
async function runDynamicBody(
  def: AnyTask,
  inputs: Record<string, unknown>,
  req: ExecuteRequest,
  env: ExecuteEnv,
): Promise<ExecuteResult> {
  const name = req.task.id.name;
  const builder = new WorkflowBuilder(name);
  let output: unknown;
  try {
    output = await withAsyncBuilder(builder, () => def.fn(inputs as never, new Ctx(req, env)));
  } catch (e) {
    const doc = toErrorDocument(e, "user");
    if (!(e instanceof TernError)) doc.details = { ...doc.details, task: name };
    return { ok: false, error: doc };
  }
  try {
    for (const h of collectHandles(output)) builder.checkOwn(h, "(output)");
    const compiled = compileDynamic(
      name,
      { workflow: name, nodes: builder.nodes, output },
      def.outputSchema,
      {
        project: req.execution.project,
        domain: req.execution.domain,
        bundle: req.task.code?.bundle,
        projectRoot: req.workDir,
      },
    );
    return { ok: true, outputs: { $tern: "dynamic", spec: compiled.spec } };
  } catch (e) {
    const doc = toErrorDocument(e, "user");
    doc.message = `dynamic "${name}": ${doc.message}`;
    return { ok: false, error: doc };
  }
}

/** Inputs validated against the task's schemas; a promise only when by-reference values need a local path. */
function prepareInputs(
  def: AnyTask,
  req: ExecuteRequest,
  blobs: BlobStore,
): Record<string, unknown> | Promise<Record<string, unknown>> {
  const schemas = def.inputSchemas as Shape;
  for (const k in schemas) {
    const v = req.inputs[k];
    if (v !== null && typeof v === "object" && hasRef(v)) return materializeInputs(def, req, blobs);
  }
  return validateInputs(def, req, req.inputs);
}

async function materializeInputs(
  def: AnyTask,
  req: ExecuteRequest,
  blobs: BlobStore,
): Promise<Record<string, unknown>> {
  const scratch = path.join(req.workDir, ".tern", "downloads");
  const given: Record<string, unknown> = { ...req.inputs };
  for (const k of Object.keys(def.inputSchemas as Shape)) {
    const v = given[k];
    if (v !== null && typeof v === "object") given[k] = await materialize(v, blobs, scratch);
  }
  return validateInputs(def, req, given);
}

function validateInputs(
  def: AnyTask,
  req: ExecuteRequest,
  given: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const schemas = def.inputSchemas as Shape;
  for (const k in schemas) {
    const r = schemas[k].safeParse(given[k]);
    if (!r.success) {
      const issue = r.error.issues[0];
      const at = issue?.path.length ? `.${issue.path.join(".")}` : "";
      throw new TernError(
        ErrorCodes.INPUT_INVALID,
        `task "${req.task.id.name}", input "${k}${at}": ${issue?.message ?? "invalid value"}`,
        {
          hint: "check the value given for this input",
          details: { task: req.task.id.name, input: k, node: req.node },
        },
      );
    }
    out[k] = r.data;
  }
  return out;
}

/** True when a value holds a file/dir/dataframe reference. */
function hasRef(v: unknown): boolean {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (x !== null && typeof x === "object" && hasRef(x)) return true;
    }
    return false;
  }
  if (v !== null && typeof v === "object") {
    if (isTernRef(v as Record<string, unknown>)) return true;
    for (const k in v as Record<string, unknown>) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== null && typeof x === "object" && hasRef(x)) return true;
    }
  }
  return false;
}

/** Give by-reference values a local `path` (downloading when the store is remote). */
export async function materialize(v: unknown, blobs: BlobStore, cacheDir: string): Promise<unknown> {
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = v[i] !== null && typeof v[i] === "object" ? await materialize(v[i], blobs, cacheDir) : v[i];
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (isTernRef(o)) {
      if ((o.path && fs.existsSync(o.path as string)) || (o as { rows?: unknown }).rows || !o.uri) return o;
      return { ...o, path: await blobs.localPath(o.uri as string, cacheDir) };
    }
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(o)) {
      const x = o[k] !== null && typeof o[k] === "object" ? await materialize(o[k], blobs, cacheDir) : o[k];
      if (x !== o[k]) (out ??= { ...o })[k] = x;
    }
    return out ?? v;
  }
  return v;
}

/** The output validated and checked storable; a promise only when local files must be uploaded. */
function finishOutput(def: AnyTask, name: string, result: unknown, blobs: BlobStore): unknown {
  let value = result;
  if (def.outputSchema) {
    const r = def.outputSchema.safeParse(result);
    if (!r.success) {
      const issue = r.error.issues[0];
      const at = issue?.path.length ? ` at .${issue.path.join(".")}` : "";
      throw new TernError(
        ErrorCodes.OUTPUT_INVALID,
        `task "${name}" returned a value that does not match its output schema${at}: ${issue?.message ?? "invalid"}`,
        { hint: "return a value of the declared output type", details: { task: name, path: issue?.path } },
      );
    }
    value = r.data;
  } else if (result !== undefined && result !== null) {
    throw new TernError(ErrorCodes.OUTPUT_INVALID, `task "${name}" returned a value but declares no output`, {
      hint: "add output: <schema> to the task options",
      details: { task: name },
    });
  }
  if (value === undefined) return null;
  if (value !== null && typeof value === "object") {
    const refs = checkSerializable(value, name, [], new Set());
    return refs ? offload(value, blobs) : value;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw notSerializable(name, [], String(value));
  }
  return value;
}

function notSerializable(task: string, at: readonly (string | number)[], what: string): TernError {
  const where = at.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("");
  return new TernError(
    ErrorCodes.OUTPUT_NOT_SERIALIZABLE,
    `task "${task}" returned ${what}${where ? ` at ${where}` : ""}, which cannot be stored`,
    { hint: "outputs must be JSON values or file/dir/dataframe references", details: { task, path: where } },
  );
}

/**
 * Throws when a value cannot be stored as JSON; returns whether it holds a file/dir/dataframe
 * reference (which may need uploading). `at` is the path walked so far (only formatted on error).
 */
function checkSerializable(v: unknown, task: string, at: (string | number)[], seen: Set<unknown>): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return false;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw notSerializable(task, at, String(v));
    return false;
  }
  if (typeof v !== "object") throw notSerializable(task, at, `a ${typeof v}`);
  if (seen.has(v)) throw notSerializable(task, at, "a circular structure");
  seen.add(v);
  let refs = false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (
        x === null ||
        typeof x === "string" ||
        typeof x === "boolean" ||
        (typeof x === "number" && Number.isFinite(x))
      )
        continue;
      at.push(i);
      if (checkSerializable(x, task, at, seen)) refs = true;
      at.pop();
    }
  } else {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null)
      throw notSerializable(task, at, `a ${(v as object).constructor?.name ?? "class"} instance`);
    if (isTernRef(v as Record<string, unknown>)) refs = true;
    else {
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        at.push(k);
        if (checkSerializable(x, task, at, seen)) refs = true;
        at.pop();
      }
    }
  }
  seen.delete(v);
  return refs;
}

/** Upload by-reference values that only exist locally; content-addressed, so re-uploads are free. */
export async function offload(v: unknown, blobs: BlobStore): Promise<unknown> {
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = v[i] !== null && typeof v[i] === "object" ? await offload(v[i], blobs) : v[i];
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  if (!v || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  if (isTernRef(o)) {
    if (o.uri) return o;
    if (o.$tern === "dataframe") {
      const rows = (o.rows ?? []) as unknown[];
      const text = rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");
      const { uri } = await putContent(blobs, text, "cas", ".jsonl");
      return { $tern: "dataframe", uri, format: "jsonl" };
    }
    const p = o.path as string | undefined;
    if (!p || !fs.existsSync(p)) {
      throw new TernError(
        ErrorCodes.OUTPUT_INVALID,
        `returned ${o.$tern} "${p ?? "(no path)"}" does not exist`,
        {
          hint: `create the ${o.$tern} before returning it`,
        },
      );
    }
    const digest = await digestPath(p);
    const base = path.basename(p);
    const key = `cas/${digest.slice(0, 2)}/${digest}/${base}`;
    const uri = blobs.uri(key);
    if (!(await blobs.exists(uri))) await blobs.putPath(p, key);
    return { ...o, uri, name: o.name ?? base };
  }
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(o)) {
    const x = o[k] !== null && typeof o[k] === "object" ? await offload(o[k], blobs) : o[k];
    if (x !== o[k]) (out ??= { ...o })[k] = x;
  }
  return out ?? v;
}

class Ctx implements TaskCtx {
  readonly execution: { id: string; project: string; domain: string };
  readonly node: { id: string };
  readonly task: { name: string };
  readonly attempt: number;
  private scratch?: string;

  constructor(
    private readonly req: ExecuteRequest,
    private readonly env: ExecuteEnv,
  ) {
    this.execution = req.execution;
    this.node = { id: req.node };
    this.task = { name: req.task.id.name };
    this.attempt = req.attempt;
  }

  /** Read on use: a backend may make these lazily (an AbortSignal costs microseconds). */
  get signal(): AbortSignal {
    return this.env.signal;
  }

  get logger(): TaskLogger {
    return this.env.logger;
  }

  get scratchDir(): string {
    if (!this.scratch) {
      const r = this.req;
      this.scratch = path.join(r.workDir, ".tern", "scratch", r.execution.id, r.node, String(r.attempt));
      fs.mkdirSync(this.scratch, { recursive: true });
    }
    return this.scratch;
  }

  get checkpoint(): TaskCtx["checkpoint"] {
    const blobs = this.env.blobs;
    const key = `${this.req.checkpointPrefix}/checkpoint`;
    const load = async () => ((await blobs.exists(blobs.uri(key))) ? blobs.get(blobs.uri(key)) : undefined);
    return {
      save: async (data: unknown) => {
        await blobs.put(key, data instanceof Uint8Array ? data : JSON.stringify(data));
      },
      load,
      loadJson: async <T = Json>() => {
        const b = await load();
        return b === undefined ? undefined : (JSON.parse(Buffer.from(b).toString("utf8")) as T);
      },
    };
  }
}
