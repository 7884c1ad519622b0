/**
 * The notification outbox on both databases: a launch plan execution owes its notifications
 * from its creation; only ended executions are claimed; a claim is a lease (another
 * notifier gets the row only once it ran out); done rows are never claimed again.
 */
import { describe, expect, it } from "vitest";
import type { NewExecution } from "../src/store/index.js";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

function execution(id: string, launchPlan: boolean): NewExecution {
  return {
    id,
    project: "default",
    domain: "development",
    workflow: { name: "hello", version: "w1" },
    ...(launchPlan ? { launchPlan: { name: "nightly", version: "lp1" } } : {}),
    inputs: {},
    spec: {},
  };
}

describe.each(BACKENDS)("notification outbox on %s", (backend) => {
  const stores = useStores(backend);

  it("holds a row per launch plan execution, claimable once it ended, leased, then done", async () => {
    const clock = new FakeClock();
    const store = await stores.open({ now: clock.now });
    await store.executions.create(execution("lp-run", true));
    await store.executions.create(execution("plain-run", false));
    expect(await store.notifications.get("lp-run")).toEqual({ state: "pending", owner: null, attempts: 0 });
    expect(await store.notifications.get("plain-run")).toBeUndefined();

    // Still running: nothing to deliver yet.
    expect(await store.notifications.claim("n1", 60_000, 10)).toEqual([]);
    await store.executions.update("lp-run", { phase: "succeeded", endedAt: clock.now() });
    await store.executions.update("plain-run", { phase: "succeeded", endedAt: clock.now() });

    expect(await store.notifications.claim("n1", 60_000, 10)).toEqual(["lp-run"]);
    // Leased to n1: another notifier does not get it...
    expect(await store.notifications.claim("n2", 60_000, 10)).toEqual([]);
    // ...until the lease runs out (n1 died while delivering).
    clock.advance(60_000);
    expect(await store.notifications.claim("n2", 60_000, 10, ["lp-run"])).toEqual(["lp-run"]);
    expect(await store.notifications.get("lp-run")).toEqual({ state: "pending", owner: "n2", attempts: 2 });
    // Only the holder marks it done; then nobody claims it again.
    expect(await store.notifications.done("lp-run", "n1")).toBe(false);
    expect(await store.notifications.done("lp-run", "n2")).toBe(true);
    clock.advance(120_000);
    expect(await store.notifications.claim("n3", 60_000, 10)).toEqual([]);
    expect(await store.notifications.get("lp-run")).toEqual({ state: "done", owner: null, attempts: 2 });
  });
});
