/**
 * Executions through the API, run for real by the executor on worker
 * processes: create (by workflow and by launch plan), 400 naming the input,
 * get, list with filters and cursors, events, nodes, logs, terminate,
 * relaunch, recover, signals, and node metrics.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  const r = await api("POST", "/api/v1/register", payload);
  expect(r.status).toBe(200);
});

afterAll(async () => {
  await plane?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const launch = (body: unknown) => api("POST", `${S}/executions`, body);

describe("creating executions", () => {
  it("runs the latest version of a workflow by name and stores its outputs", async () => {
    const r = await launch({ workflow: { name: "hello" }, inputs: { name: "Ada" } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      project: "default",
      domain: "development",
      // Taken by this replica at once (it has room): no claim round between launch and start.
      phase: "running",
      inputs: { name: "Ada" },
    });
    expect(r.body.workflow.name).toBe("hello");
    expect(r.body.spec).toBeUndefined();
    expect(r.body.owner).toBeUndefined();
    const done = await waitForExecution(api, S, r.body.id);
    expect(done).toMatchObject({ phase: "succeeded", outputs: "Hello, Ada!" });
    expect(done.endedAt).toBeGreaterThanOrEqual(done.startedAt);
  });

  it("fills defaults and runs an exact version", async () => {
    const version = payload.workflows.find((w) => w.workflow.id.name === "hello")!.workflow.id.version;
    const r = await launch({ workflow: { name: "hello", version } });
    expect(r.status).toBe(201);
    expect(r.body.inputs).toEqual({ name: "world" });
    expect((await waitForExecution(api, S, r.body.id)).outputs).toBe("Hello, world!");
  });

  it("answers 400 naming the input for wrong, missing and unknown inputs", async () => {
    const wrong = await launch({ workflow: { name: "hello" }, inputs: { name: 42 } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(wrong.body.error.details.input).toBe("name");
    expect(wrong.body.error.message).toContain('"name"');
    const missing = await launch({ workflow: { name: "failing" }, inputs: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.input).toBe("name");
    const unknown = await launch({ workflow: { name: "hello" }, inputs: { nmae: "x" } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details.input).toBe("nmae");
    const notObject = await launch({ workflow: { name: "hello" }, inputs: "Ada" });
    expect(notObject.status).toBe(400);
    expect(notObject.body.error.message).toContain("inputs");
  });

  it("answers 400 for neither or both targets and 404 for unknown ones", async () => {
    expect((await launch({ inputs: {} })).status).toBe(400);
    expect((await launch({ workflow: { name: "hello" }, launchPlan: { name: "greet_plan" } })).status).toBe(
      400,
    );
    const r = await launch({ workflow: { name: "nope" } });
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain('workflow "nope" is not registered in default/development');
    expect(r.body.error.hint).toContain("tern register");
    expect((await launch({ launchPlan: { name: "nope" } })).status).toBe(404);
    expect(
      (
        await api("POST", "/api/v1/projects/ghost/domains/development/executions", {
          workflow: { name: "hello" },
        })
      ).status,
    ).toBe(404);
  });

  it("runs launch plans with their defaults and refuses overriding fixed inputs", async () => {
    const r = await launch({ launchPlan: { name: "greet_plan" } });
    expect(r.status).toBe(201);
    expect(r.body.launchPlan.name).toBe("greet_plan");
    expect((await waitForExecution(api, S, r.body.id)).outputs).toBe("Hello, Plan!");
    const fixed = await launch({ launchPlan: { name: "fixed_plan" }, inputs: { name: "Other" } });
    expect(fixed.status).toBe(400);
    expect(fixed.body.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(fixed.body.error.details.input).toBe("name");
    const ok = await launch({ launchPlan: { name: "fixed_plan" } });
    expect((await waitForExecution(api, S, ok.body.id)).outputs).toBe("Hello, Fixed!");
  });
});

describe("reading executions", () => {
  it("gets one execution, and 404s for unknown ids and other scopes", async () => {
    const r = await launch({ workflow: { name: "hello" }, inputs: { name: "Get" } });
    await waitForExecution(api, S, r.body.id);
    const got = await api("GET", `${S}/executions/${r.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(r.body.id);
    expect((await api("GET", `${S}/executions/xdoesnotexist`)).status).toBe(404);
    const other = await api("GET", `/api/v1/projects/default/domains/production/executions/${r.body.id}`);
    expect(other.status).toBe(404);
    expect((await api("GET", `${S}/executions/bad.id`)).status).toBe(400);
  });

  it("lists newest first with phase, workflow and time filters and a cursor", async () => {
    const t0 = Date.now();
    const ids: string[] = [];
    for (const name of ["L1", "L2", "L3"])
      ids.push((await launch({ workflow: { name: "hello" }, inputs: { name } })).body.id);
    for (const id of ids) await waitForExecution(api, S, id);
    const page1 = await api("GET", `${S}/executions?workflow=hello&limit=2&createdAfter=${t0}`);
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((e: any) => e.id)).toEqual([ids[2], ids[1]]);
    expect(page1.body.nextCursor).toBeTypeOf("string");
    const page2 = await api(
      "GET",
      `${S}/executions?workflow=hello&limit=2&createdAfter=${t0}&cursor=${page1.body.nextCursor}`,
    );
    expect(page2.body.items.map((e: any) => e.id)).toEqual([ids[0]]);
    expect(page2.body.nextCursor).toBeUndefined();
    const succeeded = await api(
      "GET",
      `${S}/executions?phase=succeeded,failed&createdAfter=${new Date(t0).toISOString()}`,
    );
    expect(succeeded.body.items.length).toBe(3);
    const before = await api("GET", `${S}/executions?createdBefore=${t0}&workflow=hello`);
    expect(before.body.items.every((e: any) => e.createdAt < t0)).toBe(true);
    for (const bad of [
      "phase=done",
      "createdAfter=yesterday",
      "limit=0",
      "limit=999",
      "cursor=garbage!!",
      "colour=red",
    ]) {
      const r = await api("GET", `${S}/executions?${bad}`);
      expect(r.status, bad).toBe(400);
    }
  });

  it("pages stored events, lists nodes and returns logs", async () => {
    const r = await launch({ workflow: { name: "hello" }, inputs: { name: "Logs" } });
    const id = r.body.id;
    await waitForExecution(api, S, id);
    const all = await api("GET", `${S}/executions/${id}/events`);
    expect(all.status).toBe(200);
    const seqs = all.body.items.map((e: any) => e.seq);
    expect(seqs).toEqual(seqs.map((_: number, i: number) => i + 1));
    expect(all.body.items.at(-1)).toMatchObject({ phase: "succeeded", outputs: "Hello, Logs!" });
    expect(all.body.items.some((e: any) => "pluginState" in e)).toBe(false);
    const page = await api("GET", `${S}/executions/${id}/events?after=2&limit=2`);
    expect(page.body.items.map((e: any) => e.seq)).toEqual([3, 4]);
    expect(page.body.nextAfter).toBe(4);
    const nodes = await api("GET", `${S}/executions/${id}/nodes`);
    expect(nodes.body.items).toHaveLength(1);
    expect(nodes.body.items[0]).toMatchObject({
      nodeId: "say_hello",
      phase: "succeeded",
      attempts: 1,
      outputs: "Hello, Logs!",
    });
    expect(nodes.body.items[0].pluginState).toBeUndefined();
    const logs = await eventually(async () => {
      const l = await api("GET", `${S}/executions/${id}/nodes/say_hello/logs`);
      return l.body.lines?.length ? l : undefined;
    }, "logs");
    expect(logs.body).toMatchObject({ execution: id, node: "say_hello", attempt: 1 });
    expect(logs.body.lines.join("\n")).toContain("greeting Logs");
    expect((await api("GET", `${S}/executions/${id}/nodes/nope/logs`)).status).toBe(404);
  });
});

describe("steering executions", () => {
  it("terminates a running execution", async () => {
    const r = await launch({ workflow: { name: "slow" }, inputs: { ms: 60_000 } });
    await waitForExecution(api, S, r.body.id, (e) => e.phase === "running");
    const t = await api("POST", `${S}/executions/${r.body.id}/terminate`, { reason: "test over" });
    expect(t.status).toBe(200);
    const done = await waitForExecution(api, S, r.body.id);
    expect(done.phase).toBe("aborted");
    // Terminating a finished execution returns it unchanged.
    const again = await api("POST", `${S}/executions/${r.body.id}/terminate`, {});
    expect(again.status).toBe(200);
    expect(again.body.phase).toBe("aborted");
  });

  it("relaunches with the same inputs as a new execution", async () => {
    const r = await launch({ workflow: { name: "hello" }, inputs: { name: "Again" } });
    await waitForExecution(api, S, r.body.id);
    const re = await api("POST", `${S}/executions/${r.body.id}/relaunch`, {});
    expect(re.status).toBe(201);
    expect(re.body.id).not.toBe(r.body.id);
    expect(re.body.inputs).toEqual({ name: "Again" });
    expect((await waitForExecution(api, S, re.body.id)).outputs).toBe("Hello, Again!");
  });

  it("recovers a failed execution reusing its succeeded nodes, and refuses to recover a success", async () => {
    const r = await launch({ workflow: { name: "failing" }, inputs: { name: "Rec" } });
    const failed = await waitForExecution(api, S, r.body.id);
    expect(failed.phase).toBe("failed");
    expect(failed.error.message).toContain("boom after Hello, Rec!");
    const rec = await api("POST", `${S}/executions/${r.body.id}/recover`, {});
    expect(rec.status).toBe(201);
    expect(rec.body.recoverFrom).toBe(r.body.id);
    await waitForExecution(api, S, rec.body.id);
    const events = (await api("GET", `${S}/executions/${rec.body.id}/events`)).body.items;
    expect(events.find((e: any) => e.node === "say_hello" && e.phase === "succeeded").recovered).toBe(true);

    const ok = await launch({ workflow: { name: "hello" }, inputs: { name: "Fine" } });
    await waitForExecution(api, S, ok.body.id);
    const refused = await api("POST", `${S}/executions/${ok.body.id}/recover`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain("nothing to recover");
  });

  it("approves a gate with a signal, once", async () => {
    const r = await launch({ workflow: { name: "approval" }, inputs: { name: "Gate" } });
    const id = r.body.id;
    await eventually(async () => {
      const ev = (await api("GET", `${S}/executions/${id}/events`)).body.items;
      return ev.some((e: any) => e.node === "review" && e.phase === "running");
    }, "the gate to wait");
    expect((await api("POST", `${S}/executions/${id}/signals/review`, {})).status).toBe(400);
    expect((await api("POST", `${S}/executions/${id}/signals/say_hello`, { approved: true })).status).toBe(
      404,
    );
    expect((await api("POST", `${S}/executions/${id}/signals/review`, { approved: "yes" })).status).toBe(400);
    const s = await api("POST", `${S}/executions/${id}/signals/review`, {
      approved: true,
      reason: "looks good",
    });
    expect(s.status).toBe(201);
    expect(s.body).toMatchObject({ execution: id, node: "review", setBy: "anonymous" });
    const done = await waitForExecution(api, S, id);
    expect(done).toMatchObject({ phase: "succeeded", outputs: "Hello, Gate!" });
    const twice = await api("POST", `${S}/executions/${id}/signals/review`, { approved: false });
    expect(twice.status).toBe(409);
  });

  it("runs an activated scheduled launch plan through the plane's scheduler", async () => {
    const lp = structuredClone(payload.launchPlans.find((l) => l.id.name === "fixed_plan")!);
    lp.id.version = "every-300ms";
    lp.schedule = { everyMs: 300 };
    expect((await api("POST", "/api/v1/register", { launchPlans: [lp] })).status).toBe(200);
    expect((await api("POST", `${S}/launchplans/fixed_plan/versions/every-300ms/activate`)).status).toBe(200);
    const fired = await eventually(async () => {
      const r = await api("GET", `${S}/executions?limit=50`);
      return r.body.items.find((e: any) => e.launchPlan?.version === "every-300ms");
    }, "a scheduled execution");
    expect((await api("POST", `${S}/launchplans/fixed_plan/deactivate`)).body).toEqual({ deactivated: true });
    const done = await waitForExecution(api, S, fired.id);
    expect(done).toMatchObject({
      phase: "succeeded",
      outputs: "Hello, Fixed!",
      launchPlan: { name: "fixed_plan" },
    });
  });

  it("counts finished executions and node latencies in /metrics", async () => {
    const m = await api("GET", "/metrics");
    expect(m.text).toMatch(/^tern_executions_finished_total\{phase="succeeded"\} [1-9]\d*$/m);
    expect(m.text).toMatch(/^tern_executions_finished_total\{phase="failed"\} [1-9]\d*$/m);
    expect(m.text).toMatch(
      /^tern_node_duration_seconds_count\{phase="succeeded",plugin="process"\} [1-9]\d*$/m,
    );
    expect(m.text).toMatch(/^tern_executions\{phase="succeeded"\} [1-9]\d*$/m);
    expect(m.text).toMatch(
      /^tern_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/projects\/:project\/domains\/:domain\/executions",status="201"\} [1-9]\d*$/m,
    );
  });
});
