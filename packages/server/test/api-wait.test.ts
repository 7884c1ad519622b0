/**
 * Creating executions and getting their outcome in the same request
 * (`Prefer: wait=<seconds>`, RFC 7240), and creating many at once
 * (`POST …/executions/batch`, all checked before any is created): the terminal record with outputs
 * or error, a wait that runs out, malformed preferences ignored, executions
 * driven by another replica (read from the store), a client that goes away and
 * a server that closes (nothing left behind), batch order, a bad item that
 * creates nothing, and the batch size limit.
 */
import * as fs from "node:fs";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_WAIT_SECONDS, preferredWait } from "../src/api/wait.js";
import type { ControlPlane } from "../src/serve.js";
import {
  client,
  compilePayload,
  eventually,
  makeProject,
  type Payload,
  startPlane,
  waitForExecution,
} from "./helpers/api.js";

let dir: string;
let plane: ControlPlane;
let api: ReturnType<typeof client>;
let payload: Payload;
const S = "/api/v1/projects/default/domains/development";

beforeAll(async () => {
  dir = makeProject();
  payload = await compilePayload(dir);
  plane = await startPlane(dir);
  api = client(plane);
  expect((await api("POST", "/api/v1/register", payload)).status).toBe(200);
});

afterAll(async () => {
  await plane?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const waiting = (seconds: number | string) => ({ prefer: `wait=${seconds}` });
const create = (body: unknown, headers: Record<string, string> = {}) =>
  api("POST", `${S}/executions`, body, headers);
const batch = (body: unknown, headers: Record<string, string> = {}) =>
  api("POST", `${S}/executions/batch`, body, headers);

/** The end listeners the executor holds now. */
const endListeners = (p: ControlPlane) =>
  (p.executor as unknown as { endListeners: Set<unknown> }).endListeners.size;

/** Executions of the scope created at or after `t0`. */
async function createdSince(t0: number): Promise<string[]> {
  const r = await api("GET", `${S}/executions?createdAfter=${t0}&limit=500`);
  expect(r.status).toBe(200);
  return r.body.items.map((e: { id: string }) => e.id);
}

describe("Prefer: wait=<seconds>", () => {
  it("parses the preference: first wait counts, capped, anything malformed is no wait", () => {
    expect(preferredWait(undefined)).toBe(0);
    expect(preferredWait("wait=5")).toBe(5);
    expect(preferredWait("WAIT = 7")).toBe(7);
    expect(preferredWait('wait="3"')).toBe(3);
    expect(preferredWait("respond-async, wait=10")).toBe(10);
    expect(preferredWait("handling=lenient; x=1, wait=4; foo")).toBe(4);
    expect(preferredWait('return=minimal; note="a, wait=9", wait=2')).toBe(2);
    expect(preferredWait("wait=5, wait=9")).toBe(5);
    expect(preferredWait(["respond-async", "wait=2"])).toBe(2);
    expect(preferredWait("wait=600")).toBe(MAX_WAIT_SECONDS);
    expect(preferredWait(`wait=${"9".repeat(400)}`)).toBe(MAX_WAIT_SECONDS);
    for (const bad of [
      "wait=0",
      "wait",
      "wait=",
      "wait=-1",
      "wait=1.5",
      "wait=abc",
      "wait=5s",
      "waiting=5",
      "",
    ])
      expect(preferredWait(bad), bad).toBe(0);
  });

  it("answers with the terminal record, outputs included, once the execution succeeded", async () => {
    const t0 = Date.now();
    const r = await create({ workflow: { name: "hello" }, inputs: { name: "Wait" } }, waiting(30));
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=30");
    expect(r.body).toMatchObject({
      project: "default",
      domain: "development",
      workflow: { name: "hello" },
      phase: "succeeded",
      inputs: { name: "Wait" },
      outputs: "Hello, Wait!",
    });
    expect(r.body.spec).toBeUndefined();
    expect(r.body.owner).toBeUndefined();
    expect(r.body.leaseExpiresAt).toBeUndefined();
    expect(r.body.endedAt).toBeGreaterThanOrEqual(r.body.startedAt);
    expect(r.body.updatedAt).toBeGreaterThanOrEqual(r.body.endedAt);
    expect(Date.now() - t0).toBeLessThan(30_000);
    // The in-memory final record is the stored one.
    const { updatedAt: _a, ...waited } = r.body;
    const { updatedAt: _b, ...stored } = (await api("GET", `${S}/executions/${r.body.id}`)).body;
    expect(waited).toEqual(stored);
  });

  it("answers with the failed record and its error when the workflow fails", async () => {
    const r = await create({ workflow: { name: "failing" }, inputs: { name: "Oops" } }, waiting(30));
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=30");
    expect(r.body.phase).toBe("failed");
    expect(r.body.outputs).toBeUndefined();
    expect(r.body.error.message).toContain("boom after Hello, Oops!");
    expect(r.body.error.code).toMatch(/^TERN_E_/);
    // Nothing of the error document is lost on the way out (the response schema keeps it all).
    const stored = await plane.store.executions.get(r.body.id, { spec: false });
    expect(stored?.error?.message).toContain("boom");
    expect(r.body.error).toEqual(JSON.parse(JSON.stringify(stored?.error)));
  });

  it("answers with the running record when the wait runs out first", async () => {
    const before = endListeners(plane);
    const t0 = Date.now();
    const r = await create({ workflow: { name: "slow" }, inputs: { ms: 60_000 } }, waiting(1));
    const took = Date.now() - t0;
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=1");
    expect(r.body.phase).toBe("running");
    expect(r.body.outputs).toBeUndefined();
    expect(r.body.endedAt).toBeUndefined();
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(10_000);
    expect((await api("POST", `${S}/executions/${r.body.id}/terminate`, {})).status).toBe(200);
    // Nothing is left waiting.
    expect(endListeners(plane)).toBe(before);
  });

  it("ignores wait=0 and malformed preferences: the usual answer at once, no Preference-Applied", async () => {
    for (const prefer of ["wait=0", "wait=abc", "wait=-3", "wait=2.5", "wait", "respond-async"]) {
      const t0 = Date.now();
      const r = await create({ workflow: { name: "slow" }, inputs: { ms: 60_000 } }, { prefer });
      expect(r.status, prefer).toBe(201);
      expect(r.headers["preference-applied"], prefer).toBeUndefined();
      expect(r.body.phase, prefer).toBe("running");
      // Read as a wait, even "wait=2.5" would hold the answer 2 s or more.
      expect(Date.now() - t0, prefer).toBeLessThan(1900);
      expect((await api("POST", `${S}/executions/${r.body.id}/terminate`, {})).status).toBe(200);
    }
  });

  it("keeps 4xx for bad bodies, whatever the preference", async () => {
    const r = await create({ workflow: { name: "hello" }, inputs: { name: 42 } }, waiting(30));
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(r.headers["preference-applied"]).toBeUndefined();
  });

  it("stops waiting when the client goes away, leaving no listener behind", async () => {
    const before = endListeners(plane);
    const streams = plane.ctx.streams.size;
    await plane.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = plane.app.server.address() as AddressInfo;
    const ac = new AbortController();
    const t0 = Date.now();
    const req = fetch(`http://127.0.0.1:${port}${S}/executions`, {
      method: "POST",
      headers: { "content-type": "application/json", prefer: "wait=30" },
      body: JSON.stringify({ workflow: { name: "slow" }, inputs: { ms: 60_000 } }),
      signal: ac.signal,
    }).catch((e: Error) => e);
    try {
      // Waiting: one shared end listener, one entry to end when the server closes.
      await eventually(async () => endListeners(plane) === before + 1, "the request to wait");
      expect(plane.ctx.streams.size).toBe(streams + 1);
      ac.abort();
      expect(((await req) as Error).name).toBe("AbortError");
      await eventually(
        async () => endListeners(plane) === before && plane.ctx.streams.size === streams,
        "the wait to be released",
        5000,
      );
      expect(Date.now() - t0).toBeLessThan(20_000);
    } finally {
      // The execution itself goes on: stop it (the test plane has one worker).
      const running = await api("GET", `${S}/executions?workflow=slow&phase=running`);
      for (const e of running.body.items) await api("POST", `${S}/executions/${e.id}/terminate`, {});
    }
    expect(endListeners(plane)).toBe(before);
  });
});

describe("executions driven elsewhere", () => {
  let other: ControlPlane;
  let otherApi: ReturnType<typeof client>;

  beforeAll(async () => {
    // An API replica that drives nothing: every execution it creates runs "on another replica".
    other = await startPlane(dir, {
      dataDir: path.join(dir, ".tern-other"),
      runExecutor: false,
      watchPollMs: 50,
    });
    otherApi = client(other);
    expect((await otherApi("POST", "/api/v1/register", payload)).status).toBe(200);
  });

  afterAll(async () => {
    await other?.close();
  });

  it("reads the store for an execution this replica does not drive, and answers with what another wrote", async () => {
    const before = endListeners(other);
    const pending = otherApi(
      "POST",
      `${S}/executions`,
      { workflow: { name: "hello" }, inputs: { name: "Elsewhere" } },
      waiting(30),
    );
    const id = await eventually(async () => {
      const { items } = await other.store.executions.list({ phase: "queued", limit: 10 });
      return items.find((e) => (e.inputs as { name?: string }).name === "Elsewhere")?.id;
    }, "the execution to be created");
    expect(other.executor.drives(id)).toBe(false);
    // Another replica finishes it: only the store says so.
    const endedAt = Date.now();
    await other.store.executions.update(id, {
      phase: "succeeded",
      startedAt: endedAt - 5,
      endedAt,
      outputs: "Hello, Elsewhere!",
    });
    const r = await pending;
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=30");
    expect(r.body).toMatchObject({ id, phase: "succeeded", outputs: "Hello, Elsewhere!", endedAt });
    expect(endListeners(other)).toBe(before);
  });

  it("shares one end listener among every waiting request, and releases it when they are answered", async () => {
    const before = endListeners(other);
    const requests = Array.from({ length: 5 }, (_, i) =>
      otherApi(
        "POST",
        `${S}/executions`,
        { workflow: { name: "hello" }, inputs: { name: `Many${i}` } },
        waiting(1),
      ),
    );
    await eventually(async () => other.ctx.streams.size === 5, "the requests to wait");
    expect(endListeners(other)).toBe(before + 1);
    for (const r of await Promise.all(requests)) {
      expect(r.status).toBe(201);
      expect(r.headers["preference-applied"]).toBe("wait=1");
      expect(r.body.phase).toBe("queued");
    }
    expect(endListeners(other)).toBe(before);
    expect(other.ctx.streams.size).toBe(0);
  });

  it("creates a batch of 1000 in one request", async () => {
    const r = await otherApi("POST", `${S}/executions/batch`, {
      executions: Array.from({ length: 1000 }, (_, i) => ({
        workflow: { name: "hello" },
        inputs: { name: `n${i}` },
      })),
    });
    expect(r.status).toBe(201);
    expect(r.body.executions.map((e: { inputs: { name: string } }) => e.inputs.name)).toEqual(
      Array.from({ length: 1000 }, (_, i) => `n${i}`),
    );
    expect(new Set(r.body.executions.map((e: { id: string }) => e.id)).size).toBe(1000);
    const stored = await other.store.executions.countByPhase({ project: "default", domain: "development" });
    // The earlier tests of this replica left five queued.
    expect(stored.queued).toBe(1005);
  });

  it("answers waiting requests at once with the current record when the server closes", async () => {
    const closing = await startPlane(dir, {
      dataDir: path.join(dir, ".tern-closing"),
      runExecutor: false,
      watchPollMs: 50,
    });
    const closingApi = client(closing);
    expect((await closingApi("POST", "/api/v1/register", payload)).status).toBe(200);
    const pending = closingApi(
      "POST",
      `${S}/executions`,
      { workflow: { name: "hello" }, inputs: { name: "Closing" } },
      waiting(60),
    );
    await eventually(async () => closing.ctx.streams.size === 1, "the request to wait");
    const t0 = Date.now();
    const closed = closing.close();
    const r = await pending;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=60");
    expect(r.body).toMatchObject({ phase: "queued", inputs: { name: "Closing" } });
    await closed;
    expect(closing.ctx.streams.size).toBe(0);
  });
});

describe("POST …/executions/batch", () => {
  it("creates every execution, in request order, and waits for all of them", async () => {
    const version = payload.workflows.find((w) => w.workflow.id.name === "hello")!.workflow.id.version;
    const r = await batch(
      {
        executions: [
          { workflow: { name: "hello" }, inputs: { name: "One" } },
          { launchPlan: { name: "greet_plan" } },
          { workflow: { name: "hello", version } },
          { workflow: { name: "hello" }, inputs: { name: "Four" } },
        ],
      },
      waiting(30),
    );
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=30");
    expect(r.body.executions.map((e: { phase: string }) => e.phase)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
      "succeeded",
    ]);
    expect(r.body.executions.map((e: { outputs: string }) => e.outputs)).toEqual([
      "Hello, One!",
      "Hello, Plan!",
      "Hello, world!",
      "Hello, Four!",
    ]);
    expect(r.body.executions[1].launchPlan.name).toBe("greet_plan");
    expect(new Set(r.body.executions.map((e: { id: string }) => e.id)).size).toBe(4);
    for (const e of r.body.executions) expect(e.spec).toBeUndefined();
  });

  it("without Prefer, answers at once with the created records", async () => {
    const r = await batch({
      executions: [
        { workflow: { name: "hello" }, inputs: { name: "A" } },
        { workflow: { name: "hello" }, inputs: { name: "B" } },
      ],
    });
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBeUndefined();
    expect(r.body.executions.map((e: { inputs: { name: string } }) => e.inputs.name)).toEqual(["A", "B"]);
    for (const e of r.body.executions) {
      expect(e.phase).not.toBe("succeeded");
      expect((await waitForExecution(api, S, e.id)).outputs).toBe(`Hello, ${e.inputs.name}!`);
    }
  });

  it("a wait that runs out answers with each record as it is, finished or not", async () => {
    const r = await batch(
      {
        executions: [
          { workflow: { name: "hello" }, inputs: { name: "Quick" } },
          { workflow: { name: "slow" }, inputs: { ms: 60_000 } },
        ],
      },
      waiting(3),
    );
    expect(r.status).toBe(201);
    expect(r.headers["preference-applied"]).toBe("wait=3");
    expect(r.body.executions[0]).toMatchObject({ phase: "succeeded", outputs: "Hello, Quick!" });
    expect(r.body.executions[1].phase).toBe("running");
    const slow = r.body.executions[1].id;
    expect((await api("POST", `${S}/executions/${slow}/terminate`, {})).status).toBe(200);
  });

  it("refuses a batch with one bad item naming its index, and creates nothing", async () => {
    const t0 = Date.now();
    const ok = { workflow: { name: "hello" }, inputs: { name: "Fine" } };
    const wrong = await batch({
      executions: [ok, ok, ok, { workflow: { name: "hello" }, inputs: { name: 42 } }],
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(wrong.body.error.message).toMatch(/^executions\[3\]: input "name"/);
    expect(wrong.body.error.details).toMatchObject({ index: 3, input: "name" });
    expect(wrong.body.error.hint).toBeTypeOf("string");

    const unknownInput = await batch({
      executions: [ok, { workflow: { name: "hello" }, inputs: { nmae: "x" } }],
    });
    expect(unknownInput.status).toBe(400);
    expect(unknownInput.body.error.details).toMatchObject({ index: 1, input: "nmae" });

    const missing = await batch({ executions: [ok, ok, { workflow: { name: "failing" } }] });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details).toMatchObject({ index: 2, input: "name" });

    const fixed = await batch({
      executions: [{ launchPlan: { name: "fixed_plan" }, inputs: { name: "X" } }],
    });
    expect(fixed.status).toBe(400);
    expect(fixed.body.error.details).toMatchObject({ index: 0, input: "name" });

    const both = await batch({
      executions: [ok, { workflow: { name: "hello" }, launchPlan: { name: "greet_plan" } }],
    });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toMatch(/^executions\[1\]: give exactly one/);
    expect(both.body.error.details.index).toBe(1);

    const schema = await batch({ executions: [ok, ok, { workflow: { name: "hello" }, inputs: "Ada" }] });
    expect(schema.status).toBe(400);
    expect(schema.body.error.code).toBe("TERN_E_BAD_REQUEST");
    expect(schema.body.error.message).toMatch(/^executions\[2\]: invalid body at executions\.2\.inputs/);
    expect(schema.body.error.details).toMatchObject({ index: 2, field: "executions.2.inputs" });

    const unknown = await batch({ executions: [ok, { workflow: { name: "nope" } }] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/^executions\[1\]: workflow "nope" is not registered/);
    expect(unknown.body.error.details.index).toBe(1);

    expect(await createdSince(t0)).toEqual([]);
  });

  it("refuses empty and oversized batches and bodies that are not a batch", async () => {
    const t0 = Date.now();
    const item = { workflow: { name: "hello" }, inputs: { name: "Many" } };
    const over = await batch({ executions: Array.from({ length: 1001 }, () => item) }, waiting(5));
    expect(over.status).toBe(400);
    expect(over.body.error.code).toBe("TERN_E_BAD_REQUEST");
    expect(over.body.error.message).toContain("1000");
    expect(over.headers["preference-applied"]).toBeUndefined();
    for (const body of [{ executions: [] }, {}, { executions: item }, { executions: [item], extra: 1 }, []]) {
      const r = await batch(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code, JSON.stringify(body)).toBe("TERN_E_BAD_REQUEST");
    }
    const ghost = await api("POST", "/api/v1/projects/ghost/domains/development/executions/batch", {
      executions: [item],
    });
    expect(ghost.status).toBe(404);
    expect(await createdSince(t0)).toEqual([]);
  });
});

describe("OpenAPI", () => {
  it("documents both routes, the Prefer header and Preference-Applied", async () => {
    const doc = (await api("GET", "/docs/json")).body;
    const single = doc.paths["/api/v1/projects/{project}/domains/{domain}/executions"].post;
    const many = doc.paths["/api/v1/projects/{project}/domains/{domain}/executions/batch"].post;
    for (const op of [single, many]) {
      expect(op.summary).toContain("Prefer: wait");
      expect(op.description).toContain("Prefer: wait=<seconds>");
      expect(op.description).toContain(`at most ${MAX_WAIT_SECONDS} s`);
      expect(
        op.parameters.some((p: { in: string; name: string }) => p.in === "header" && p.name === "prefer"),
      ).toBe(true);
      expect(op.responses["201"].headers["Preference-Applied"]).toBeDefined();
    }
    expect(JSON.stringify(single.responses["201"].content)).toContain("Execution");
    expect(many.requestBody.content["application/json"].schema.properties.executions.maxItems).toBe(1000);
  });
});
