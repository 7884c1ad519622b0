/**
 * Launch plan notifications against a loopback HTTP server: an execution launched
 * from a plan that ends in a notified phase POSTs its JSON body to the webhook,
 * retries with the same delivery id on 5xx, gives up at once on other 4xx, only for
 * the phases a notification names, and never holds the executor up.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { compile, type LaunchPlanSpec, LocalBlobStore, task, workflow } from "@tern/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Executor } from "../src/executor/index.js";
import { type NotificationBody, Notifier } from "../src/scheduler/index.js";
import type { Store } from "../src/store/index.js";
import { waitFor } from "./helpers/durable-project.js";
import { registerPlan } from "./helpers/plans.js";
import { useStores } from "./helpers/store.js";

const double = task(
  { name: "notify_double", inputs: { n: z.number() }, output: z.number() },
  async ({ n }) => {
    if (n < 0) throw new Error("negative input");
    return n * 2;
  },
);
const doubleFlow = workflow(
  { name: "notify_double_flow", inputs: { n: z.number() }, output: z.number() },
  ({ n }) => double({ n }),
);

interface Hit {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: NotificationBody;
}

/** A webhook receiver: answers with the next status of `script` per path (then 204), or never (`hang`). */
class Receiver {
  readonly hits: Hit[] = [];
  readonly script = new Map<string, (number | "hang")[]>();
  private readonly server = http.createServer((req, res) => {
    let text = "";
    req.on("data", (c) => {
      text += c;
    });
    req.on("end", () => {
      this.hits.push({
        path: req.url ?? "",
        headers: req.headers,
        body: JSON.parse(text) as NotificationBody,
      });
      const next = this.script.get(req.url ?? "")?.shift() ?? 204;
      if (next === "hang") return; // never answered
      res.writeHead(next).end();
    });
  });
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  on(p: string): Hit[] {
    return this.hits.filter((h) => h.path === p);
  }
}

let tmp: string;
const stores = useStores("sqlite");
const receiver = new Receiver();
let executor: Executor | undefined;
let notifier: Notifier | undefined;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tern-notify-"));
  await receiver.start();
});
afterEach(async () => {
  await notifier?.close();
  await executor?.close();
  notifier = executor = undefined;
  receiver.hits.length = 0;
  receiver.script.clear();
});
afterAll(async () => {
  await receiver.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function startExecutor(store: Store): Promise<Executor> {
  executor = await Executor.create({
    store,
    blobs: new LocalBlobStore(path.join(tmp, "blobs")),
    workDir: tmp,
    backend: "inline",
    claimIntervalMs: 50,
    leaseTtlMs: 5000,
  });
  executor.start();
  return executor;
}

async function start(store: Store): Promise<{ executor: Executor; notifier: Notifier }> {
  executor = await Executor.create({
    store,
    blobs: new LocalBlobStore(path.join(tmp, "blobs")),
    workDir: tmp,
    backend: "inline",
    claimIntervalMs: 50,
    leaseTtlMs: 5000,
  });
  notifier = new Notifier({ store, source: executor, backoffMs: 20, timeoutMs: 60_000 });
  executor.start();
  return { executor, notifier };
}

async function launchFrom(ex: Executor, lp: LaunchPlanSpec, n: number) {
  const compiled = compile(doubleFlow).spec;
  return ex.launch({
    project: lp.id.project,
    domain: lp.id.domain,
    compiled,
    inputs: { n },
    launchPlan: { name: lp.id.name, version: lp.id.version },
  });
}

describe("Notifier", () => {
  it("POSTs the outcome to the webhooks of the phases it ended in, retrying 5xx with one delivery id", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "notified",
      notifications: [
        { phases: ["succeeded", "failed"], webhook: `${receiver.url}/done` },
        { phases: ["aborted"], webhook: `${receiver.url}/aborted` },
      ],
    });
    const { executor: ex, notifier: nt } = await start(store);
    receiver.script.set("/done", [500, 503]);

    const ok = await launchFrom(ex, lp, 21);
    await waitFor("the success notification to be accepted", () => receiver.on("/done").length === 3, 20_000);
    await nt.idle();
    const hits = receiver.on("/done");
    expect(hits.map((h) => h.body)).toEqual(
      Array(3).fill({
        execution: ok.id,
        project: "default",
        domain: "development",
        launchPlan: { name: "notified", version: lp.id.version },
        phase: "succeeded",
        outputs: 42,
      }),
    );
    expect(new Set(hits.map((h) => h.headers["x-tern-delivery"]))).toEqual(new Set([`${ok.id}:succeeded:0`]));
    await waitFor(
      "the outbox row to be done",
      async () => (await store.notifications.get(ok.id))?.state === "done",
    );
    expect(hits[0].headers["content-type"]).toBe("application/json");

    const bad = await launchFrom(ex, lp, -1);
    await waitFor("the failure notification", () => receiver.on("/done").length === 4, 20_000);
    const failure = receiver.on("/done")[3].body;
    expect(failure).toMatchObject({ execution: bad.id, phase: "failed", error: { kind: "user" } });
    expect(JSON.stringify(failure.error)).toContain("negative input");
    expect(failure.outputs).toBeUndefined();
    await nt.idle();
    expect(receiver.on("/aborted")).toEqual([]);
  });

  it("does not retry a webhook that answers 4xx, and ignores executions not launched from a plan", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "rejected",
      notifications: [{ phases: ["succeeded"], webhook: `${receiver.url}/bad` }],
    });
    const { executor: ex, notifier: nt } = await start(store);
    receiver.script.set("/bad", [400]);
    await launchFrom(ex, lp, 1);
    await waitFor("the notification", () => receiver.on("/bad").length === 1, 20_000);
    const plain = await ex.launch({
      project: "default",
      domain: "development",
      compiled: compile(doubleFlow).spec,
      inputs: { n: 2 },
    });
    await waitFor(
      "the plain execution to end",
      async () => (await store.executions.get(plain.id))?.phase === "succeeded",
      20_000,
    );
    await nt.idle();
    expect(receiver.hits).toHaveLength(1);
  });

  it("delivers at least once: what ended while no notifier ran goes out with the next one's sweep, once", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "swept",
      notifications: [{ phases: ["succeeded"], webhook: `${receiver.url}/swept` }],
    });
    // The replica that runs it has no notifier (or died before delivering).
    const ex = await startExecutor(store);
    const rec = await launchFrom(ex, lp, 4);
    await waitFor(
      "the execution to end",
      async () => (await store.executions.get(rec.id))?.phase === "succeeded",
    );
    expect(await store.notifications.get(rec.id)).toMatchObject({ state: "pending" });
    expect(receiver.on("/swept")).toEqual([]);

    notifier = new Notifier({ store, source: ex, sweepIntervalMs: 50, backoffMs: 20 });
    await waitFor("the swept delivery", () => receiver.on("/swept").length === 1, 20_000);
    await waitFor(
      "the row to be done",
      async () => (await store.notifications.get(rec.id))?.state === "done",
    );
    expect(receiver.on("/swept")[0].body).toMatchObject({
      execution: rec.id,
      phase: "succeeded",
      outputs: 8,
    });
    // Later sweeps find nothing left to send.
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.on("/swept")).toHaveLength(1);
  });

  it("takes over a delivery whose notifier died mid-way, once its lease ran out", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "orphaned",
      notifications: [{ phases: ["succeeded"], webhook: `${receiver.url}/orphaned` }],
    });
    const ex = await startExecutor(store);
    const rec = await launchFrom(ex, lp, 5);
    await waitFor(
      "the execution to end",
      async () => (await store.executions.get(rec.id))?.phase === "succeeded",
    );
    // A notifier claimed it for 300 ms, then died without delivering.
    expect(await store.notifications.claim("dead-notifier", 300, 1, [rec.id])).toEqual([rec.id]);
    notifier = new Notifier({ store, source: ex, sweepIntervalMs: 50, backoffMs: 20 });
    await waitFor(
      "the delivery after the lease ran out",
      () => receiver.on("/orphaned").length === 1,
      20_000,
    );
    await waitFor(
      "the row to be done",
      async () => (await store.notifications.get(rec.id))?.state === "done",
    );
    expect(await store.notifications.get(rec.id)).toMatchObject({ attempts: 2 });
  });

  it("leaves a delivery cut short by close pending, for the next notifier", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "interrupted",
      notifications: [{ phases: ["succeeded"], webhook: `${receiver.url}/flaky` }],
    });
    const { executor: ex, notifier: nt } = await start(store);
    receiver.script.set("/flaky", [503, 503, 503]);
    const rec = await launchFrom(ex, lp, 6);
    await waitFor("the first try", () => receiver.on("/flaky").length >= 1, 20_000);
    await nt.close();
    notifier = undefined;
    expect(await store.notifications.get(rec.id)).toMatchObject({ state: "pending" });
  });

  it("never holds the executor up: an execution ends while its webhook hangs", async () => {
    const store = await stores.open();
    const lp = await registerPlan(store, doubleFlow, {
      name: "slowhook",
      notifications: [{ phases: ["succeeded"], webhook: `${receiver.url}/hang` }],
    });
    const { executor: ex } = await start(store);
    receiver.script.set("/hang", ["hang"]);
    const first = await launchFrom(ex, lp, 1);
    await waitFor("the webhook to be called", () => receiver.on("/hang").length === 1, 20_000);
    // The webhook has not answered, and the executor carries on.
    const second = await launchFrom(ex, lp, 2);
    await waitFor(
      "the next execution to finish",
      async () => (await store.executions.get(second.id))?.phase === "succeeded",
      20_000,
    );
    expect((await store.executions.get(first.id))?.phase).toBe("succeeded");
  });
});
