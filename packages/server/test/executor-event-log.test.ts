/**
 * The event log of one execution: its end is recorded with its last batch, and an end
 * asked for while the log is busy writing node rows is not lost.
 */
import { describe, expect, it } from "vitest";
import { EventLog, EventWriter } from "../src/executor/index.js";
import type { Store } from "../src/store/index.js";
import { useStores } from "./helpers/store.js";

const stores = useStores("sqlite");
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function owned(store: Store, id: string): Promise<void> {
  await store.executions.create({
    id,
    project: "default",
    domain: "development",
    workflow: { name: "wf", version: "v1" },
    inputs: {},
    spec: {},
    phase: "running",
    owner: "me",
    leaseExpiresAt: Date.now() + 60_000,
  });
}

describe("EventLog", () => {
  it("stores its last events and the execution's end in one write, giving the lease up", async () => {
    const store = await stores.open();
    await owned(store, "e1");
    const groups: number[] = [];
    const writeGroup = store.events.writeGroup.bind(store.events);
    store.events.writeGroup = async (g) => {
      groups.push(g.appends?.length ?? 0);
      return writeGroup(g);
    };
    const log = new EventLog({
      store,
      execution: "e1",
      owner: "me",
      logger: quiet,
      onLost() {},
      writer: new EventWriter(store),
    });
    log.push({ seq: 1, at: 1, execution: "e1", node: "n0", phase: "running", attempt: 1 });
    log.push({ seq: 2, at: 2, execution: "e1", node: "n0", phase: "succeeded", attempt: 1, outputs: 3 });
    log.push({ seq: 3, at: 3, execution: "e1", phase: "succeeded", outputs: 3 });
    expect(await log.end({ phase: "succeeded", outputs: 3, endedAt: 3 })).toBe(true);
    expect(groups).toEqual([1]);
    expect(await store.events.lastSeq("e1")).toBe(3);
    const rec = await store.executions.get("e1");
    expect(rec).toMatchObject({ phase: "succeeded", outputs: 3, endedAt: 3 });
    expect(rec?.owner).toBeUndefined();
    expect((await store.nodes.get("e1", "n0"))?.phase).toBe("succeeded");
  });

  it("records an end asked for while node rows are being written", async () => {
    const store = await stores.open();
    await owned(store, "e2");
    const log = new EventLog({
      store,
      execution: "e2",
      owner: "me",
      logger: quiet,
      onLost() {},
      writer: new EventWriter(store),
    });
    log.push({ seq: 1, at: 1, execution: "e2", node: "n0", phase: "succeeded", attempt: 1, outputs: 1 });
    await log.drain();
    // A resumed execution rewrites its node rows: slowly here, and its end comes meanwhile.
    let asked!: () => void;
    const writing = new Promise<void>((r) => (asked = r));
    const putMany = store.nodes.putMany.bind(store.nodes);
    store.nodes.putMany = async (rows) => {
      asked();
      await new Promise((r) => setTimeout(r, 50));
      return putMany(rows);
    };
    log.projection.mark("n0");
    log.writeProjectionSoon();
    await writing;
    const ended = log.end({ phase: "succeeded", outputs: 1, endedAt: 9 });
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r("hung"), 5000))])).toBe(true);
    expect(await store.executions.get("e2")).toMatchObject({ phase: "succeeded", endedAt: 9 });
  });

  it("records no end once the store refused the log (the execution is another replica's)", async () => {
    const store = await stores.open();
    await owned(store, "e3");
    let lost = false;
    const log = new EventLog({
      store,
      execution: "e3",
      owner: "not-me",
      logger: quiet,
      onLost: () => (lost = true),
      writer: new EventWriter(store),
    });
    log.push({ seq: 1, at: 1, execution: "e3", phase: "running" });
    expect(await log.end({ phase: "failed", endedAt: 1 })).toBe(false);
    expect(lost).toBe(true);
    expect(await store.executions.get("e3")).toMatchObject({ phase: "running", owner: "me" });
  });
});
