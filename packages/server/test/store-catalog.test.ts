import type { CatalogEntry } from "@tern/core";
import { describe, expect, it } from "vitest";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

type NewEntry = Omit<CatalogEntry, "sizeBytes" | "createdAt">;

function entry(key: string, over: Partial<NewEntry> = {}): NewEntry {
  return {
    key,
    project: "flows",
    domain: "development",
    task: "train",
    cacheVersion: "c1",
    outputs: { model: `s3://bucket/models/${key}`, score: 0.93 },
    producer: { execution: "x1", node: "n0", attempt: 1 },
    ...over,
  };
}

/** Size the catalog gives an entry: its JSON with createdAt and a zero sizeBytes (as core's catalogs do). */
function sizeOf(e: NewEntry, createdAt: number): number {
  return Buffer.byteLength(JSON.stringify({ ...e, createdAt, sizeBytes: 0 }));
}

describe.each(BACKENDS)("store on %s", (backend) => {
  const stores = useStores(backend);

  describe("SqlCatalog", () => {
    it("puts, gets, lists and evicts with filters, keeping the total size", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      const cat = store.catalog;
      expect(await cat.get("k1")).toBeUndefined();
      const put = await cat.put(entry("k1"));
      expect(put.createdAt).toBe(clock.t);
      expect(put.sizeBytes).toBe(sizeOf(entry("k1"), clock.t));
      expect(await cat.get("k1")).toEqual(put);
      await cat.put(entry("k2", { task: "score" }));
      await cat.put(
        entry("k3", { domain: "production", producer: { execution: "x9", node: "n2", attempt: 3 } }),
      );
      expect((await cat.list()).map((e) => e.key)).toEqual(["k1", "k2", "k3"]);
      expect((await cat.list({ task: "score" })).map((e) => e.key)).toEqual(["k2"]);
      expect((await cat.list({ domain: "production" }))[0].producer).toEqual({
        execution: "x9",
        node: "n2",
        attempt: 3,
      });
      const total = (await cat.list()).reduce((n, e) => n + e.sizeBytes, 0);
      expect(await cat.sizeBytes()).toBe(total);

      // Replacing an entry adjusts the total by the difference.
      const bigger = await cat.put(entry("k1", { outputs: { model: "x".repeat(500) } }));
      expect(await cat.sizeBytes()).toBe(total - put.sizeBytes + bigger.sizeBytes);
      expect((await cat.get("k1"))?.outputs).toEqual({ model: "x".repeat(500) });

      expect(await cat.evict({ task: "score" })).toBe(1);
      expect(await cat.evict({ key: "k3" })).toBe(1);
      expect(await cat.evict({ key: "k3" })).toBe(0);
      expect(await cat.sizeBytes()).toBe(bigger.sizeBytes);
      expect(await cat.evict()).toBe(1);
      expect(await cat.sizeBytes()).toBe(0);
      expect(await cat.list()).toEqual([]);
    });

    it.each([
      { touchIntervalMs: 500, evicted: "k1" },
      // A hit within touchIntervalMs of the last use is a read only: k0 stays the oldest.
      { touchIntervalMs: 5000, evicted: "k0" },
    ])(
      "stays under maxBytes by evicting least recently used entries (touch interval $touchIntervalMs ms)",
      async ({ touchIntervalMs, evicted }) => {
        const clock = new FakeClock();
        const probe = sizeOf(entry("k0"), clock.t);
        // Room for three entries, not four.
        const store = await stores.open({
          now: clock.now,
          catalog: { maxBytes: probe * 3 + 10, touchIntervalMs },
        });
        const cat = store.catalog;
        for (const k of ["k0", "k1", "k2"]) {
          await cat.put(entry(k));
          clock.advance(1000);
        }
        // 3 s after k0 was stored: a use, if the interval allows recording it.
        expect(await cat.get("k0")).toBeDefined();
        clock.advance(1000);
        await cat.put(entry("k3"));
        const kept = ["k0", "k1", "k2", "k3"].filter((k) => k !== evicted);
        expect((await cat.list()).map((e) => e.key).sort()).toEqual(kept);
        expect(await cat.sizeBytes()).toBeLessThanOrEqual(cat.maxBytes);
        expect(await cat.sizeBytes()).toBe((await cat.list()).reduce((n, e) => n + e.sizeBytes, 0));

        // One entry larger than the whole bound evicts everything else but is kept itself.
        clock.advance(1000);
        const huge = await cat.put(entry("huge", { outputs: "y".repeat(probe * 4) }));
        expect((await cat.list()).map((e) => e.key)).toEqual(["huge"]);
        expect(await cat.sizeBytes()).toBe(huge.sizeBytes);
      },
    );

    it("keeps the size total exact under concurrent puts from two replicas", async () => {
      const url = await stores.freshUrl();
      const a = await stores.open({ url });
      const b = await stores.open({ url });
      // Same keys from both sides: each key's size must be counted once.
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).catalog.put(entry(`k${i % 10}`, { outputs: { i } })),
        ),
      );
      const entries = await a.catalog.list();
      expect(entries).toHaveLength(10);
      expect(await b.catalog.sizeBytes()).toBe(entries.reduce((n, e) => n + e.sizeBytes, 0));
    });
  });
});
