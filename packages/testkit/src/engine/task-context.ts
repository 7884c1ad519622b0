/**
 * `makeTaskContext`: a `TaskContext` as the engine builds one, for driving a backend
 * plugin directly in a test: a local blob store, a `notify` spy that can be awaited, and a
 * logger that keeps its lines.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  type BlobStore,
  type Json,
  LocalBlobStore,
  stripLocal,
  type TaskContext,
  type TaskLogger,
  type TaskSpec,
} from "@tern/core";

/** What to change in a context made by {@link makeTaskContext}. */
export interface TaskContextOverrides {
  /** @default a fresh `c<hex>` id */
  executionId?: string;
  /** @default "development" */
  domain?: string;
  /** @default the task's project */
  project?: string;
  /** @default "n0" */
  nodeId?: string;
  /** 1-based. @default 1 */
  attempt?: number;
  /** @default `${executionId}-${nodeId}-${attempt}`, as the engine makes it */
  attemptId?: string;
  /** @default false */
  interruptible?: boolean;
  /** Project directory (bundles live under `.tern/bundles`). @default a temporary directory per process */
  workDir?: string;
  /** @default a LocalBlobStore under `<workDir>/.tern/blobs`, as the engine uses */
  blobs?: BlobStore;
}

/** A TaskContext with test hooks. */
export interface TestTaskContext extends TaskContext {
  /** How many times the plugin called `notify()`. */
  readonly notifications: number;
  /** Lines written through `ctx.logger`, as `LEVEL message`. */
  readonly lines: string[];
  /** Resolves true at the next `notify()` (or at once if one is pending), false after `timeoutMs`. */
  waitForNotify(timeoutMs: number): Promise<boolean>;
  /** Fires `ctx.signal`, as the engine does when it stops the attempt. */
  abort(reason?: string): void;
}

let sharedDir: string | undefined;

/** One temporary project directory per process for contexts that name none; removed at exit. */
function defaultWorkDir(): string {
  if (!sharedDir) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tern-testkit-"));
    sharedDir = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return sharedDir;
}

/** A fresh lowercase id that starts with a letter (valid in pod names and URLs). */
export function testId(prefix = "c"): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}

/**
 * Builds the context the engine would give a plugin for one attempt.
 *
 * @example
 * const ctx = makeTaskContext(spec, { x: 1 }, { workDir });
 * const state = await plugin.launch(ctx);
 * while (!["succeeded", "failed"].includes((await plugin.check(ctx, state)).phase)) await ctx.waitForNotify(200);
 */
export function makeTaskContext(
  spec: TaskSpec,
  inputs: Record<string, Json> = {},
  overrides: TaskContextOverrides = {},
): TestTaskContext {
  const executionId = overrides.executionId ?? testId();
  const project = overrides.project ?? spec.id.project;
  const domain = overrides.domain ?? spec.id.domain ?? "development";
  const nodeId = overrides.nodeId ?? "n0";
  const number = overrides.attempt ?? 1;
  const workDir = overrides.workDir ?? defaultWorkDir();
  const blobs = overrides.blobs ?? new LocalBlobStore(path.join(workDir, ".tern", "blobs"));
  const checkpointPrefix = `executions/${project}/${domain}/${executionId}/${nodeId}`;
  const outputPrefix = `${checkpointPrefix}/${number}`;
  const ac = new AbortController();
  const lines: string[] = [];
  let notifications = 0;
  let pending = false;
  let waiters: (() => void)[] = [];
  const log =
    (level: string): TaskLogger["info"] =>
    (msg, fields) => {
      lines.push(`${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`);
    };
  let inputsUri: Promise<string> | undefined;
  const ctx: TestTaskContext = {
    execution: Object.freeze({ id: executionId, project, domain }),
    node: Object.freeze({ id: nodeId }),
    attempt: Object.freeze({
      id: overrides.attemptId ?? `${executionId}-${nodeId}-${number}`,
      number,
      interruptible: overrides.interruptible ?? false,
    }),
    task: spec,
    inputs,
    inputsUri: () =>
      (inputsUri ??= blobs.put(`${outputPrefix}/inputs.json`, JSON.stringify(stripLocal(inputs)))),
    outputPrefix,
    checkpointPrefix,
    blobs,
    logger: { debug: log("DEBUG"), info: log("INFO"), warn: log("WARN"), error: log("ERROR") },
    workDir,
    signal: ac.signal,
    notify: () => {
      notifications++;
      const ws = waiters;
      waiters = [];
      if (ws.length === 0) pending = true;
      for (const w of ws) w();
    },
    get notifications() {
      return notifications;
    },
    lines,
    waitForNotify(timeoutMs: number): Promise<boolean> {
      if (pending) {
        pending = false;
        return Promise.resolve(true);
      }
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          waiters = waiters.filter((w) => w !== wake);
          resolve(false);
        }, timeoutMs);
        const wake = () => {
          clearTimeout(t);
          resolve(true);
        };
        waiters.push(wake);
      });
    },
    abort: (reason?: string) => ac.abort(reason ?? "aborted by the test"),
  };
  return ctx;
}
