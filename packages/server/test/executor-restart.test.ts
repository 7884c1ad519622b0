/**
 * Restart safety with a real `kill -9`: an executor in a child process (SQLite store,
 * process backend, a bundled workflow of 31 tasks) is SIGKILLed in the middle of an
 * execution, and a new one is started on the same database and directories. The
 * execution must finish with the right output, no task body may run twice, and the
 * attempts that were in flight must be adopted (their stored result, or the worker
 * still running them) rather than launched again.
 *
 * The children run the built packages: `tsc -b packages/core packages/server` first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ExecutionEvent } from "@tern/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAllEvents } from "../src/executor/index.js";
import { Store } from "../src/store/index.js";
import {
  CHILD_SCRIPT,
  createDurableProject,
  type DurableProject,
  isAlive,
  ranTwice,
  readBodyLog,
  waitFor,
} from "./helpers/durable-project.js";

let project: DurableProject;
const children: ChildProcess[] = [];

function startExecutor(cfg: Record<string, unknown>): ChildProcess {
  const child = spawn(process.execPath, [CHILD_SCRIPT, JSON.stringify(cfg)], {
    // stdin stays open while this test runs: the child leaves when it closes.
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  child.on("exit", (code, signal) => {
    if (code && code !== 0) process.stderr.write(`executor child exited with ${code}:\n${err}\n`);
    void signal;
  });
  children.push(child);
  return child;
}

function pluginStates(
  events: readonly ExecutionEvent[],
): { node: string; state: { pid: number | null; adopted?: string } }[] {
  return events
    .filter((e) => e.phase === "initializing" && e.node && e.pluginState)
    .map((e) => ({ node: e.node!, state: e.pluginState as { pid: number | null; adopted?: string } }));
}

beforeAll(async () => {
  project = await createDurableProject({ width: 6, layers: 5 });
  fs.writeFileSync(path.join(project.root, "layered.json"), JSON.stringify(project.compiled));
}, 60_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  if (project) fs.rmSync(project.root, { recursive: true, force: true });
});

describe("Executor restart (kill -9)", () => {
  it("finishes every execution after a SIGKILL, adopts in-flight work and runs no task twice", async () => {
    const db = `sqlite:${path.join(project.root, "tern.db")}`;
    const bodyLog = path.join(project.root, "bodies.log");
    const base = {
      db,
      workDir: project.root,
      blobDir: path.join(project.root, ".tern", "blobs"),
      workers: 4,
      leaseTtlMs: 3000,
      claimIntervalMs: 500,
      activityFile: path.join(project.root, "activity.jsonl"),
    };
    const id = "xrestart1";
    const first = startExecutor({
      ...base,
      owner: "first",
      launch: [
        {
          id,
          project: project.compiled.workflow.id.project,
          domain: project.compiled.workflow.id.domain,
          compiledFile: path.join(project.root, "layered.json"),
          // l0_1 outlives the lease: it still runs in its orphaned worker when the second executor resumes.
          inputs: { log: bodyLog, ms: 400, slow: "l0_1", slowMs: 8000 },
        },
      ],
    });

    // Kill it once a dozen bodies have started: some nodes are done, some run in workers.
    await waitFor(
      "a dozen task bodies to start under the first executor",
      () => readBodyLog(bodyLog).length >= 12,
      60_000,
    );
    first.kill("SIGKILL");
    await waitFor("the first executor to die", () => first.signalCode === "SIGKILL", 10_000);
    const atKill = readBodyLog(bodyLog);
    expect(atKill.length).toBeLessThan(project.nodes.length);

    // A fresh executor on the same database and directories. The lease of the dead one
    // must lapse (3 s) before it can claim the execution.
    const second = startExecutor({ ...base, owner: "second" });
    const store = await Store.open(db);
    try {
      const rec = await waitFor(
        "the execution to finish under the second executor",
        async () => {
          const r = await store.executions.get(id);
          return r && ["succeeded", "failed", "aborted"].includes(r.phase) ? r : undefined;
        },
        90_000,
        200,
      );
      expect(rec.error).toBeUndefined();
      expect(rec.phase).toBe("succeeded");
      expect(rec.outputs).toBe(project.expected);

      // Every node's body ran exactly once, across both executors.
      const runs = readBodyLog(bodyLog).filter((r) => r.execution === id);
      expect(ranTwice(runs)).toEqual([]);
      expect(new Set(runs.map((r) => r.node))).toEqual(new Set(project.nodes));

      const events = await readAllEvents(store, id);
      // The history is one gapless sequence, and says who drove it.
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const owners = events.filter(
        (e) => !e.node && e.phase === "running" && /^(claimed|resumed) by/.test(e.message ?? ""),
      );
      expect(owners.map((e) => e.message!.split(" ")[2])).toEqual(["first", "second"]);
      const resumeAt = owners[1].seq;

      // Work in flight at the kill was adopted by the second executor, not launched again.
      const after = pluginStates(events.filter((e) => e.seq > resumeAt));
      const adopted = after.filter((s) => s.state.adopted);
      expect(adopted.length).toBeGreaterThan(0);
      const inFlightAtKill = new Set(atKill.map((r) => r.node));
      for (const a of adopted) expect(inFlightAtKill.has(a.node)).toBe(true);
      // The slow node was re-attached to the very worker process that was running it.
      const slow = adopted.find((a) => a.node === "l0_1");
      expect(slow?.state.adopted).toBe("running");
      expect(slow?.state.pid).toBe(atKill.find((r) => r.node === "l0_1")!.pid);
      // Nodes that succeeded before the kill were not launched at all after it.
      const succeededBefore = new Set(
        events.filter((e) => e.seq < resumeAt && e.phase === "succeeded" && e.node).map((e) => e.node),
      );
      expect(after.filter((s) => succeededBefore.has(s.node))).toEqual([]);

      // The first executor's workers finished their attempts and exited: none is left behind.
      const firstPids = new Set(
        pluginStates(events.filter((e) => e.seq < resumeAt))
          .map((s) => s.state.pid)
          .filter((p): p is number => !!p),
      );
      expect(firstPids.size).toBeGreaterThan(0);
      await waitFor(
        "the first executor's orphaned workers to exit",
        () => [...firstPids].every((p) => !isAlive(p)),
        10_000,
      );

      // The node projection agrees with the log.
      const nodes = await store.nodes.list(id);
      expect(
        nodes
          .filter((n) => n.phase === "succeeded")
          .map((n) => n.nodeId)
          .sort(),
      ).toEqual([...project.nodes].sort());
    } finally {
      await store.close();
      second.kill("SIGTERM");
      await waitFor(
        "the second executor to stop",
        () => second.exitCode !== null || second.signalCode !== null,
        15_000,
      );
    }
  }, 180_000);

  it("resumes at once on the same host: the dead process's executions are taken over without waiting for its lease", async () => {
    const db = `sqlite:${path.join(project.root, "fast.db")}`;
    const bodyLog = path.join(project.root, "fast-bodies.log");
    // A lease far longer than the test may wait: only the dead-owner takeover can finish it in time.
    const base = {
      db,
      workDir: project.root,
      blobDir: path.join(project.root, ".tern", "blobs"),
      workers: 4,
      leaseTtlMs: 120_000,
      claimIntervalMs: 500,
    };
    const id = "xfast1";
    const first = startExecutor({
      ...base,
      launch: [
        {
          id,
          project: project.compiled.workflow.id.project,
          domain: project.compiled.workflow.id.domain,
          compiledFile: path.join(project.root, "layered.json"),
          inputs: { log: bodyLog, ms: 300 },
        },
      ],
    });
    await waitFor("ten task bodies to start", () => readBodyLog(bodyLog).length >= 10, 60_000);
    first.kill("SIGKILL");
    await waitFor("the first executor to die", () => first.signalCode === "SIGKILL", 10_000);
    const second = startExecutor(base);
    const store = await Store.open(db);
    try {
      const rec = await waitFor(
        "the execution to finish (a restart on the same host must not wait for the 120 s lease)",
        async () => {
          const r = await store.executions.get(id);
          return r && ["succeeded", "failed", "aborted"].includes(r.phase) ? r : undefined;
        },
        60_000,
        200,
      );
      expect(rec.phase).toBe("succeeded");
      expect(rec.outputs).toBe(project.expected);
      expect(ranTwice(readBodyLog(bodyLog).filter((r) => r.execution === id))).toEqual([]);
      const owners = (await readAllEvents(store, id)).filter(
        (e) => !e.node && /^(claimed|resumed) by/.test(e.message ?? ""),
      );
      expect(owners).toHaveLength(2);
      expect(owners[1].message).toMatch(new RegExp(`^resumed by replica-[0-9a-f]+@.+#${second.pid}\\.`));
    } finally {
      await store.close();
      second.kill("SIGTERM");
      await waitFor(
        "the second executor to stop",
        () => second.exitCode !== null || second.signalCode !== null,
        15_000,
      );
    }
  }, 180_000);
});
