/**
 * The conformance suite must fail a plugin that breaks the contract. A deliberately broken
 * plugin (launch not idempotent, check that mutates its state, a user error reported as a
 * system error, an opt-out without a reason) is run through the suite in a child vitest, and
 * exactly those checks must fail while the rest pass.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const here = path.dirname(fileURLToPath(import.meta.url));
const testkitSrc = path.resolve(here, "../src/index.ts");
// The fixture lives in a temporary directory: it imports by absolute path.
const coreEntry = path.join(
  path.dirname(createRequire(import.meta.url).resolve("@tern/core/package.json")),
  "dist",
  "index.js",
);
const vitestBin = path.join(
  path.dirname(createRequire(import.meta.url).resolve("vitest/package.json")),
  "vitest.mjs",
);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-conformance-catches-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const FIXTURE = `
import { CONTRACT_VERSION } from ${JSON.stringify(coreEntry)};
import { testBackendPlugin } from ${JSON.stringify(testkitSrc)};

const spec = (name, kind) => ({
  kind: "task", specVersion: 1, id: { project: "p", domain: "development", name, version: "1" }, type: "demo",
  interface: { inputs: {}, output: {} },
  metadata: { retries: { user: 0, system: 0, backoff: { baseMs: 1, maxMs: 1, factor: 1, jitter: 0 } }, interruptible: false, secrets: [], env: {} },
  custom: { kind },
});

// An in-memory "service" with jobs.
const jobs = new Map();
let next = 0;
const broken = () => ({
  id: "broken",
  taskTypes: ["demo"],
  contractVersion: CONTRACT_VERSION,
  async launch(ctx) {
    const id = "job-" + ++next; // BUG: a new job on every launch of the same attempt
    jobs.set(id, { attempt: ctx.attempt.id, kind: ctx.task.custom.kind, started: Date.now() });
    return { job: id, checks: 0 };
  },
  async check(ctx, s) {
    s.checks++; // BUG: check mutates the persisted state
    const j = jobs.get(s.job);
    if (j.aborted) return { phase: "aborted" };
    if (j.killed) return { phase: "failed", error: { code: "X", kind: "system", message: "node died" } };
    if (Date.now() - j.started < 50 || j.kind === "long") return { phase: "running" };
    if (j.kind === "fail") return { phase: "failed", error: { code: "X", kind: "system", message: "bad input" } }; // BUG: user error as system
    return { phase: "succeeded", outputs: { v: 1 } };
  },
  async abort(ctx, s) {
    jobs.get(s.job).aborted = true;
  },
});

testBackendPlugin({
  name: "broken",
  timeoutMs: 5000,
  fake: {
    start: () => ({}),
    countExternal: (_f, ctx) => [...jobs.values()].filter((j) => j.attempt === ctx.attempt.id).length,
  },
  create: () => broken(),
  scenarios: {
    success: { task: spec("ok", "ok"), outputs: { v: 1 } },
    userFailure: { task: spec("fail", "fail") },
    systemFailure: { task: spec("sys", "long"), induce: (_f, _ctx, s) => { jobs.get(s.job).killed = true; } },
    longRunning: { task: spec("long", "long") },
  },
  skip: { preemption: "" }, // BUG: an opt-out must say why
});
`;

describe("the conformance suite catches broken plugins", () => {
  it("fails exactly the checks a broken plugin violates", () => {
    fs.writeFileSync(path.join(dir, "broken.fixture.ts"), FIXTURE);
    fs.writeFileSync(
      path.join(dir, "vitest.config.mjs"),
      `export default { test: { include: ["broken.fixture.ts"], root: ${JSON.stringify(dir)}, testTimeout: 20000 } };`,
    );
    const out = path.join(dir, "report.json");
    const res = spawnSync(
      process.execPath,
      [
        vitestBin,
        "run",
        "--config",
        path.join(dir, "vitest.config.mjs"),
        "--reporter=json",
        `--outputFile=${out}`,
      ],
      {
        cwd: here,
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    expect(fs.existsSync(out), `vitest wrote no report: ${res.stderr}\n${res.stdout}`).toBe(true);
    const report = JSON.parse(fs.readFileSync(out, "utf8")) as {
      testResults: { message?: string; assertionResults: { title: string; status: string }[] }[];
    };
    const results = report.testResults.flatMap((f) => f.assertionResults);
    expect(results.length, `no tests ran: ${JSON.stringify(report).slice(0, 2000)}`).toBe(12);
    const status = (prefix: string) => results.find((r) => r.title.startsWith(prefix))?.status;
    expect(res.status).not.toBe(0);
    for (const bad of [
      "launch-idempotent",
      "check-no-side-effects",
      "user-failure",
      "SKIPPED BY PLUGIN — preemption",
    ]) {
      expect(status(bad), `${bad} in ${JSON.stringify(results)}`).toBe("failed");
    }
    for (const good of [
      "contract",
      "state-json",
      "success",
      "system-failure",
      "abort",
      "reattach",
      "limits",
      "logs",
    ]) {
      expect(status(good), `${good} in ${JSON.stringify(results)}`).toBe("passed");
    }
  }, 150_000);
});
