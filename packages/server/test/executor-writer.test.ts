/**
 * Group commit: batches handed to the writer together are stored in one transaction;
 * a refused batch fails alone; when the shared write fails, each batch is tried on its own.
 */
import { describe, expect, it } from "vitest";
import { EventWriter } from "../src/executor/index.js";
import type { Store } from "../src/store/index.js";
import { useStores } from "./helpers/store.js";

const stores = useStores("sqlite");

async function owned(store: Store, ids: string[]): Promise<void> {
  for (const id of ids) {
    await store.executions.create({
      id,
      project: "default",
      domain: "development",
      workflow: { name: "wf", version: "v1" },
      inputs: {},
      spec: {},
    });
  }
  await store.executions.claim("me", 60_000, ids.length);
}

describe("EventWriter", () => {
  it("stores the batches handed over together in one write, each with its own outcome", async () => {
    const store = await stores.open();
    const ids = Array.from({ length: 20 }, (_, i) => `w${i}`);
    await owned(store, ids);
    const writes: number[] = [];
    const writeGroup = store.events.writeGroup.bind(store.events);
    store.events.writeGroup = async (group) => {
      writes.push(group.appends?.length ?? 0);
      return writeGroup(group);
    };
    const writer = new EventWriter(store);
    const outcomes = await Promise.allSettled([
      ...ids.map((execution) =>
        writer.append({ execution, owner: "me", events: [{ seq: 1, at: 1, phase: "running" }] }),
      ),
      writer.append({
        execution: "w0",
        owner: "someone-else",
        events: [{ seq: 2, at: 2, phase: "running" }],
      }),
    ]);
    expect(outcomes.slice(0, 20).every((o) => o.status === "fulfilled")).toBe(true);
    expect(outcomes[20]).toMatchObject({ status: "rejected", reason: { code: "TERN_E_CONFLICT" } });
    expect(writes).toEqual([21]);
    for (const id of ids) expect(await store.events.lastSeq(id)).toBe(1);
  });

  it("tries each batch alone when the shared write fails", async () => {
    const store = await stores.open();
    await owned(store, ["f1", "f2"]);
    store.events.writeGroup = async () => {
      throw new Error("database is locked (injected)");
    };
    const writer = new EventWriter(store);
    const [a, b] = await Promise.allSettled([
      writer.append({ execution: "f1", owner: "me", events: [{ seq: 1, at: 1, phase: "running" }] }),
      writer.append({ execution: "f2", owner: "me", events: [{ seq: 5, at: 1, phase: "running" }] }),
    ]);
    expect(a.status).toBe("fulfilled");
    expect(b).toMatchObject({ status: "rejected", reason: { code: "TERN_E_CONFLICT" } });
    expect(await store.events.lastSeq("f1")).toBe(1);
  });
});
