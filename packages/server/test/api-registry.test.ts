/**
 * The registry API: projects and domains, POST /register (created, exists,
 * 409 with what differs, bundle checks, references, schedules), reading tasks,
 * workflows and launch plans, activation, plus health, readiness, metrics and
 * the OpenAPI document.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/serve.js";
import { client, compilePayload, makeProject, type Payload, startPlane } from "./helpers/api.js";

let dir: string;
let plane: ControlPlane;
let api: ReturnType<typeof client>;
let payload: Payload;
const S = "/api/v1/projects/default/domains/development";

beforeAll(async () => {
  dir = makeProject();
  payload = await compilePayload(dir);
  plane = await startPlane(dir, { runExecutor: false });
  api = client(plane);
});

afterAll(async () => {
  await plane?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const wf = (name: string) => payload.workflows.find((w) => w.workflow.id.name === name)!;

describe("projects and domains", () => {
  it("lists the default project with the three default domains", async () => {
    const r = await api("GET", "/api/v1/projects");
    expect(r.status).toBe(200);
    expect(r.body.items.map((p: any) => p.name)).toContain("default");
    expect(r.body.items[0].domains).toEqual(["development", "staging", "production"]);
    const d = await api("GET", "/api/v1/domains");
    expect(d.body).toEqual({ items: ["development", "staging", "production"] });
  });

  it("creates a project once, then answers 409", async () => {
    const r = await api("POST", "/api/v1/projects", { name: "analytics", description: "numbers" });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      name: "analytics",
      description: "numbers",
      domains: ["development", "staging", "production"],
    });
    const again = await api("POST", "/api/v1/projects", { name: "analytics" });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("TERN_E_CONFLICT");
    expect((await api("GET", "/api/v1/projects/analytics")).body.name).toBe("analytics");
  });

  it("refuses odd project names with 400 and unknown projects with 404", async () => {
    for (const name of ["a/b", "../etc", "x".repeat(201), "héllo", "", "1abc"]) {
      const r = await api("POST", "/api/v1/projects", { name });
      expect(r.status, name).toBe(400);
      expect(r.body.error.code).toBe("TERN_E_BAD_REQUEST");
      expect(r.body.error.message).toContain("name");
    }
    const missing = await api("GET", "/api/v1/projects/nope");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("TERN_E_NOT_FOUND");
    const badDomain = await api("GET", "/api/v1/projects/default/domains/qa/workflows");
    expect(badDomain.status).toBe(404);
    expect(badDomain.body.error.message).toContain('domain "qa" does not exist');
  });
});

describe("POST /register", () => {
  it("registers compiled workflows, their tasks, launch plans and the bundle, then reports exists", async () => {
    const first = await api("POST", "/api/v1/register", payload);
    expect(first.status).toBe(200);
    const kinds = new Set(first.body.entities.map((e: any) => e.kind));
    expect(kinds).toEqual(new Set(["task", "workflow", "launch_plan"]));
    expect(first.body.entities.every((e: any) => e.status === "created")).toBe(true);
    expect(first.body.bundles).toEqual([{ digest: payload.bundles[0].digest, status: "created" }]);
    const names = first.body.entities.filter((e: any) => e.kind === "workflow").map((e: any) => e.id.name);
    expect(names).toEqual(
      expect.arrayContaining(["hello", "slow", "failing", "approval", "with_secret", "say_hello"]),
    );

    const again = await api("POST", "/api/v1/register", payload);
    expect(again.status).toBe(200);
    expect(again.body.entities.every((e: any) => e.status === "exists")).toBe(true);
    expect(again.body.bundles).toEqual([{ digest: payload.bundles[0].digest, status: "exists" }]);
  });

  it("refuses other content under a taken version with 409 naming what differs, and writes nothing", async () => {
    const hello = structuredClone(wf("hello"));
    const key = Object.keys(hello.tasks)[0];
    hello.tasks[key].metadata.retries.user = 7;
    hello.workflow.description = "changed";
    const newTask = structuredClone(hello.tasks[key]);
    newTask.id.name = "brand_new_task";
    const r = await api("POST", "/api/v1/register", { workflows: [hello], tasks: [newTask] });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("TERN_E_VERSION_CONFLICT");
    expect(r.body.error.message).toContain("metadata.retries.user");
    const conflicts = r.body.error.details.conflicts;
    expect(conflicts.map((c: any) => c.kind).sort()).toEqual(["task", "workflow"]);
    expect(conflicts.find((c: any) => c.kind === "workflow").changed).toContain("description");
    // Nothing of the refused request was written.
    const t = await api("GET", `${S}/tasks/brand_new_task`);
    expect(t.status).toBe(404);
  });

  it("checks bundles against their digest and refuses tasks whose code is missing", async () => {
    const bad = await api("POST", "/api/v1/register", {
      bundles: [{ digest: `sha256:${"0".repeat(64)}`, contentBase64: "aGVsbG8=" }],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("bundles[0]");
    expect(bad.body.error.details.actual).toMatch(/^sha256:/);
    const notB64 = await api("POST", "/api/v1/register", {
      bundles: [{ digest: `sha256:${"0".repeat(64)}`, contentBase64: "%%%" }],
    });
    expect(notB64.status).toBe(400);

    const orphan = structuredClone(wf("hello"));
    for (const t of Object.values(orphan.tasks)) t.code!.bundle = `sha256:${"a".repeat(64)}`;
    orphan.workflow.id.version = "orphan-1";
    for (const t of Object.values(orphan.tasks)) t.id.version = "orphan-1";
    const r = await api("POST", "/api/v1/register", { workflows: [orphan] });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("is neither in the request nor stored");
    expect(r.body.error.hint).toContain("bundles");
  });

  it("validates specs and names where in the request the problem is", async () => {
    const r = await api("POST", "/api/v1/register", {
      tasks: [{ kind: "task", id: { project: "default" } }],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("TERN_E_SPEC_INVALID");
    expect(r.body.error.message).toMatch(/^tasks\[0\]: invalid TaskSpec/);
    const empty = await api("POST", "/api/v1/register", {});
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toBe("nothing to register");
    const unknownField = await api("POST", "/api/v1/register", { task: [] });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.message).toContain('"task"');
  });

  it("assembles a bare workflow spec from registered tasks, and names a missing one", async () => {
    const spec = structuredClone(wf("hello").workflow);
    spec.id.version = "bare-1";
    const ok = await api("POST", "/api/v1/register", { workflows: [spec] });
    expect(ok.status).toBe(200);
    const compiled = await api("GET", `${S}/workflows/hello/versions/bare-1/compiled`);
    expect(compiled.status).toBe(200);
    expect(Object.keys(compiled.body.tasks)).toEqual(Object.keys(wf("hello").tasks));

    const broken = structuredClone(spec);
    broken.id.version = "bare-2";
    (broken.nodes[0] as any).task = "say_hello@does-not-exist";
    const r = await api("POST", "/api/v1/register", { workflows: [broken] });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("say_hello@does-not-exist");
  });

  it("refuses invalid and never-firing cron schedules and unknown time zones with 400", async () => {
    const lp = structuredClone(payload.launchPlans.find((l) => l.id.name === "fixed_plan")!);
    for (const [schedule, expected] of [
      [{ cron: "61 * * * *" }, "invalid schedule"],
      [{ cron: "not a cron" }, "invalid schedule"],
      [{ cron: "0 0 31 2 *" }, "never fires"],
      [{ cron: "0 3 * * *", timezone: "Mars/Olympus" }, "Mars/Olympus"],
    ] as const) {
      const bad = { ...lp, id: { ...lp.id, version: `bad-${Math.random()}` }, schedule };
      const r = await api("POST", "/api/v1/register", { launchPlans: [bad] });
      expect(r.status, JSON.stringify(schedule)).toBe(400);
      expect(r.body.error.message).toContain(expected);
    }
    const wrongType = await api("POST", "/api/v1/register", {
      launchPlans: [{ ...lp, schedule: { cron: 5 } }],
    });
    expect(wrongType.status).toBe(400);
  });
});

describe("reading the registry", () => {
  it("lists and gets tasks, workflows and launch plans", async () => {
    const tasks = await api("GET", `${S}/tasks`);
    expect(tasks.status).toBe(200);
    expect(tasks.body.items.map((t: any) => t.id.name)).toEqual(
      expect.arrayContaining(["say_hello", "nap", "boom", "with_secret"]),
    );
    expect(tasks.body.items[0].spec).toBeUndefined();
    const versions = await api("GET", `${S}/workflows/hello`);
    expect(versions.body.items.length).toBeGreaterThanOrEqual(2);
    const v = wf("hello").workflow.id.version;
    const one = await api("GET", `${S}/workflows/hello/versions/${v}`);
    expect(one.status).toBe(200);
    expect(one.body.spec.kind).toBe("workflow");
    expect(one.body.digest).toMatch(/^sha256:/);
    const filtered = await api("GET", `${S}/tasks?name=nap&limit=5`);
    expect(filtered.body.items.every((t: any) => t.id.name === "nap")).toBe(true);
    const lps = await api("GET", `${S}/launchplans`);
    expect(lps.body.items.map((l: any) => l.id.name).sort()).toEqual(["fixed_plan", "greet_plan"]);
    const fixed = lps.body.items.find((l: any) => l.id.name === "fixed_plan");
    expect(fixed.schedule).toEqual({ cron: "0 3 * * *" });
    expect(fixed.active).toBe(false);
  });

  it("answers 404 for unknown names and versions", async () => {
    expect((await api("GET", `${S}/workflows/nope`)).status).toBe(404);
    const r = await api("GET", `${S}/tasks/say_hello/versions/nope`);
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain("say_hello@nope");
    expect((await api("GET", `${S}/workflows/nope/versions/1/compiled`)).status).toBe(404);
  });

  it("lists secret references only, never values", async () => {
    const t = await api("GET", `${S}/tasks/with_secret`);
    const v = t.body.items[0].id.version;
    const spec = (await api("GET", `${S}/tasks/with_secret/versions/${v}`)).body.spec;
    expect(spec.metadata.secrets).toEqual([{ group: "db", key: "password", env: "DB_PASSWORD" }]);
  });

  it("activates and deactivates launch plans", async () => {
    const lp = payload.launchPlans.find((l) => l.id.name === "fixed_plan")!;
    expect((await api("GET", `${S}/launchplans/fixed_plan/active`)).status).toBe(404);
    const a = await api("POST", `${S}/launchplans/fixed_plan/versions/${lp.id.version}/activate`);
    expect(a.status).toBe(200);
    expect(a.body.active).toBe(true);
    const active = await api("GET", `${S}/launchplans/fixed_plan/active`);
    expect(active.body.id.version).toBe(lp.id.version);
    const d = await api("POST", `${S}/launchplans/fixed_plan/deactivate`);
    expect(d.body).toEqual({ deactivated: true });
    expect((await api("POST", `${S}/launchplans/fixed_plan/deactivate`)).body).toEqual({
      deactivated: false,
    });
    expect((await api("POST", `${S}/launchplans/fixed_plan/versions/nope/activate`)).status).toBe(404);
    expect((await api("POST", `${S}/launchplans/nope/deactivate`)).status).toBe(404);
  });
});

describe("health, metrics, docs and errors", () => {
  it("answers /healthz, /readyz and /metrics", async () => {
    expect((await api("GET", "/healthz")).body).toEqual({ status: "ok" });
    expect((await api("GET", "/readyz")).body).toEqual({ status: "ready", database: "sqlite" });
    const m = await api("GET", "/metrics");
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/^tern_queue_depth \d+$/m);
    expect(m.text).toMatch(/^tern_executions\{phase="queued"\} \d+$/m);
    expect(m.text).toContain("tern_http_request_duration_seconds_bucket");
    expect(m.text).toContain("# TYPE tern_node_duration_seconds histogram");
    expect(m.text).toContain("# TYPE tern_plugin_errors_total counter");
  });

  it("publishes an OpenAPI document listing every route", async () => {
    const doc = await api("GET", "/docs/json");
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe("3.0.3");
    const paths = Object.keys(doc.body.paths);
    for (const p of [
      "/api/v1/register",
      "/api/v1/projects",
      "/api/v1/projects/{project}/domains/{domain}/executions",
      "/api/v1/projects/{project}/domains/{domain}/executions/{id}/watch",
      "/api/v1/projects/{project}/domains/{domain}/executions/{id}/signals/{node}",
      "/api/v1/projects/{project}/domains/{domain}/launchplans/{name}/versions/{version}/activate",
    ]) {
      expect(paths).toContain(p);
    }
    const ui = await api("GET", "/docs");
    expect(ui.status).toBe(200);
    expect(ui.text).toContain("<html");
  });

  it("gives every error the same JSON shape, with a request id", async () => {
    const r = await api("GET", "/api/v2/nothing", undefined, { "x-request-id": "trace-123" });
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: "TERN_E_ROUTE_NOT_FOUND", requestId: "trace-123" });
    expect(r.headers["x-request-id"]).toBe("trace-123");
    const malformed = await api("POST", "/api/v1/projects", "{not json");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe("TERN_E_BAD_REQUEST");
    const wrongType = await api("POST", "/api/v1/projects", "name=x", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.code).toBe("TERN_E_UNSUPPORTED_MEDIA_TYPE");
  });

  it("refuses oversized bodies with 413", async () => {
    const big = await api(
      "POST",
      "/api/v1/projects",
      JSON.stringify({ name: "x", description: "y".repeat(9 * 1024 * 1024) }),
    );
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("TERN_E_PAYLOAD_TOO_LARGE");
  });
});
