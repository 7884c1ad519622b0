/**
 * Control flow in workflow bodies: `map` fans out over lists, `when` branches,
 * `gate` waits for a person or a time, `dynamic` builds a sub-DAG at execution
 * time from real values, and `launchPlan` names a workflow with defaults, fixed
 * inputs and a schedule (and runs as a child execution when used as a node).
 */
import { z } from "zod";
import {
  type AnyTask,
  type AnyWorkflow,
  type Bindable,
  type BuiltCondition,
  type CallInputs,
  currentBuilder,
  type Handle,
  isHandle,
  type LaunchPlanLike,
  type MapNodeOptions,
  markDefinition,
  type NodeOptions,
  type Promised,
  type Shape,
  type TaskCtx,
  type TaskDef,
  type TaskInputs,
  type TaskOptions,
  task,
  type WorkflowDef,
} from "./dsl.js";
import { type Duration, parseDuration } from "./duration.js";
import { ErrorCodes, TernError } from "./errors.js";
import type { Json } from "./json.js";
import type { Notification } from "./spec.js";

// ---------------------------------------------------------------------------
// map

/** Lists to map over: each given input is a list of what the target takes. */
export type MapInputs<I extends Shape> = { [K in keyof I]?: Bindable<readonly z.input<I[K]>[]> };

export interface MapOptions<I extends Shape> extends Omit<MapNodeOptions, "bound"> {
  /** Inputs given whole to every item. */
  bound?: { [K in keyof I]?: Bindable<z.input<I[K]>> };
}

/**
 * Run a task or a subworkflow once per item of one or more lists (all of one
 * length); other inputs are given whole through `bound`. The output is the list
 * of item outputs, in order. With `minSuccessRatio` below 1, failed items become
 * `null` and the node succeeds while enough items do.
 *
 * @example
 * const squares = map(square, { x: numbers }, { concurrency: 8 });
 * const scores = map(evaluate, { model: models }, { bound: { data: testSet }, minSuccessRatio: 0.9 });
 */
export function map<I extends Shape, O extends z.ZodType>(
  target: TaskDef<I, O> | WorkflowDef<I, O>,
  inputs: MapInputs<I>,
  opts: MapOptions<I> & { minSuccessRatio: number },
): Promised<(z.output<O> | null)[]>;
export function map<I extends Shape, O extends z.ZodType>(
  target: TaskDef<I, O> | WorkflowDef<I, O>,
  inputs: MapInputs<I>,
  opts?: MapOptions<I>,
): Promised<z.output<O>[]>;
export function map(
  target: AnyTask | AnyWorkflow,
  inputs: Record<string, unknown>,
  opts: MapOptions<Shape> = {},
): Promised<unknown> {
  const name = target.kind === "task" ? target.taskName : target.workflowName;
  const b = currentBuilder(`map(${name})`);
  if (target.kind !== "task" && target.kind !== "workflow") {
    throw new TernError(ErrorCodes.COMPILE, `map() takes a task or a workflow`, {
      hint: "map(myTask, { x: list })",
    });
  }
  const mapped = b.namedInputs(inputs, `map(${name})`, Object.keys(target.inputSchemas));
  if (Object.keys(mapped).length === 0) {
    throw new TernError(ErrorCodes.COMPILE, `workflow "${b.workflow}": map(${name}) maps over no input`, {
      hint: `give at least one list: map(${name}, { ${Object.keys(target.inputSchemas)[0] ?? "x"}: list })`,
    });
  }
  const r = opts.minSuccessRatio;
  if (r !== undefined && (typeof r !== "number" || !(r >= 0 && r <= 1))) {
    throw new TernError(
      ErrorCodes.COMPILE,
      `workflow "${b.workflow}": map(${name}) minSuccessRatio must be between 0 and 1`,
    );
  }
  if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency > 0)) {
    throw new TernError(
      ErrorCodes.COMPILE,
      `workflow "${b.workflow}": map(${name}) concurrency must be a positive integer`,
    );
  }
  return b.add(
    { kind: "map", target, inputs: mapped, options: { ...opts, bound: { ...(opts.bound ?? {}) } } },
    `map_${name}`,
    opts.id,
  );
}

// ---------------------------------------------------------------------------
// Conditions

const COND = Symbol.for("tern.condition");

/** A condition for {@link when}: build one with `eq`, `gt`, `and`, `isTrue`… */
export interface Condition {
  readonly [COND]: BuiltCondition;
}

type Scalar = string | number | boolean | null;
type Operand<T extends Scalar = Scalar> = T | Handle<T> | Handle<T | undefined> | Handle<T | null>;

function cond(c: BuiltCondition): Condition {
  return { [COND]: c };
}

export function builtCondition(c: Condition | Handle<boolean>): BuiltCondition {
  if (isHandle(c)) return { test: "true", operand: c };
  const inner = (c as Partial<Condition>)?.[COND];
  if (!inner) {
    throw new TernError(ErrorCodes.COMPILE, "when() needs a condition", {
      hint: "use eq(a, b), gt(a, b), and(…), isTrue(flag)… or a boolean handle",
    });
  }
  return inner;
}

/** `a == b` */
export const eq = <T extends Scalar>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "eq", left: a, right: b });
/** `a != b` */
export const ne = <T extends Scalar>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "ne", left: a, right: b });
/** `a > b` (numbers or strings) */
export const gt = <T extends number | string>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "gt", left: a, right: b });
/** `a >= b` */
export const gte = <T extends number | string>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "gte", left: a, right: b });
/** `a < b` */
export const lt = <T extends number | string>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "lt", left: a, right: b });
/** `a <= b` */
export const lte = <T extends number | string>(a: Operand<T>, b: Operand<T>): Condition =>
  cond({ cmp: "lte", left: a, right: b });
/** The boolean is true. */
export const isTrue = (h: Operand<boolean>): Condition => cond({ test: "true", operand: h });
/** The boolean is false. */
export const isFalse = (h: Operand<boolean>): Condition => cond({ test: "false", operand: h });
/** The value is null or absent. */
export const isNull = (h: Handle<unknown>): Condition => cond({ test: "null", operand: h });
/** The value is present. */
export const isNotNull = (h: Handle<unknown>): Condition => cond({ test: "notnull", operand: h });
/** Every condition holds. */
export const and = (...cs: (Condition | Handle<boolean>)[]): Condition =>
  cond({ and: cs.map(builtCondition) });
/** Some condition holds. */
export const or = (...cs: (Condition | Handle<boolean>)[]): Condition => cond({ or: cs.map(builtCondition) });
/** The condition does not hold. */
export const not = (c: Condition | Handle<boolean>): Condition => cond({ not: builtCondition(c) });

// ---------------------------------------------------------------------------
// when

/** What a handle, a value, or an object/array of them resolves to. */
export type Resolved<R> =
  R extends Handle<infer V>
    ? V
    : R extends readonly (infer E)[]
      ? Resolved<E>[]
      : R extends object
        ? { [K in keyof R]: Resolved<R[K]> }
        : R;

export interface BranchBuilder<T> {
  /** Another case, tried when the earlier ones do not hold. */
  elseIf<R extends Bindable<T>>(c: Condition | Handle<boolean>, body: () => R): BranchBuilder<T>;
  /** What runs when no case holds; ends the branch. */
  else<R extends Bindable<T>>(body: () => R): Promised<T>;
  /** Fail the execution with `message` when no case holds; ends the branch. */
  fail(message: string): Promised<T>;
  /** End the branch without an else: the output is null when no case holds. */
  end(): Promised<T | null>;
}

/**
 * Branch on node outputs or workflow inputs. The first case whose condition holds
 * runs; nodes of the other cases are skipped. Every case's output must have the
 * same type (checked at compile).
 *
 * @example
 * const grade = when(gte(score, 90)).then(() => praise({ score }))
 *   .elseIf(gte(score, 50), () => pass({ score }))
 *   .fail("score below 50");
 */
export function when(c: Condition | Handle<boolean>): { then<R>(body: () => R): BranchBuilder<Resolved<R>> } {
  const b = currentBuilder("when()");
  const cases: { when: BuiltCondition; nodes: import("./dsl.js").BuiltNode[]; output: unknown }[] = [];
  let ended = false;
  const addCase = (cnd: Condition | Handle<boolean>, body: () => unknown) => {
    if (ended) throw new TernError(ErrorCodes.COMPILE, `workflow "${b.workflow}": this branch already ended`);
    if (typeof body !== "function") {
      throw new TernError(ErrorCodes.COMPILE, `workflow "${b.workflow}": a branch case needs a function`, {
        hint: "when(cond).then(() => myTask({ … }))",
      });
    }
    const nodes: import("./dsl.js").BuiltNode[] = [];
    const when = builtCondition(cnd);
    const output = b.within(nodes, body);
    cases.push({ when, nodes, output });
  };
  const finish = (
    elseCase: { nodes: import("./dsl.js").BuiltNode[]; output: unknown } | { fail: string } | undefined,
  ) => {
    ended = true;
    return b.add({ kind: "branch", cases, ...(elseCase ? { else: elseCase } : {}) }, "branch");
  };
  const builder: BranchBuilder<any> = {
    elseIf(cnd, body) {
      addCase(cnd, body);
      return builder;
    },
    else(body) {
      const nodes: import("./dsl.js").BuiltNode[] = [];
      const output = b.within(nodes, body);
      return finish({ nodes, output }) as Promised<any>;
    },
    fail(message) {
      if (typeof message !== "string" || !message) {
        throw new TernError(ErrorCodes.COMPILE, `workflow "${b.workflow}": fail() needs a message`);
      }
      return finish({ fail: message }) as Promised<any>;
    },
    end() {
      return finish(undefined) as Promised<any>;
    },
  };
  return {
    // biome-ignore lint/suspicious/noThenProperty: the API reads `when(c).then(…)`; workflow bodies are synchronous, never awaited.
    then(body) {
      addCase(c, body);
      return builder as never;
    },
  };
}

// ---------------------------------------------------------------------------
// gates

export interface GateOptions {
  /** Node id and signal name. */
  name?: string;
  /** Give up waiting after this long (the node fails). */
  timeout?: Duration;
}

/** Wait for a person or for time. */
export const gate = {
  /**
   * Wait until someone approves; the output is `value` unchanged. A rejection fails the node.
   * @example const checked = gate.approve(report, { name: "review" });
   */
  approve<T>(value: Handle<T>, opts: GateOptions = {}): Promised<T> {
    const b = currentBuilder("gate.approve()");
    const base = opts.name ?? "approve";
    return b.add(
      { kind: "gate", gate: { kind: "approve", name: "", value }, timeout: opts.timeout },
      base,
      opts.name,
    ) as Promised<T>;
  },
  /** Wait for a duration; the output is null. Order it with `after()`. */
  sleep(duration: Duration, opts: Omit<GateOptions, "timeout"> = {}): Promised<null> {
    const b = currentBuilder("gate.sleep()");
    const ms = parseDuration(duration, "gate.sleep duration");
    return b.add(
      { kind: "gate", gate: { kind: "sleep", durationMs: ms } },
      opts.name ?? "sleep",
      opts.name,
    ) as Promised<null>;
  },
  /**
   * Wait for a value someone gives (checked against `schema`).
   * @example const threshold = gate.input("threshold", z.number().min(0));
   */
  input<S extends z.ZodType>(
    name: string,
    schema: S,
    opts: Omit<GateOptions, "name"> = {},
  ): Promised<z.output<S>> {
    const b = currentBuilder("gate.input()");
    if (!(schema instanceof z.ZodType)) {
      throw new TernError(ErrorCodes.COMPILE, `gate.input("${name}") needs a zod schema`, {
        hint: `gate.input("${name}", z.number())`,
      });
    }
    return b.add(
      { kind: "gate", gate: { kind: "input", name, schema }, timeout: opts.timeout },
      name,
      name,
    ) as Promised<z.output<S>>;
  },
};

// ---------------------------------------------------------------------------
// dynamic

/** A dynamic body: real inputs in; handles (or values) of the sub-DAG's output back. */
export type DynamicBody<I extends Shape, O extends z.ZodType> = (
  inputs: TaskInputs<I>,
  ctx: TaskCtx,
) => Bindable<z.input<O>> | Promise<Bindable<z.input<O>>>;

/**
 * A dynamic workflow: its body runs at execution time with real input values and
 * builds a sub-DAG (task calls, maps, branches, other dynamics) whose output is
 * the node's output. The sub-DAG is compiled and type-checked before any of it runs.
 *
 * @example
 * export const sweep = dynamic(
 *   { name: "sweep", inputs: { rates: z.array(z.number()) }, output: z.array(z.number()) },
 *   ({ rates }) => rates.map((rate) => train({ rate })),
 * );
 */
export function dynamic<I extends Shape = {}, O extends z.ZodType = z.ZodVoid>(
  options: Omit<TaskOptions<I, O>, "type" | "custom">,
  body: DynamicBody<I, O>,
): TaskDef<I, O> {
  const def = task<I, O>({ ...options, type: "node" }, body as never);
  Object.defineProperty(def, "dynamic", { value: true });
  return def;
}

/** True for definitions made by {@link dynamic}. */
export function isDynamic(def: AnyTask): boolean {
  return (def as { dynamic?: boolean }).dynamic === true;
}

// ---------------------------------------------------------------------------
// launch plans

export interface LaunchPlanOptions<I extends Shape> {
  /** @default the workflow's name */
  name?: string;
  /** Inputs used when the caller gives none. */
  defaults?: { [K in keyof I]?: z.input<I[K]> };
  /** Inputs the caller cannot change. */
  fixed?: { [K in keyof I]?: z.input<I[K]> };
  /** Cron expression (5 or 6 fields) or a fixed rate. */
  schedule?: { cron: string; timezone?: string } | { every: Duration };
  notifications?: Notification[];
}

export interface LaunchPlanDef<I extends Shape = Shape, O extends z.ZodType = z.ZodType> {
  /** Inside a workflow body: run the plan as a child execution. */
  (inputs: Partial<CallInputs<I>>, opts?: { id?: string }): Promised<z.output<O>>;
  readonly kind: "launchplan";
  readonly launchPlanName: string;
  readonly workflow: WorkflowDef<I, O>;
  readonly options: Readonly<LaunchPlanOptions<I>>;
}

/**
 * A launch plan: a workflow with defaults, fixed inputs, a schedule and
 * notifications. Used in a workflow body it runs as a child execution.
 *
 * @example
 * export const nightly = launchPlan(train, { name: "nightly", fixed: { region: "eu" }, schedule: cron("0 3 * * *") });
 */
export function launchPlan<I extends Shape, O extends z.ZodType>(
  wf: WorkflowDef<I, O>,
  options: LaunchPlanOptions<I> = {},
): LaunchPlanDef<I, O> {
  const name = options.name ?? wf.workflowName;
  for (const [what, vals] of [
    ["defaults", options.defaults],
    ["fixed", options.fixed],
  ] as const) {
    for (const k of Object.keys(vals ?? {})) {
      if (!(k in wf.inputSchemas)) {
        throw new TernError(
          ErrorCodes.DEFINITION,
          `launch plan "${name}": ${what} names "${k}", which is not an input of workflow "${wf.workflowName}"`,
          {
            hint: `inputs are: ${Object.keys(wf.inputSchemas).join(", ") || "(none)"}`,
          },
        );
      }
    }
  }
  if (options.schedule && "every" in options.schedule)
    parseDuration(options.schedule.every, `schedule of launch plan "${name}"`);
  const def = ((inputs: Record<string, unknown>, opts?: { id?: string }) => {
    const b = currentBuilder(`launch plan "${name}"`);
    const args = b.namedInputs(inputs, `launch plan "${name}"`, Object.keys(wf.inputSchemas));
    return b.add(
      { kind: "launchplan", launchPlan: def as unknown as LaunchPlanLike, inputs: args },
      name,
      opts?.id,
    );
  }) as unknown as LaunchPlanDef<I, O>;
  return markDefinition(def, "launchplan", {
    launchPlanName: name,
    workflow: wf,
    options: Object.freeze({ ...options }),
  });
}

/** A cron schedule for {@link launchPlan}. */
export function cron(expression: string, timezone?: string): { cron: string; timezone?: string } {
  return timezone ? { cron: expression, timezone } : { cron: expression };
}

/** A fixed-rate schedule for {@link launchPlan}. */
export function every(d: Duration): { every: Duration } {
  return { every: d };
}

// ---------------------------------------------------------------------------
// failure handlers

/** What a workflow's `onFailure` task receives as `error`. */
export const failureInfo = z.object({
  code: z.string(),
  kind: z.enum(["user", "system"]),
  message: z.string(),
  node: z.string().optional(),
});
/** What a workflow's `onFailure` task receives as `execution`. */
export const executionInfo = z.object({
  id: z.string(),
  project: z.string(),
  domain: z.string(),
  workflow: z.string(),
});

export type FailureInfo = z.output<typeof failureInfo>;
export type ExecutionInfo = z.output<typeof executionInfo>;

/** Re-exported for convenience in failure handlers. */
export type { Json, NodeOptions };
