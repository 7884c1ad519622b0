/**
 * Property test of the whole API against bad input: thousands of seeded random
 * requests over the route table — random methods, odd path parameters (path
 * separators, unicode, huge, encoded control characters), malformed JSON,
 * wrong types, huge and deeply nested bodies, odd content types and tokens.
 * Every answer must be 2xx or 4xx, never 5xx, and every error body must be the
 * API's error JSON. The generator is seeded: TERN_FUZZ_SEED=<n> replays (or
 * explores) another sequence; failures name the request index, method, path
 * and body.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken, parseTokens } from "../src/auth/tokens.js";
import type { ControlPlane } from "../src/serve.js";
import { client, compilePayload, makeProject, type Payload, startPlane } from "./helpers/api.js";

/** mulberry32: a small seeded PRNG, so a failure can be replayed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
  };
}

const ROUTES: [string, string][] = [
  ["GET", "/healthz"],
  ["GET", "/readyz"],
  ["GET", "/metrics"],
  ["GET", "/api/v1/projects"],
  ["POST", "/api/v1/projects"],
  ["GET", "/api/v1/projects/:project"],
  ["GET", "/api/v1/domains"],
  ["POST", "/api/v1/register"],
  ["GET", "/api/v1/projects/:project/domains/:domain/tasks"],
  ["GET", "/api/v1/projects/:project/domains/:domain/tasks/:name"],
  ["GET", "/api/v1/projects/:project/domains/:domain/tasks/:name/versions/:version"],
  ["GET", "/api/v1/projects/:project/domains/:domain/workflows"],
  ["GET", "/api/v1/projects/:project/domains/:domain/workflows/:name"],
  ["GET", "/api/v1/projects/:project/domains/:domain/workflows/:name/versions/:version"],
  ["GET", "/api/v1/projects/:project/domains/:domain/workflows/:name/versions/:version/compiled"],
  ["GET", "/api/v1/projects/:project/domains/:domain/launchplans"],
  ["GET", "/api/v1/projects/:project/domains/:domain/launchplans/:name"],
  ["GET", "/api/v1/projects/:project/domains/:domain/launchplans/:name/versions/:version"],
  ["GET", "/api/v1/projects/:project/domains/:domain/launchplans/:name/active"],
  ["POST", "/api/v1/projects/:project/domains/:domain/launchplans/:name/versions/:version/activate"],
  ["POST", "/api/v1/projects/:project/domains/:domain/launchplans/:name/deactivate"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions/batch"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions/:id"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions/:id/terminate"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions/:id/relaunch"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions/:id/recover"],
  ["POST", "/api/v1/projects/:project/domains/:domain/executions/:id/signals/:node"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions/:id/events"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions/:id/nodes"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions/:id/nodes/:node/logs"],
  ["GET", "/api/v1/projects/:project/domains/:domain/executions/:random/watch"],
];

const ODD = [
  "",
  "a/b",
  "..",
  "../../etc/passwd",
  "%2F",
  "%2e%2e",
  "%00",
  "%0A%0D",
  "a%2Fb",
  "名前",
  "héllo",
  "🚀",
  "\u202Eabc",
  "x".repeat(300),
  "y".repeat(5000),
  "-1",
  "0",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "a b",
  "a;b",
  "'; DROP TABLE executions; --",
  "%",
  "%zz",
  "*",
];

let dir: string;
let open: ControlPlane;
let guarded: ControlPlane;
let payload: Payload;
const executionIds: string[] = [];
const TOKEN = "fuzz-token-0123456789abcdef";

beforeAll(async () => {
  dir = makeProject();
  payload = await compilePayload(dir);
  open = await startPlane(dir, { runExecutor: false });
  guarded = await startPlane(dir, {
    runExecutor: false,
    dataDir: `${dir}/.tern-guarded`,
    tokens: parseTokens(
      [
        {
          name: "fuzz",
          tokenSha256: hashToken(TOKEN),
          grants: [{ project: "*", domain: "development", role: "runner" }],
        },
      ],
      "t",
    ),
  });
  const api = client(open);
  expect((await api("POST", "/api/v1/register", payload)).status).toBe(200);
  for (const name of ["hello", "failing", "approval"]) {
    const r = await api("POST", "/api/v1/projects/default/domains/development/executions", {
      workflow: { name },
      inputs: { name: "Fuzz" },
    });
    executionIds.push(r.body.id);
  }
});

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function randomValue(r: ReturnType<typeof rng>, depth = 0): unknown {
  switch (r.int(depth > 3 ? 6 : 9)) {
    case 0:
      return r.pick([0, -1, 1.5, 1e308, -0, Number.MAX_SAFE_INTEGER]);
    case 1:
      return r.pick(ODD);
    case 2:
      return r.pick([true, false, null]);
    case 3:
      return "z".repeat(r.int(20_000));
    case 4:
      return r.pick(["hello", "greet_plan", "say_hello", "development", "production", "default"]);
    case 5:
      return r.pick(executionIds);
    case 6:
      return Array.from({ length: r.int(5) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const keys = [
        "name",
        "version",
        "workflow",
        "launchPlan",
        "inputs",
        "approved",
        "value",
        "reason",
        "tasks",
        "workflows",
        "launchPlans",
        "bundles",
        "digest",
        "contentBase64",
        "description",
        "__proto__",
        "constructor",
        r.pick(ODD),
      ];
      // Own properties even for "__proto__", so the JSON carries them as keys.
      for (let i = r.int(5); i > 0; i--)
        Object.defineProperty(o, r.pick(keys), {
          value: randomValue(r, depth + 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      return o;
    }
  }
}

const text = (v: unknown): string => (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));

function deepNest(n: number): string {
  return "[".repeat(n) + "]".repeat(n);
}

function randomBody(r: ReturnType<typeof rng>, template = ""): { payload?: string; contentType?: string } {
  // The batch route gets batch bodies half the time: rare otherwise.
  const kind = template.endsWith("/batch") && r.chance(0.5) ? 9 : r.int(15);
  const ct = r.pick([
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
    "application/json; charset=utf-16",
  ]);
  switch (kind) {
    case 0:
      return {};
    case 1:
      return {
        payload: r.pick([
          "{",
          "[1,",
          "nul",
          '{"a":}',
          "'x'",
          '{"__proto__":{"x":1}}',
          "\u0000",
          "{}garbage",
          "[]",
          '"str"',
          "42",
        ]),
        contentType: ct,
      };
    case 2:
      return { payload: deepNest(r.pick([10, 1000, 50_000])), contentType: "application/json" };
    case 3:
      return {
        payload: JSON.stringify({ name: "x".repeat(r.pick([100, 10_000, 9_000_000])) }),
        contentType: "application/json",
      };
    case 4:
      return {
        payload: JSON.stringify({ workflow: { name: randomValue(r) }, inputs: randomValue(r) }),
        contentType: "application/json",
      };
    case 5:
      return {
        payload: JSON.stringify({
          launchPlan: { name: r.pick(["greet_plan", "fixed_plan", ...ODD]), version: randomValue(r) },
          inputs: randomValue(r),
        }),
        contentType: "application/json",
      };
    case 6: {
      // A real spec with one field broken.
      const w = structuredClone(r.pick(payload.workflows)) as any;
      const paths: ((x: any) => void)[] = [
        (x) => (x.workflow.id.version = randomValue(r)),
        (x) => (x.workflow.id.name = r.pick(ODD)),
        (x) => (x.workflow.nodes = randomValue(r)),
        (x) => (x.tasks = randomValue(r)),
        (x) => (x.workflow.interface.inputs = { [r.pick(ODD)]: randomValue(r) }),
        (x) => (x.specVersion = randomValue(r)),
      ];
      r.pick(paths)(w);
      return {
        payload: JSON.stringify({
          workflows: [w],
          bundles: r.chance(0.3) ? [{ digest: randomValue(r), contentBase64: randomValue(r) }] : undefined,
        }),
        contentType: "application/json",
      };
    }
    case 7: {
      const lp = structuredClone(r.pick(payload.launchPlans)) as any;
      lp.schedule = r.pick([
        { cron: r.pick(["* * *", "61 * * * *", "@hourly", "0 0 30 2 *", r.pick(ODD)]) },
        { everyMs: randomValue(r) },
        { cron: "0 3 * * *", timezone: r.pick(ODD) },
        randomValue(r),
      ]);
      lp.id.version = `fuzz-${r.int(1e9)}`;
      return { payload: JSON.stringify({ launchPlans: [lp] }), contentType: "application/json" };
    }
    case 8:
      return {
        payload: JSON.stringify({ approved: randomValue(r), value: randomValue(r), reason: randomValue(r) }),
        contentType: "application/json",
      };
    case 9: {
      // A batch: good items, random ones, or too many.
      const good = { workflow: { name: "hello" }, inputs: { name: "Fuzz" } };
      const items = Array.from({ length: r.pick([0, 1, 2, 3, 1001]) }, () =>
        r.chance(0.6)
          ? good
          : r.chance(0.5)
            ? { workflow: { name: randomValue(r) }, inputs: randomValue(r) }
            : randomValue(r),
      );
      return {
        payload: JSON.stringify(r.chance(0.9) ? { executions: items } : { executions: randomValue(r) }),
        contentType: "application/json",
      };
    }
    default:
      return { payload: JSON.stringify(randomValue(r)), contentType: ct };
  }
}

function randomPath(r: ReturnType<typeof rng>, template: string): string {
  const param = (name: string): string => {
    const good: Record<string, string[]> = {
      project: ["default", "default", "ghost"],
      domain: ["development", "production", "qa"],
      name: ["hello", "greet_plan", "say_hello", "fixed_plan"],
      version: [payload.workflows[0].workflow.id.version, "1", "latest"],
      id: executionIds,
      node: ["say_hello", "review", "sub/review"],
      random: ["xnope", "x0000000000"],
    };
    if (r.chance(0.5)) return encodeURIComponent(r.pick(good[name]));
    const odd = r.pick(ODD);
    return r.chance(0.5) ? odd : encodeURIComponent(odd);
  };
  let p = template.replace(/:(\w+)/g, (_, n) => param(n));
  if (r.chance(0.3)) {
    const q = new URLSearchParams();
    for (let i = r.int(4); i > 0; i--)
      q.append(
        r.pick([
          "limit",
          "after",
          "cursor",
          "phase",
          "workflow",
          "createdAfter",
          "createdBefore",
          "name",
          "attempt",
          r.pick(ODD),
        ]),
        text(randomValue(r)).slice(0, 3000),
      );
    p += `?${q}`;
  }
  if (r.chance(0.05)) p += r.pick(["/", "//", "/extra", "?", "#frag", "%"]);
  return p;
}

async function fuzz(plane: ControlPlane, seed: number, count: number, token?: () => string | undefined) {
  const r = rng(seed);
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const [routeMethod, template] = r.pick(ROUTES);
    const method = r.chance(0.85)
      ? routeMethod
      : r.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    const url = randomPath(r, template);
    const body =
      method === "GET" || method === "HEAD" ? (r.chance(0.1) ? randomBody(r) : {}) : randomBody(r, template);
    const headers: Record<string, string> = {};
    if (body.contentType) headers["content-type"] = body.contentType;
    const t = token?.();
    if (t !== undefined) headers.authorization = t;
    if (r.chance(0.05)) headers["last-event-id"] = text(randomValue(r)).slice(0, 100);
    if (r.chance(0.05)) headers["x-request-id"] = text(randomValue(r)).slice(0, 100);
    // Waits of a second at most: the open sandbox runs no executor, nothing ends.
    if (r.chance(0.05))
      headers.prefer = r.pick([
        "wait=1",
        "wait=0",
        "wait=abc",
        "wait=-1",
        "wait",
        text(randomValue(r)).slice(0, 200),
      ]);
    const res = await plane.app.inject({
      method: method as "GET",
      url,
      headers,
      ...(body.payload !== undefined ? { payload: body.payload } : {}),
    });
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    const where = `#${i} ${method} ${url.slice(0, 120)} (${body.payload?.slice(0, 80) ?? "no body"})`;
    if (res.statusCode >= 500 || res.statusCode < 200) {
      failures.push(`${where} → ${res.statusCode} ${res.body.slice(0, 300)}`);
      continue;
    }
    if (res.statusCode >= 400 && method !== "HEAD") {
      let ok = false;
      try {
        const j = JSON.parse(res.body);
        ok =
          typeof j?.error?.code === "string" &&
          /^TERN_E_[A-Z_]+$/.test(j.error.code) &&
          typeof j.error.message === "string" &&
          j.error.message.length > 0;
      } catch {
        ok = false;
      }
      if (!ok)
        failures.push(`${where} → ${res.statusCode} without the error JSON: ${res.body.slice(0, 200)}`);
    } else if (
      String(res.headers["content-type"] ?? "").startsWith("application/json") &&
      method !== "HEAD"
    ) {
      try {
        JSON.parse(res.body);
      } catch {
        failures.push(`${where} → ${res.statusCode} with a body that is not JSON`);
      }
    }
  }
  return { failures, statuses };
}

describe("random requests never get a 5xx", () => {
  it("2,400 requests to the open sandbox: every answer is 2xx or 4xx with the error JSON", async () => {
    const { failures, statuses } = await fuzz(open, Number(process.env.TERN_FUZZ_SEED ?? 0x7e57), 2400);
    expect(failures.slice(0, 10)).toEqual([]);
    // The generator reaches both sides: successes and each kind of refusal.
    for (const s of [200, 400, 404, 413, 415]) expect(statuses.get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
    expect((await client(open)("GET", "/healthz")).status).toBe(200);
  });

  it("600 requests with random tokens to a token-protected server", async () => {
    const r = rng(99);
    const { failures, statuses } = await fuzz(guarded, 0xbeef, 600, () =>
      r.pick([
        undefined,
        `Bearer ${TOKEN}`,
        `Bearer ${TOKEN}`,
        "Bearer",
        "Bearer wrong-token-0123456789",
        "Basic Zm9vOmJhcg==",
        `bearer ${TOKEN}`,
        "Bearer  a b",
        "x".repeat(5000),
      ]),
    );
    expect(failures.slice(0, 10)).toEqual([]);
    for (const s of [200, 401, 403]) expect(statuses.get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
  });
});
