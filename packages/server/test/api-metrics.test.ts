/**
 * Metrics folded from execution events: node latency from `running` to the
 * terminal event (cache hits left out), system errors by plugin, finished
 * executions by phase, and the store-counted gauges.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Metrics } from "../src/metrics.js";
import { Store } from "../src/store/store.js";

let dir: string;
let store: Store;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-metrics-"));
  store = await Store.open(`sqlite:${path.join(dir, "m.db")}`);
});

afterAll(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const ev = (seq: number, at: number, fields: Record<string, unknown>) =>
  ({ seq, at, execution: "x1", phase: "running", ...fields }) as never;

/** The value of one sample line of the exposition text. */
function sample(text: string, line: string): number | undefined {
  const m = new RegExp(`^${line.replace(/[{}()[\]|.+*?^$\\]/g, "\\$&")} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

describe("Metrics", () => {
  it("measures node latency from running to the end, by phase and plugin", async () => {
    const m = new Metrics({ processMetrics: false });
    m.observeEvents("x1", [
      ev(1, 1000, { phase: "running" }),
      ev(2, 1000, { node: "a", phase: "queued" }),
      ev(3, 1001, { node: "a", phase: "initializing", attempt: 1, plugin: "k8s" }),
      ev(4, 1500, { node: "a", phase: "running", attempt: 1 }),
      ev(5, 3000, { node: "a", phase: "succeeded", attempt: 1 }),
      ev(6, 3000, { node: "b", phase: "succeeded", cached: true }),
      ev(7, 3001, { phase: "succeeded" }),
    ]);
    const { text } = await m.render();
    expect(sample(text, 'tern_node_duration_seconds_count{phase="succeeded",plugin="k8s"}')).toBe(1);
    expect(sample(text, 'tern_node_duration_seconds_sum{phase="succeeded",plugin="k8s"}')).toBe(1.5);
    expect(sample(text, 'tern_node_duration_seconds_bucket{le="1",phase="succeeded",plugin="k8s"}')).toBe(0);
    expect(sample(text, 'tern_node_duration_seconds_bucket{le="5",phase="succeeded",plugin="k8s"}')).toBe(1);
    expect(text).not.toContain('plugin="none"');
    expect(sample(text, 'tern_executions_finished_total{phase="succeeded"}')).toBe(1);
  });

  it("counts system errors of attempts by plugin and code, not the user's errors", async () => {
    const m = new Metrics({ processMetrics: false });
    m.observeEvents("x2", [
      ev(1, 0, { node: "n", phase: "initializing", attempt: 1, plugin: "spark" }),
      ev(2, 10, { node: "n", phase: "running", attempt: 1 }),
      ev(3, 20, {
        node: "n",
        phase: "retrying",
        attempt: 1,
        error: { code: "TERN_E_SYSTEM", kind: "system", message: "pod evicted" },
      }),
      ev(4, 30, { node: "n", phase: "running", attempt: 2 }),
      ev(5, 40, {
        node: "n",
        phase: "failed",
        attempt: 2,
        error: { code: "TERN_E_TASK_FAILED", kind: "user", message: "bug" },
      }),
      ev(6, 41, { phase: "failed" }),
    ]);
    const { text } = await m.render();
    expect(sample(text, 'tern_plugin_errors_total{plugin="spark",code="TERN_E_SYSTEM"}')).toBe(1);
    expect(text).not.toContain('code="TERN_E_TASK_FAILED"');
    expect(sample(text, 'tern_node_duration_seconds_count{phase="retrying",plugin="spark"}')).toBe(1);
    expect(sample(text, 'tern_node_duration_seconds_count{phase="failed",plugin="spark"}')).toBe(1);
    expect(sample(text, 'tern_executions_finished_total{phase="failed"}')).toBe(1);
  });

  it("counts executions by phase and the queue from the store on scrape, and observes appends", async () => {
    const m = new Metrics({ store, processMetrics: false });
    m.instrument(store);
    for (const [id, phase] of [
      ["e1", "queued"],
      ["e2", "queued"],
      ["e3", "running"],
    ] as const) {
      await store.executions.create({
        id,
        project: "default",
        domain: "development",
        workflow: { name: "w", version: "1" },
        phase,
        inputs: {},
        spec: {},
      });
    }
    await store.events.append("e3", [
      ev(1, 5, { execution: "e3", phase: "running" }),
      ev(2, 9, { execution: "e3", phase: "aborted" }),
    ]);
    const { text, contentType } = await m.render();
    expect(contentType).toContain("text/plain");
    expect(sample(text, 'tern_executions{phase="queued"}')).toBe(2);
    expect(sample(text, 'tern_executions{phase="running"}')).toBe(1);
    expect(sample(text, 'tern_executions{phase="failed"}')).toBe(0);
    expect(sample(text, "tern_queue_depth")).toBe(2);
    expect(sample(text, 'tern_executions_finished_total{phase="aborted"}')).toBe(1);
  });

  it("keeps the lease fence of appends it observes, and counts nothing refused", async () => {
    const m = new Metrics({ processMetrics: false });
    const s2 = await Store.open(`sqlite:${path.join(dir, "fence.db")}`);
    try {
      m.instrument(s2);
      await s2.executions.create({
        id: "f1",
        project: "default",
        domain: "development",
        workflow: { name: "w", version: "1" },
        inputs: {},
        spec: {},
      });
      const refused = await s2.events
        .append("f1", [ev(1, 1, { execution: "f1", phase: "succeeded" })], { owner: "not-the-owner" })
        .then(
          () => undefined,
          (e) => e,
        );
      expect(refused?.code).toBe("TERN_E_CONFLICT");
      expect(await s2.events.lastSeq("f1")).toBe(0);
      expect((await m.render()).text).not.toContain("tern_executions_finished_total{");
    } finally {
      await s2.close();
    }
  });
});
