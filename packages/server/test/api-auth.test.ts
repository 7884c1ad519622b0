/**
 * Tenancy and security: tokens and roles per project and domain on every
 * route (viewer < runner < admin × development/production), 401 and 403
 * messages, the refusal to listen beyond loopback without tokens, token
 * configuration, and secrets kept out of logs and responses.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken, parseTokens } from "../src/auth/tokens.js";
import {
  type ControlPlane,
  createControlPlane,
  createLogger,
  isLoopback,
  startServer,
} from "../src/serve.js";
import {
  client,
  compilePayload,
  makeProject,
  type Payload,
  startPlane,
  waitForExecution,
} from "./helpers/api.js";

const ROLES = ["viewer", "runner", "admin"] as const;
const DOMAINS = ["development", "production"] as const;
const RANK = { viewer: 1, runner: 2, admin: 3 };
const secret = (role: string, domain: string) => `tok-${role}-${domain}-0123456789abcdef`;
const tokens = [
  ...ROLES.flatMap((role) =>
    DOMAINS.map((domain) => ({
      name: `${role}-${domain}`,
      token: secret(role, domain),
      grants: [{ project: "*", domain, role }],
    })),
  ),
  {
    name: "analytics-only",
    tokenSha256: hashToken("tok-analytics-0123456789abcdef"),
    grants: [{ project: "analytics", domain: "*", role: "admin" }],
  },
];
const ADMIN = secret("admin", "development");
const PROD_ADMIN = secret("admin", "production");

let dir: string;
let plane: ControlPlane;
let logs: string;
let payloads: Record<string, Payload>;
const logStream = new PassThrough();

beforeAll(async () => {
  dir = makeProject();
  logs = "";
  logStream.on("data", (d) => (logs += d));
  payloads = {
    development: await compilePayload(dir, { domain: "development" }),
    production: await compilePayload(dir, { domain: "production" }),
  };
  plane = await startPlane(dir, {
    tokens: parseTokens(tokens, "test"),
    logger: createLogger({ level: "info", destination: logStream }),
  });
  for (const d of DOMAINS) {
    const r = await client(plane, d === "development" ? ADMIN : PROD_ADMIN)(
      "POST",
      "/api/v1/register",
      payloads[d],
    );
    expect(r.status).toBe(200);
  }
});

afterAll(async () => {
  await plane?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const scope = (d: string) => `/api/v1/projects/default/domains/${d}`;

describe("authentication", () => {
  it("answers 401 without a token, with a malformed header and with an unknown token", async () => {
    const none = await client(plane)("GET", `${scope("development")}/executions`);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe("TERN_E_UNAUTHORIZED");
    expect(none.body.error.message).toContain("Authorization: Bearer");
    expect(none.body.error.hint).toContain("TERN_TOKEN");
    const malformed = await client(plane)("GET", `${scope("development")}/executions`, undefined, {
      authorization: "Basic abc",
    });
    expect(malformed.status).toBe(401);
    const unknown = await client(plane, "not-a-known-token-at-all")(
      "GET",
      `${scope("development")}/executions`,
    );
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.message).toBe("the token is not known to this server");
    expect(unknown.text).not.toContain("not-a-known-token-at-all");
  });

  it("keeps health and docs open, and /metrics behind a token", async () => {
    const anon = client(plane);
    expect((await anon("GET", "/healthz")).status).toBe(200);
    expect((await anon("GET", "/readyz")).status).toBe(200);
    expect((await anon("GET", "/docs/json")).status).toBe(200);
    expect((await anon("GET", "/metrics")).status).toBe(401);
    expect((await client(plane, secret("viewer", "production"))("GET", "/metrics")).status).toBe(200);
  });
});

describe("authorization matrix: viewer < runner < admin, per domain", () => {
  for (const role of ROLES) {
    for (const home of DOMAINS) {
      it(`${role} of ${home}`, async () => {
        const api = client(plane, secret(role, home));
        for (const target of DOMAINS) {
          const mine = target === home;
          const S = scope(target);
          // viewer: read
          const list = await api("GET", `${S}/executions`);
          expect(list.status, `list ${target}`).toBe(mine ? 200 : 403);
          const wfs = await api("GET", `${S}/workflows`);
          expect(wfs.status).toBe(mine ? 200 : 403);
          // runner: launch, terminate, relaunch, recover, signal
          const canRun = mine && RANK[role] >= RANK.runner;
          const launched = await api("POST", `${S}/executions`, {
            workflow: { name: "hello" },
            inputs: { name: role },
          });
          expect(launched.status, `launch in ${target}`).toBe(canRun ? 201 : 403);
          if (!canRun) {
            expect(launched.body.error.code).toBe("TERN_E_FORBIDDEN");
            expect(launched.body.error.message).toContain(
              `needs role runner in project "default", domain "${target}"`,
            );
            expect(launched.body.error.message).toContain(
              mine ? `(it has ${role})` : "(it has no role there)",
            );
          } else {
            const id = launched.body.id;
            await waitForExecution(client(plane, ADMIN.replace("development", target)), S, id);
            expect((await api("POST", `${S}/executions/${id}/relaunch`, {})).status).toBe(201);
            expect((await api("POST", `${S}/executions/${id}/terminate`, {})).status).toBe(200);
            expect((await api("POST", `${S}/executions/${id}/recover`, {})).status).toBe(409);
          }
          for (const action of ["terminate", "relaunch", "recover"]) {
            if (canRun) continue;
            const r = await api("POST", `${S}/executions/xanything/${action}`, {});
            expect(r.status, `${action} in ${target}`).toBe(403);
          }
          if (!canRun)
            expect(
              (await api("POST", `${S}/executions/xanything/signals/review`, { approved: true })).status,
            ).toBe(403);
          // admin: register, activate, deactivate
          const canAdmin = mine && role === "admin";
          const reg = await api("POST", "/api/v1/register", payloads[target]);
          expect(reg.status, `register in ${target}`).toBe(canAdmin ? 200 : 403);
          if (!canAdmin) expect(reg.body.error.message).toContain("needs role admin");
          const lp = payloads[target].launchPlans[0];
          const act = await api("POST", `${S}/launchplans/${lp.id.name}/versions/${lp.id.version}/activate`);
          expect(act.status).toBe(canAdmin ? 200 : 403);
          const deact = await api("POST", `${S}/launchplans/${lp.id.name}/deactivate`);
          expect(deact.status).toBe(canAdmin ? 200 : 403);
        }
        const proj = await api("POST", "/api/v1/projects", { name: `p_${role}_${home}` });
        expect(proj.status).toBe(role === "admin" ? 201 : 403);
      });
    }
  }

  it("shows a project-scoped token only its project, and lets it administer only there", async () => {
    const api = client(plane, "tok-analytics-0123456789abcdef");
    expect((await api("POST", "/api/v1/projects", { name: "analytics" })).status).toBe(201);
    const list = await api("GET", "/api/v1/projects");
    expect(list.body.items.map((p: any) => p.name)).toEqual(["analytics"]);
    expect((await api("GET", "/api/v1/projects/default")).status).toBe(403);
    expect((await api("POST", "/api/v1/projects", { name: "elsewhere" })).status).toBe(403);
    const reg = await api("POST", "/api/v1/register", await compilePayload(dir, { project: "analytics" }));
    expect(reg.status).toBe(200);
    expect((await api("GET", "/api/v1/projects/analytics/domains/production/workflows")).body).toEqual({
      items: [],
    });
    expect((await api("GET", "/api/v1/projects/analytics/domains/development/workflows/hello")).status).toBe(
      200,
    );
  });

  it("records the token's name as who set a signal", async () => {
    const api = client(plane, secret("runner", "development"));
    const r = await api("POST", `${scope("development")}/executions`, {
      workflow: { name: "approval" },
      inputs: { name: "Sig" },
    });
    const id = r.body.id;
    await waitForExecution(api, scope("development"), id, (e) => e.phase === "running");
    let s: any;
    for (let i = 0; i < 400; i++) {
      s = await api("POST", `${scope("development")}/executions/${id}/signals/review`, { approved: true });
      if (s.status === 201) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    expect(s.status).toBe(201);
    expect(s.body.setBy).toBe("runner-development");
    expect((await waitForExecution(api, scope("development"), id)).phase).toBe("succeeded");
  });

  it("refuses file inputs that name server-side paths when tokens are on", async () => {
    const api = client(plane, ADMIN);
    const r = await api("POST", `${scope("development")}/executions`, {
      workflow: { name: "hello" },
      inputs: { name: { $tern: "file", path: "/etc/passwd" } },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(r.body.error.message).toContain("server-side path");
  });
});

describe("listening beyond loopback", () => {
  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.5", "192.168.1.1", "example.com"])
      expect(isLoopback(h), h).toBe(false);
  });

  it("refuses to start on 0.0.0.0 or :: without tokens, with a clear error", async () => {
    for (const host of ["0.0.0.0", "::"]) {
      const err = await createControlPlane({
        host,
        workDir: dir,
        dataDir: path.join(dir, ".tern-refuse"),
        logger: false,
      }).then(
        () => undefined,
        (e) => e,
      );
      expect(err?.code, host).toBe("TERN_E_CONFIG");
      expect(err.message).toContain(`refusing to listen on ${host} without tokens`);
      expect(err.hint).toContain("--tokens");
    }
    expect(fs.existsSync(path.join(dir, ".tern-refuse", "tern.db"))).toBe(false);
  });

  it("starts on 0.0.0.0 with tokens", async () => {
    const s = await startServer({
      host: "0.0.0.0",
      port: 0,
      workDir: dir,
      dataDir: path.join(dir, ".tern-any"),
      logger: false,
      tokens: parseTokens(tokens, "t"),
      runExecutor: false,
    });
    try {
      const port = new URL(s.url).port;
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/projects`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(r.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/api/v1/projects`)).status).toBe(401);
    } finally {
      await s.close();
    }
  });
});

describe("token configuration", () => {
  it("refuses short, duplicate and malformed tokens with the entry named", () => {
    const bad = (v: unknown) => {
      try {
        parseTokens(v, "tokens.json");
        return undefined;
      } catch (e) {
        return e as { code: string; message: string };
      }
    };
    expect(
      bad([{ name: "a", token: "short", grants: [{ project: "*", domain: "*", role: "admin" }] }])?.message,
    ).toContain("shorter than 16");
    expect(bad([{ name: "a", grants: [{ project: "*", domain: "*", role: "admin" }] }])?.message).toContain(
      "tokens[0] (a) needs token",
    );
    expect(
      bad([{ name: "a", token: "x".repeat(20), grants: [{ project: "*", domain: "*", role: "owner" }] }])
        ?.message,
    ).toContain("role must be one of");
    expect(bad([{ name: "a", token: "x".repeat(20), grants: [] }])?.message).toContain("at least one grant");
    const dup = { token: "y".repeat(20), grants: [{ project: "*", domain: "*", role: "viewer" }] };
    expect(
      bad([
        { name: "a", ...dup },
        { name: "a", ...dup, token: "z".repeat(20) },
      ])?.message,
    ).toContain('two tokens are named "a"');
    expect(bad({ nope: 1 })?.code).toBe("TERN_E_CONFIG");
    const ok = parseTokens(
      {
        tokens: [
          {
            name: "ci",
            token: "q".repeat(24),
            grants: [{ project: "*", domain: "development", role: "runner" }],
          },
        ],
      },
      "t",
    );
    expect(ok[0].token).toBeUndefined();
    expect(ok[0].tokenSha256).toBe(hashToken("q".repeat(24)));
  });

  it("loads tokens and projects from tern.config.ts and from a tokens file", async () => {
    const cfgDir = makeProject("tern-cfg-");
    try {
      fs.writeFileSync(
        path.join(cfgDir, "tern.config.ts"),
        `export default { projects: ["ml", { name: "ops", description: "operations" }], tokens: [{ name: "cfg", token: "config-token-0123456789", grants: [{ project: "*", domain: "*", role: "viewer" }] }] };\n`,
      );
      fs.writeFileSync(
        path.join(cfgDir, "tokens.json"),
        JSON.stringify([
          {
            name: "file",
            tokenSha256: hashToken("file-token-0123456789"),
            grants: [{ project: "ml", domain: "*", role: "viewer" }],
          },
        ]),
      );
      const p = await createControlPlane({
        workDir: cfgDir,
        config: path.join(cfgDir, "tern.config.ts"),
        tokensFile: path.join(cfgDir, "tokens.json"),
        logger: false,
        runExecutor: false,
      });
      try {
        const cfg = await client(p, "config-token-0123456789")("GET", "/api/v1/projects");
        expect(cfg.body.items.map((x: any) => x.name).sort()).toEqual(["default", "ml", "ops"]);
        const file = await client(p, "file-token-0123456789")("GET", "/api/v1/projects");
        expect(file.body.items.map((x: any) => x.name)).toEqual(["ml"]);
      } finally {
        await p.close();
      }
    } finally {
      fs.rmSync(cfgDir, { recursive: true, force: true });
    }
  });
});

describe("secrets", () => {
  it("never writes tokens to the log, and redacts Authorization headers", async () => {
    const every = tokens.filter((t) => t.token).map((t) => t.token!);
    for (const t of every) await client(plane, t)("GET", "/api/v1/projects");
    await client(plane, "wrong-token-0123456789abcdef")("GET", "/api/v1/projects");
    const logger = createLogger({ destination: logStream });
    logger.info({ req: { headers: { authorization: `Bearer ${ADMIN}` } }, token: ADMIN }, "probe");
    await new Promise((r) => setTimeout(r, 50));
    expect(logs).toContain('"msg":"request"');
    expect(logs).toContain('"principal":"admin-development"');
    expect(logs).toContain("[redacted]");
    for (const t of [...every, "wrong-token-0123456789abcdef"]) expect(logs).not.toContain(t);
    expect(logs).not.toMatch(/Bearer (?!<token>)/);
  });

  it("keeps secret values out of specs, events and responses", async () => {
    const api = client(plane, ADMIN);
    const S = scope("development");
    const r = await api("POST", `${S}/executions`, { workflow: { name: "with_secret" } });
    expect(r.status).toBe(201);
    await waitForExecution(api, S, r.body.id);
    const events = await api("GET", `${S}/executions/${r.body.id}/events`);
    const nodes = await api("GET", `${S}/executions/${r.body.id}/nodes`);
    const task = (await api("GET", `${S}/tasks/with_secret`)).body.items[0];
    const spec = await api("GET", `${S}/tasks/with_secret/versions/${task.id.version}`);
    expect(spec.body.spec.metadata.secrets).toEqual([{ group: "db", key: "password", env: "DB_PASSWORD" }]);
    for (const text of [events.text, nodes.text, spec.text, r.text]) {
      for (const t of tokens.filter((x) => x.token)) expect(text).not.toContain(t.token);
      expect(text).not.toContain("pluginState");
    }
  });
});
