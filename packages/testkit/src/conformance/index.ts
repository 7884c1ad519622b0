/**
 * The backend plugin conformance suite: {@link testBackendPlugin} registers vitest tests
 * that check a plugin against the contract of `@tern/core` — idempotent launch, checks
 * without side effects, success and failure classification, preemption, abort,
 * re-attaching from persisted state after an engine restart, limits through a real
 * engine, logs, the contract version, and JSON-serializable state.
 *
 * vitest is an optional peer dependency: it is loaded when this module is, and
 * `testBackendPlugin` fails with a clear message when it is missing.
 *
 * @example
 * import { testBackendPlugin } from "@tern/testkit";
 * testBackendPlugin({
 *   name: "my-plugin",
 *   fake: { start: () => startMyFake(), stop: (f) => f.close(), countExternal: (f, ctx) => f.jobsFor(ctx.attempt.id).length },
 *   create: (fake) => new MyPlugin({ endpoint: fake.url }),
 *   scenarios: { success: { task, inputs, outputs }, userFailure: …, systemFailure: { …, induce: (f, ctx, s) => f.kill(s.jobId) }, longRunning: … },
 *   skip: { preemption: "the service has no preemptible capacity" },
 * });
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  type BackendPlugin,
  checkContractVersion,
  ErrorCodes,
  type Json,
  type TaskContext,
  type TaskSpec,
  TernError,
} from "@tern/core";
import { makeTaskContext, type TestTaskContext, testId } from "../engine/task-context.js";
import { asTernPlugin, startTestEngine } from "../engine/test-engine.js";
import { driveToTerminal, readOutcome, trackConcurrency, waitUntil, wideWorkflow } from "./drive.js";

type Vitest = typeof import("vitest");
const vitest: Vitest | undefined = await import("vitest").catch(() => undefined);

/** The checks of the suite; a plugin may opt out of some with a reason (`skip`). */
export type ConformanceCheck =
  | "contract"
  | "state-json"
  | "launch-idempotent"
  | "check-no-side-effects"
  | "success"
  | "user-failure"
  | "system-failure"
  | "preemption"
  | "abort"
  | "reattach"
  | "limits"
  | "logs";

/** A task to run, with its inputs. */
export interface Scenario {
  task: TaskSpec;
  inputs?: Record<string, Json>;
}

/** A scenario whose failure the fake causes while the work runs. */
export interface FaultScenario<F, S> extends Scenario {
  /** Called once the work is active (see `FakeAdapter.isActive`), e.g. `(fake, ctx, s) => fake.evict(ns, s.pod)`. */
  induce(fake: F, ctx: TaskContext, state: S): void | Promise<void>;
}

export interface ConformanceScenarios<F, S> {
  /** Succeeds with `outputs` (as the engine reads them: `status.outputs` or `outputs.json`). Should run for a moment (≥ 0.2 s) so re-attach meets it running. */
  success: Scenario & { outputs: Json };
  /** Fails because of the task's own code: `error.kind` must be `"user"`. */
  userFailure: Scenario & { message?: string | RegExp };
  /** Fails because of the infrastructure: `error.kind` must be `"system"`. */
  systemFailure: FaultScenario<F, S>;
  /** Preempted: `preempted: true` (or a system error). Opt out with `skip: { preemption: "why" }`. */
  preemption?: FaultScenario<F, S>;
  /** Runs until aborted (abort check). */
  longRunning: Scenario;
  /** Writes these lines (substrings or patterns) to the log `logs()` serves. */
  logs?: Scenario & { lines: (string | RegExp)[] };
}

/** How the suite reaches the external world a plugin drives (a loopback fake, or nothing). */
export interface FakeAdapter<F, S> {
  start(): F | Promise<F>;
  stop?(fake: F): void | Promise<void>;
  /** Writes made to the external world so far (e.g. non-GET requests), compared before and after checks. */
  writes?(fake: F): unknown[] | Promise<unknown[]>;
  /** How many external jobs exist (or ran) for this attempt. Needed by `launch-idempotent` and `reattach`. */
  countExternal?(fake: F, ctx: TaskContext, state: S): number | Promise<number>;
  /** Whether the attempt's work is running right now. @default the plugin's check says `running` */
  isActive?(fake: F, ctx: TaskContext, state: S): boolean | Promise<boolean>;
  /** The project directory for contexts and the engine (where bundles live). @default a temporary directory */
  workDir?(fake: F): string;
}

/** What {@link testBackendPlugin} takes. */
export interface BackendPluginSuite<F = undefined, S extends Json = Json> {
  /** Shown in the test names. */
  name: string;
  /** A fresh plugin instance (called again to simulate an engine restart). */
  create(fake: F): BackendPlugin<S> | Promise<BackendPlugin<S>>;
  fake?: FakeAdapter<F, S>;
  scenarios: ConformanceScenarios<F, S>;
  /** Checks this plugin opts out of, each with the reason (printed in the test name). */
  skip?: Partial<Record<ConformanceCheck, string>>;
  /**
   * What a new instance sees of work launched by a previous one: `"resumes"` (durable
   * work: it reaches `succeeded`) or `"reports-lost"` (work that dies with the engine,
   * like the `process` backend: a system failure). @default "resumes"
   */
  reattach?: "resumes" | "reports-lost";
  /** Per-check timeout. @default 60000 */
  timeoutMs?: number;
  /** Nodes in the limits check's workflow. @default 2 × maxConcurrent + 1 (at least 3) */
  limitTasks?: number;
}

function requireVitest(): Vitest {
  if (!vitest) {
    throw new TernError(ErrorCodes.CONFIG, "testBackendPlugin needs vitest, which is not installed", {
      hint: "add vitest to your devDependencies (it is an optional peer dependency of @tern/testkit)",
    });
  }
  return vitest;
}

function matchesLine(lines: string[], want: string | RegExp): boolean {
  return lines.some((l) => (typeof want === "string" ? l.includes(want) : want.test(l)));
}

/** Registers the conformance tests of one backend plugin (call it at the top level of a test file). */
export function testBackendPlugin<F = undefined, S extends Json = Json>(
  suite: BackendPluginSuite<F, S>,
): void {
  const { describe, it, expect, beforeAll, afterAll } = requireVitest();
  const timeout = suite.timeoutMs ?? 60_000;
  const sc = suite.scenarios;

  describe(`backend plugin conformance: ${suite.name}`, () => {
    let fake: F;
    let workDir: string;
    let ownDir: string | undefined;
    const instances: BackendPlugin<S>[] = [];

    beforeAll(async () => {
      fake = (suite.fake ? await suite.fake.start() : undefined) as F;
      const given = suite.fake?.workDir?.(fake);
      if (given) workDir = given;
      else workDir = ownDir = mkdtempSync(path.join(os.tmpdir(), "tern-conformance-"));
    });

    afterAll(async () => {
      for (const p of instances.splice(0)) await p.close?.();
      if (suite.fake?.stop) await suite.fake.stop(fake);
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    });

    const fresh = async (): Promise<BackendPlugin<S>> => {
      const p = await suite.create(fake);
      instances.push(p);
      return p;
    };
    const context = (s: Scenario, node: string, extra: { interruptible?: boolean } = {}): TestTaskContext =>
      makeTaskContext(s.task, s.inputs ?? {}, {
        workDir,
        executionId: testId("conf"),
        nodeId: node,
        ...extra,
      });
    const isActive = async (p: BackendPlugin<S>, ctx: TaskContext, state: S): Promise<boolean> => {
      if (suite.fake?.isActive) return suite.fake.isActive(fake, ctx, state);
      return (await p.check(ctx, state)).phase === "running";
    };
    const countExternal = (ctx: TaskContext, state: S): number | Promise<number> => {
      if (!suite.fake?.countExternal) {
        throw new Error(
          `conformance suite "${suite.name}": give fake.countExternal to count external jobs, or skip this check with a reason`,
        );
      }
      return suite.fake.countExternal(fake, ctx, state);
    };
    const check = (name: ConformanceCheck, title: string, fn: () => Promise<void>) => {
      const skipped = suite.skip && Object.hasOwn(suite.skip, name);
      if (skipped) {
        const reason = suite.skip![name];
        it(`SKIPPED BY PLUGIN — ${name}: ${reason?.trim() || "(no reason given)"}`, () => {
          expect(
            typeof reason === "string" && reason.trim().length > 0,
            `plugin "${suite.name}" opts out of "${name}" without saying why`,
          ).toBe(true);
        });
        return;
      }
      it(`${name}: ${title}`, fn, timeout);
    };
    /** Launch, run to the end, then finalize; returns the terminal status and what the engine would read. */
    const runScenario = async (p: BackendPlugin<S>, s: Scenario, node: string) => {
      const ctx = context(s, node);
      const state = await p.launch(ctx);
      try {
        const status = await driveToTerminal(p, ctx, state, timeout);
        return { ctx, state, status, ...(await readOutcome(ctx, status)) };
      } finally {
        await p.finalize?.(ctx, state);
      }
    };
    const runFault = async (
      p: BackendPlugin<S>,
      s: FaultScenario<F, S>,
      node: string,
      interruptible: boolean,
    ) => {
      const ctx = context(s, node, { interruptible });
      const state = await p.launch(ctx);
      try {
        await waitUntil(() => isActive(p, ctx, state), timeout / 2, `the ${node} work to be running`);
        await s.induce(fake, ctx, state);
        return await driveToTerminal(p, ctx, state, timeout);
      } finally {
        await p.finalize?.(ctx, state);
      }
    };

    check("contract", "declares an id, task types and a compatible contract version", async () => {
      const p = await fresh();
      expect(typeof p.id === "string" && p.id.length > 0, "the plugin has an id").toBe(true);
      expect(p.taskTypes.length, "the plugin runs at least one task type").toBeGreaterThan(0);
      expect(
        p.contractVersion,
        "the plugin declares contractVersion (CONTRACT_VERSION of the core it was built with)",
      ).toBeTypeOf("string");
      expect(() => checkContractVersion(p.id, p.contractVersion)).not.toThrow();
      for (const s of [
        sc.success,
        sc.userFailure,
        sc.systemFailure,
        sc.longRunning,
        sc.preemption,
        sc.logs,
      ]) {
        if (!s) continue;
        expect(p.taskTypes, `scenario task "${s.task.id.name}" has a type the plugin runs`).toContain(
          s.task.type,
        );
        if (p.validate) expect(() => p.validate!(s.task)).not.toThrow();
      }
    });

    check("state-json", "the launch state survives a JSON round trip", async () => {
      const p = await fresh();
      const ctx = context(sc.success, "statejson");
      const state = await p.launch(ctx);
      try {
        expect(JSON.parse(JSON.stringify(state))).toEqual(state);
        const status = await driveToTerminal(p, ctx, JSON.parse(JSON.stringify(state)) as S, timeout);
        expect(status.phase).toBe("succeeded");
      } finally {
        await p.finalize?.(ctx, state);
      }
    });

    check("launch-idempotent", "launching an attempt twice starts one external job", async () => {
      const p = await fresh();
      const ctx = context(sc.success, "idem");
      const [a, b] = await Promise.all([p.launch(ctx), p.launch(ctx)]);
      try {
        expect(b).toEqual(a);
        expect(await p.launch(ctx)).toEqual(a);
        const status = await driveToTerminal(p, ctx, a, timeout);
        expect(status.phase).toBe("succeeded");
        expect(await countExternal(ctx, a), "external jobs for one attempt id").toBe(1);
      } finally {
        await p.finalize?.(ctx, a);
      }
    });

    check(
      "check-no-side-effects",
      "repeated checks change neither the state nor the external world",
      async () => {
        const p = await fresh();
        const ctx = context(sc.success, "pure");
        const state = await p.launch(ctx);
        try {
          const snapshot = JSON.stringify(state);
          const writes = async () => JSON.stringify((await suite.fake?.writes?.(fake)) ?? null);
          const before = await writes();
          const first = await p.check(ctx, state);
          for (let i = 0; i < 4; i++) await p.check(ctx, state);
          expect(await writes(), "writes to the external world while checking a running attempt").toBe(
            before,
          );
          expect(first.phase).not.toBe("failed");
          const end = await driveToTerminal(p, ctx, state, timeout);
          const atEnd = await writes();
          for (let i = 0; i < 5; i++) expect((await p.check(ctx, state)).phase).toBe(end.phase);
          expect(await writes(), "writes to the external world while checking a finished attempt").toBe(
            atEnd,
          );
          expect(JSON.stringify(state), "check must not modify the state").toBe(snapshot);
        } finally {
          await p.finalize?.(ctx, state);
        }
      },
    );

    check("success", "a successful task succeeds with its outputs", async () => {
      const r = await runScenario(await fresh(), sc.success, "ok");
      expect(r.status.phase, JSON.stringify(r.status)).toBe("succeeded");
      expect(r.error).toBeUndefined();
      expect(r.outputs).toEqual(sc.success.outputs);
    });

    check("user-failure", "a failing task fails with a user error", async () => {
      const r = await runScenario(await fresh(), sc.userFailure, "userfail");
      expect(r.status.phase, JSON.stringify(r.status)).toBe("failed");
      expect(r.status.error?.kind, JSON.stringify(r.status.error)).toBe("user");
      expect(r.status.preempted).not.toBe(true);
      const want = sc.userFailure.message;
      if (want !== undefined) {
        const msg = r.status.error?.message ?? "";
        if (typeof want === "string") expect(msg).toContain(want);
        else expect(msg).toMatch(want);
      }
    });

    check("system-failure", "infrastructure trouble fails the attempt with a system error", async () => {
      const status = await runFault(await fresh(), sc.systemFailure, "sysfail", false);
      expect(status.phase, JSON.stringify(status)).toBe("failed");
      expect(status.error?.kind, JSON.stringify(status.error)).toBe("system");
    });

    if (sc.preemption || suite.skip?.preemption !== undefined) {
      check("preemption", "a preempted attempt is reported as preempted (a system retry)", async () => {
        const status = await runFault(await fresh(), sc.preemption!, "preempt", true);
        expect(status.phase, JSON.stringify(status)).toBe("failed");
        expect(status.preempted === true || status.error?.kind === "system", JSON.stringify(status)).toBe(
          true,
        );
      });
    } else {
      it("preemption: no scenario given and not opted out", () => {
        expect.fail(
          `conformance suite "${suite.name}": give scenarios.preemption, or skip: { preemption: "<why this plugin cannot be preempted>" }`,
        );
      });
    }

    check("abort", "abort stops the work and is idempotent", async () => {
      const p = await fresh();
      const ctx = context(sc.longRunning, "abort");
      const state = await p.launch(ctx);
      try {
        await waitUntil(() => isActive(p, ctx, state), timeout / 2, "the long-running work to be running");
        ctx.abort("aborted by the conformance suite");
        await p.abort(ctx, state);
        await p.abort(ctx, state);
        if (suite.fake?.isActive)
          await waitUntil(
            async () => !(await isActive(p, ctx, state)),
            timeout / 2,
            "the aborted work to stop",
          );
        const after = await driveToTerminal(p, ctx, state, timeout);
        expect(["aborted", "failed"], JSON.stringify(after)).toContain(after.phase);
      } finally {
        await p.finalize?.(ctx, state);
      }
    });

    check("reattach", "a new plugin instance follows work launched by a previous one", async () => {
      const a = await fresh();
      const ctx = context(sc.success, "reattach");
      const state = await a.launch(ctx);
      const persisted = JSON.parse(JSON.stringify(state)) as S;
      // The engine "restarts": the old instance goes away; a new one gets the persisted state.
      await a.close?.();
      const b = await fresh();
      const ctxB = makeTaskContext(sc.success.task, sc.success.inputs ?? {}, {
        workDir,
        executionId: ctx.execution.id,
        nodeId: ctx.node.id,
        attemptId: ctx.attempt.id,
        blobs: ctx.blobs,
      });
      try {
        const status = await driveToTerminal(b, ctxB, persisted, timeout);
        if ((suite.reattach ?? "resumes") === "resumes") {
          expect(status.phase, JSON.stringify(status)).toBe("succeeded");
          expect((await readOutcome(ctxB, status)).outputs).toEqual(sc.success.outputs);
          if (suite.fake?.countExternal)
            expect(await countExternal(ctxB, persisted), "external jobs after re-attaching").toBe(1);
        } else {
          expect(status.phase, JSON.stringify(status)).toBe("failed");
          expect(status.error?.kind).toBe("system");
        }
      } finally {
        await b.finalize?.(ctxB, persisted);
      }
    });

    check(
      "limits",
      "declared limits hold when a real engine runs more tasks than maxConcurrent",
      async () => {
        const p = await fresh();
        const max = p.limits?.maxConcurrent;
        const n = suite.limitTasks ?? Math.max(3, (max ?? 1) * 2 + 1);
        const tracked = trackConcurrency(p);
        const te = await startTestEngine({
          workDir,
          catalog: false,
          plugins: [asTernPlugin(`${suite.name} (conformance)`, tracked.plugin)],
          backendConfig: { defaultForTaskTypes: Object.fromEntries(p.taskTypes.map((t) => [t, p.id])) },
        });
        try {
          const result = await te.run(wideWorkflow(sc.success.task, sc.success.inputs ?? {}, n));
          expect(result.error, JSON.stringify(result.error)).toBeUndefined();
          expect(result.phase).toBe("succeeded");
          expect(result.outputs).toEqual(Array.from({ length: n }, () => sc.success.outputs));
          expect(tracked.launches).toBe(n);
          if (max)
            expect(tracked.max, `attempts in flight at once (maxConcurrent ${max})`).toBeLessThanOrEqual(max);
          else expect(tracked.max).toBeGreaterThanOrEqual(1);
        } finally {
          await te.close();
        }
      },
    );

    check("logs", "logs() yields the lines the task wrote", async () => {
      const p = await fresh();
      if (!p.logs) {
        expect(p.logs, "the plugin implements no logs(): nothing to check").toBeUndefined();
        return;
      }
      const s = sc.logs;
      if (!s)
        throw new Error(
          `conformance suite "${suite.name}": the plugin implements logs(); give scenarios.logs, or skip: { logs: "why" }`,
        );
      const ctx = context(s, "logs");
      const state = await p.launch(ctx);
      try {
        const status = await driveToTerminal(p, ctx, state, timeout);
        expect(status.phase, JSON.stringify(status)).toBe("succeeded");
        const lines: string[] = [];
        const read = (async () => {
          for await (const l of p.logs!(ctx, state)) lines.push(l);
        })();
        await Promise.race([
          read,
          waitUntil(() => s.lines.every((w) => matchesLine(lines, w)), timeout / 2, "the expected log lines"),
        ]);
        for (const w of s.lines)
          expect(matchesLine(lines, w), `log line ${String(w)} in ${JSON.stringify(lines)}`).toBe(true);
      } finally {
        await p.finalize?.(ctx, state);
      }
    });
  });
}
