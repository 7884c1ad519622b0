import { describe, expect, it } from "vitest";
import type { NewExecution, Store } from "../src/store/index.js";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

function execution(id: string, createdAt: number, phase = "queued"): NewExecution {
  return {
    id,
    project: "flows",
    domain: "development",
    workflow: { name: "hello", version: "w1" },
    inputs: {},
    spec: {},
    createdAt,
    phase,
  };
}

/** Claim in small batches until nothing is left; returns the ids this owner got. */
async function drain(store: Store, owner: string, batch: number): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const claimed = await store.claimExecutions(owner, 60_000, batch);
    if (claimed.length === 0) return got;
    for (const x of claimed) {
      expect(x.owner).toBe(owner);
      got.push(x.id);
    }
  }
}

describe.each(BACKENDS)("store on %s", (backend) => {
  const stores = useStores(backend);

  describe("executor leases", () => {
    it("two replicas claiming at once never share an execution and together take all 50", async () => {
      const url = await stores.freshUrl();
      const a = await stores.open({ url });
      const b = await stores.open({ url });
      const ids = Array.from({ length: 50 }, (_, i) => `x${String(i).padStart(2, "0")}`);
      for (const [i, id] of ids.entries())
        await a.executions.create(execution(id, 1000 + i, i % 2 ? "running" : "queued"));
      // Terminal executions are never claimed.
      await a.executions.create(execution("done", 1, "succeeded"));

      const [gotA, gotB] = await Promise.all([drain(a, "replica-a", 3), drain(b, "replica-b", 4)]);
      // Both really took part (the claims interleaved)…
      expect(gotA.length).toBeGreaterThan(0);
      expect(gotB.length).toBeGreaterThan(0);
      // …and no execution went to both.
      const both = gotA.filter((id) => gotB.includes(id));
      expect(both).toEqual([]);
      expect([...gotA, ...gotB].sort()).toEqual(ids);
      // Each store still agrees on who owns what.
      const owners = new Map((await a.executions.list({ limit: 100 })).items.map((x) => [x.id, x.owner]));
      for (const id of gotA) expect(owners.get(id)).toBe("replica-a");
      for (const id of gotB) expect(owners.get(id)).toBe("replica-b");
      expect(owners.get("done")).toBeUndefined();
    });

    it("hands out the oldest first, renews, releases, and lets another replica take over an expired lease", async () => {
      const clock = new FakeClock();
      const url = await stores.freshUrl();
      const a = await stores.open({ url, now: clock.now });
      const b = await stores.open({ url, now: clock.now });
      for (let i = 0; i < 5; i++) await a.executions.create(execution(`x${i}`, 100 - i));

      const first = await a.claimExecutions("a", 10_000, 2);
      expect(first.map((x) => x.id)).toEqual(["x4", "x3"]);
      expect(first[0].leaseExpiresAt).toBe(clock.t + 10_000);
      expect((await b.claimExecutions("b", 10_000, 10)).map((x) => x.id)).toEqual(["x2", "x1", "x0"]);
      expect(await b.claimExecutions("b", 10_000, 10)).toEqual([]);

      // a renews in time; b does not.
      clock.advance(8_000);
      expect(await a.renewLeases("a", 10_000)).toEqual(["x3", "x4"]);
      clock.advance(4_000);
      const takeover = await a.claimExecutions("a", 10_000, 10);
      expect(takeover.map((x) => x.id)).toEqual(["x2", "x1", "x0"]);
      expect(await b.renewLeases("b", 10_000)).toEqual([]);
      // The old owner's fenced writes now fail; the new owner's succeed.
      expect(await b.executions.update("x2", { phase: "running" }, { owner: "b" })).toBe(false);
      expect(await a.executions.update("x2", { phase: "running" }, { owner: "a" })).toBe(true);

      // A finished execution is no longer renewed; a released one is claimable at once.
      await a.executions.update("x0", { phase: "succeeded" }, { owner: "a" });
      expect(await a.renewLeases("a", 10_000)).toEqual(["x1", "x2", "x3", "x4"]);
      expect(await a.releaseExecution("x1", "b")).toBe(false);
      expect(await a.releaseExecution("x1", "a")).toBe(true);
      const again = await b.claimExecutions("b", 10_000, 10);
      expect(again.map((x) => x.id)).toEqual(["x1"]);
      expect(await b.claimExecutions("b", 10_000, 0)).toEqual([]);
    });
  });

  describe("schedule ticks", () => {
    it("fire exactly once among many concurrent claimers, and remember the last tick", async () => {
      const url = await stores.freshUrl();
      const a = await stores.open({ url });
      const b = await stores.open({ url });
      const lp = { project: "flows", domain: "development", name: "nightly" };
      const tick = Date.UTC(2026, 0, 1);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).claimTick(lp, tick, `exec-${i}`)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = `exec-${results.indexOf(true)}`;
      expect((await a.schedules.lastTick(lp))?.executionId).toBe(winner);
      // A later tick, another launch plan and another domain are separate.
      expect(await a.claimTick(lp, tick + 86_400_000, "next")).toBe(true);
      expect(await a.claimTick({ ...lp, name: "hourly" }, tick, "h")).toBe(true);
      expect(await a.claimTick({ ...lp, domain: "production" }, tick, "p")).toBe(true);
      expect(await b.claimTick(lp, tick, "late")).toBe(false);
      expect((await b.schedules.ticks(lp)).map((t) => t.executionId)).toEqual(["next", winner]);
      expect(await a.schedules.lastTick({ ...lp, name: "never" })).toBeUndefined();
    });
  });

  describe("catalog leases", () => {
    it("let exactly one of two racing owners win; expiry lets the other take over", async () => {
      const clock = new FakeClock();
      const url = await stores.freshUrl();
      const a = await stores.open({ url, now: clock.now });
      const b = await stores.open({ url, now: clock.now });
      for (let round = 0; round < 5; round++) {
        const key = `k${round}`;
        const [ga, gb] = await Promise.all([
          a.catalog.acquire(key, "a", 5_000),
          b.catalog.acquire(key, "b", 5_000),
        ]);
        expect([ga, gb].filter(Boolean)).toHaveLength(1);
      }
      // Holder re-acquires (renews); the other is refused until expiry.
      const holder = (await a.catalog.acquire("k0", "a", 5_000)) ? a : b;
      const name = holder === a ? "a" : "b";
      const other = holder === a ? b : a;
      const otherName = holder === a ? "b" : "a";
      clock.advance(4_000);
      expect(await holder.catalog.acquire("k0", name, 5_000)).toBe(true); // renewed until t+9s
      clock.advance(4_000);
      expect(await other.catalog.acquire("k0", otherName, 5_000)).toBe(false);
      clock.advance(1_000);
      expect(await other.catalog.acquire("k0", otherName, 5_000)).toBe(true);
      expect(await holder.catalog.acquire("k0", name, 5_000)).toBe(false);
      // Release by a non-holder is a no-op; by the holder frees it.
      await holder.catalog.release("k0", name);
      expect(await holder.catalog.acquire("k0", name, 5_000)).toBe(false);
      await other.catalog.release("k0", otherName);
      expect(await holder.catalog.acquire("k0", name, 5_000)).toBe(true);
    });
  });
});
