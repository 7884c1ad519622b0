/**
 * The executor in one process (SQLite store, process backend, bundled tasks): event
 * appends that fail are retried in order; a replica that loses its lease detaches
 * (its work keeps running) and the replica that takes over finishes without running
 * anything twice; a clean close hands executions over the same way; terminate stops
 * the work. The workers run the built core: `tsc -b packages/core` first.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type ExecutionEvent, type Json, LocalBlobStore } from "@tern/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Executor, type ExecutorActivity, readAllEvents } from "../src/executor/index.js";
import type { Store } from "../src/store/index.js";
import {
  createDurableProject,
  type DurableProject,
  isAlive,
  ranTwice,
  readBodyLog,
  waitFor,
} from "./helpers/durable-project.js";
import { useStores } from "./helpers/store.js";

let project: DurableProject;
const stores = useStores("sqlite");
const executors: Executor[] = [];
let n = 0;

beforeAll(async () => {
  project = await createDurableProject({ width: 3, layers: 2 });
}, 60_000);
afterEach(async () => {
  await Promise.all(executors.splice(0).map((e) => e.close()));
});
afterAll(() => {
  if (project) fs.rmSync(project.root, { recursive: true, force: true });
});

async function executor(
  store: Store,
  owner: string,
  activity?: ExecutorActivity[],
  extra: { maxExecutions?: number } = {},
): Promise<Executor> {
  const ex = await Executor.create({
    ...extra,
    store,
    blobs: new LocalBlobStore(path.join(project.root, ".tern", "blobs")),
    workDir: project.root,
    owner,
    workers: 2,
    leaseTtlMs: 3000,
    claimIntervalMs: 200,
    onActivity: (a) => activity?.push(a),
  });
  executors.push(ex);
  return ex;
}

/** Launch `layered` with a fresh body log; `slow` sleeps `slowMs`. */
async function launch(ex: Executor, slow = "", slowMs = 0) {
  const { rec, log } = await launchRecord(ex, slow, slowMs);
  return { id: rec.id, log };
}

async function launchRecord(ex: Executor, slow = "", slowMs = 0) {
  const log = path.join(project.root, `bodies-${n++}.log`);
  const rec = await ex.launch({
    project: project.compiled.workflow.id.project,
    domain: project.compiled.workflow.id.domain,
    compiled: project.compiled,
    inputs: { log, ms: 100, slow, slowMs },
  });
  return { rec, log };
}

async function finished(store: Store, id: string, timeoutMs = 60_000) {
  return waitFor(
    `execution ${id} to finish`,
    async () => {
      const r = await store.executions.get(id);
      return r && ["succeeded", "failed", "aborted"].includes(r.phase) ? r : undefined;
    },
    timeoutMs,
    100,
  );
}

function drivers(events: readonly ExecutionEvent[]): string[] {
  return events
    .filter((e) => !e.node && e.phase === "running" && /^(claimed|resumed) by/.test(e.message ?? ""))
    .map((e) => e.message!.split(" ")[2]);
}

describe("Executor", () => {
  it("takes a launched execution at once while it has room, and queues it for a claim round when full", async () => {
    const store = await stores.open();
    const ex = await executor(store, "roomy", undefined, { maxExecutions: 1 });
    ex.start();
    const first = await launchRecord(ex, "l0_0", 1000);
    // Created already ours and running: no claim round, no queued → running write.
    expect(first.rec).toMatchObject({ phase: "running", owner: "roomy" });
    expect(first.rec.startedAt).toBeTypeOf("number");
    const second = await launchRecord(ex);
    expect(second.rec.phase).toBe("queued");
    expect(second.rec.owner).toBeUndefined();
    for (const { rec } of [first, second]) {
      const done = await finished(store, rec.id);
      expect(done).toMatchObject({ phase: "succeeded", outputs: project.expected });
      // Finishing gave the lease up in the same write.
      expect(done.owner).toBeUndefined();
      expect(drivers(await readAllEvents(store, rec.id))).toEqual(["roomy"]);
    }
    // The second started only once the first had ended (one execution at a time).
    const secondStart = (await store.executions.get(second.rec.id))!.startedAt!;
    expect(secondStart).toBeGreaterThanOrEqual((await store.executions.get(first.rec.id))!.endedAt!);
  });

  it("replays a driven execution's whole history, stored or not, to a subscriber that gives its position", async () => {
    const store = await stores.open();
    const ex = await executor(store, "history");
    ex.start();
    const { id, log } = await launch(ex, "l0_1", 1500);
    await waitFor("the slow node to start", () => readBodyLog(log).some((r) => r.node === "l0_1"), 30_000);
    expect(ex.drives(id)).toBe(true);
    const storedBefore = await store.events.lastSeq(id);
    expect(storedBefore).toBeGreaterThan(2);
    // From seq 2 on: what the store has (read from memory, not from it) and everything after.
    const seen: ExecutionEvent[] = [];
    const off = ex.subscribe(id, (e) => seen.push(e), 2);
    expect(seen[0]?.seq).toBe(3);
    const rec = await finished(store, id);
    off();
    expect(rec.phase).toBe("succeeded");
    const stored = await readAllEvents(store, id);
    expect(seen.map((e) => [e.seq, e.node, e.phase])).toEqual(
      stored.slice(2).map((e) => [e.seq, e.node, e.phase]),
    );
    expect(ex.drives(id)).toBe(false);
    expect(ex.record(id)).toBeUndefined();
  });

  it("retries failed appends without losing or reordering events", async () => {
    const store = await stores.open();
    const realAppend = store.events.append.bind(store.events);
    const realWriteGroup = store.events.writeGroup.bind(store.events);
    let failures = 0;
    // Every third write of events (a group commit, or a lone append after one failed) fails
    // once, as a locked or unreachable database would.
    store.events.append = async (...args: Parameters<Store["events"]["append"]>) => {
      if (++failures % 3 === 0) throw new Error("database is locked (injected)");
      return realAppend(...args);
    };
    store.events.writeGroup = async (...args: Parameters<Store["events"]["writeGroup"]>) => {
      if (!args[0].creates?.length && ++failures % 3 === 0) throw new Error("database is locked (injected)");
      return realWriteGroup(...args);
    };
    const ex = await executor(store, "flaky-store");
    ex.start();
    const { id } = await launch(ex);
    const live: ExecutionEvent[] = [];
    ex.subscribe(id, (e) => live.push(e));
    const rec = await finished(store, id);
    expect(rec.phase).toBe("succeeded");
    expect(rec.outputs).toBe(project.expected);
    expect(failures).toBeGreaterThan(3);
    const stored = await readAllEvents(store, id);
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
    // What listeners saw live is exactly what was stored, in the same order.
    const tail = stored.slice(stored.length - live.length);
    expect(tail.map((e) => [e.seq, e.node, e.phase])).toEqual(live.map((e) => [e.seq, e.node, e.phase]));
    expect((await store.nodes.list(id)).every((r) => r.phase === "succeeded")).toBe(true);
  });

  it("detaches an execution whose lease another replica took, leaving its work running for the new owner", async () => {
    const store = await stores.open();
    const activityA: ExecutorActivity[] = [];
    const a = await executor(store, "replica-a", activityA);
    a.start();
    const { id, log } = await launch(a, "l0_1", 2500);
    await waitFor("the slow node to start", () => readBodyLog(log).some((r) => r.node === "l0_1"), 30_000);
    const slowPid = readBodyLog(log).find((r) => r.node === "l0_1")!.pid;

    // Another replica holds the execution now (as after a lease lapse during a partition).
    await store.database.db
      .updateTable("executions")
      .set({ owner: "thief", lease_expires_at: Date.now() + 60_000 })
      .where("id", "=", id)
      .execute();
    await waitFor(
      "replica A to detach the execution",
      () => activityA.some((x) => x.type === "detached" && x.execution === id),
      10_000,
    );
    expect(a.active).not.toContain(id);
    const rec = await store.executions.get(id);
    expect(rec?.phase).toBe("running");
    expect((await readAllEvents(store, id)).filter((e) => e.phase === "aborted")).toEqual([]);
    // The work was not stopped.
    expect(isAlive(slowPid)).toBe(true);

    // The thief gives it up; replica B claims it and finishes it.
    await store.database.db
      .updateTable("executions")
      .set({ owner: null, lease_expires_at: null })
      .where("id", "=", id)
      .execute();
    const b = await executor(store, "replica-b");
    b.start();
    const done = await finished(store, id);
    expect(done.phase).toBe("succeeded");
    expect(done.outputs).toBe(project.expected);
    expect(ranTwice(readBodyLog(log))).toEqual([]);
    const events = await readAllEvents(store, id);
    expect(drivers(events)).toEqual(["replica-a", "replica-b"]);
    const slowLaunch = events.filter((e) => e.node === "l0_1" && e.phase === "initializing").at(-1);
    expect(slowLaunch?.pluginState).toMatchObject({ adopted: "running", pid: slowPid });
  });

  it("hands executions over on close: leases are given back and the next executor finishes the work", async () => {
    const store = await stores.open();
    const a = await executor(store, "closing");
    a.start();
    const { id, log } = await launch(a, "l1_2", 1500);
    await waitFor("the slow node to start", () => readBodyLog(log).some((r) => r.node === "l1_2"), 30_000);
    await a.close();
    const rec = await store.executions.get(id);
    expect(rec).toMatchObject({ phase: "running" });
    expect(rec?.owner).toBeUndefined();
    expect(isAlive(readBodyLog(log).find((r) => r.node === "l1_2")!.pid)).toBe(true);

    const b = await executor(store, "next");
    b.start();
    const done = await finished(store, id);
    expect(done.phase).toBe("succeeded");
    expect(ranTwice(readBodyLog(log))).toEqual([]);
    expect(readBodyLog(log)).toHaveLength(project.nodes.length);
    expect(drivers(await readAllEvents(store, id))).toEqual(["closing", "next"]);
  });

  it("terminates a running execution: its work is killed and it ends aborted", async () => {
    const store = await stores.open();
    const a = await executor(store, "terminator");
    a.start();
    const { id, log } = await launch(a, "l0_0", 60_000);
    await waitFor("the slow node to start", () => readBodyLog(log).some((r) => r.node === "l0_0"), 30_000);
    const pid = readBodyLog(log).find((r) => r.node === "l0_0")!.pid;
    const rec = await a.terminate(id, "stop it");
    expect(rec.phase).toBe("aborted");
    expect(rec.error).toMatchObject({ code: "TERN_E_ABORTED", message: "stop it" });
    await waitFor("the slow node's worker to be killed", () => !isAlive(pid), 10_000);
    const events = await readAllEvents(store, id);
    expect(events.at(-1)).toMatchObject({ phase: "aborted" });
    expect((await store.nodes.get(id, "l0_0"))?.phase).toBe("aborted");
  });

  it("refuses inputs that do not fit the workflow, naming the input", async () => {
    const store = await stores.open();
    const a = await executor(store, "validator");
    await expect(
      a.launch({
        project: "default",
        domain: "development",
        compiled: project.compiled,
        inputs: { log: 3 as unknown as Json, ms: 1 },
      }),
    ).rejects.toMatchObject({ code: "TERN_E_INPUT_INVALID", details: { input: "log" } });
    await expect(
      a.launch({ project: "default", domain: "development", compiled: project.compiled, inputs: { ms: 1 } }),
    ).rejects.toMatchObject({
      code: "TERN_E_INPUT_INVALID",
      message: expect.stringMatching(/needs input "log"/),
    });
  });
});
