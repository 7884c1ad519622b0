/**
 * The control-plane commands end to end: `tern serve --port 0` as a
 * subprocess, then the real binary registering, running remotely (console URL,
 * progress, --json equal to a local run's), inspecting and steering
 * executions, answering gates and managing launch plans; plus tokens, the
 * refusal to bind 0.0.0.0 without them, and a server that is not there.
 */
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProject, removeProject, repoRoot, startTern, tern, waitFor } from "./helpers.js";

let project: string;
let server: {
  child: ChildProcess;
  output: () => { stdout: string; stderr: string };
  exited: Promise<number>;
};
let url: string;

/** Start `tern serve` in `cwd` with `args`; resolves with its URL once it listens. */
async function serve(cwd: string, args: string[] = []) {
  const s = startTern(cwd, ["serve", "--port", "0", "--log-level", "warn", ...args]);
  await waitFor(
    () => /listening on (http:\/\/\S+)/.test(s.output().stderr) || s.child.exitCode !== null,
    "tern serve to listen",
    30_000,
  );
  const m = /listening on (http:\/\/\S+)/.exec(s.output().stderr);
  if (!m) throw new Error(`tern serve did not start:\n${s.output().stderr}`);
  return { ...s, url: m[1] };
}

const at = (...args: string[]) => [...args, "--server", url];

beforeAll(async () => {
  project = makeProject();
  fs.mkdirSync(path.join(project, "examples"));
  fs.copyFileSync(path.join(repoRoot, "examples/hello.ts"), path.join(project, "examples/hello.ts"));
  fs.copyFileSync(
    path.join(path.dirname(new URL(import.meta.url).pathname), "fixtures/remote-flows.ts"),
    path.join(project, "remote.ts"),
  );
  const s = await serve(project);
  server = s;
  url = s.url;
});

afterAll(async () => {
  if (server && server.child.exitCode === null) {
    server.child.kill("SIGINT");
    await server.exited;
  }
  if (project) removeProject(project);
});

describe("tern serve", () => {
  it("prints the URL, the console base and the docs, and answers on it", async () => {
    const err = server.output().stderr;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(err).toContain(`console: ${url}/console/projects/default/domains/development/executions`);
    expect(err).toContain(`API docs: ${url}/docs`);
    expect(err).toContain("tokens: none (open sandbox, loopback only)");
    const r = await fetch(`${url}/healthz`);
    expect(await r.json()).toEqual({ status: "ok" });
    expect(fs.existsSync(path.join(project, ".tern/tern.db"))).toBe(true);
  });

  it("refuses to listen on 0.0.0.0 without tokens (exit 2, clear message)", async () => {
    const r = await tern(project, ["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", ".tern-open"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error[TERN_E_CONFIG]: refusing to listen on 0.0.0.0 without tokens");
    expect(r.stderr).toContain("hint:");
  });

  it("stops on Ctrl-C with exit 0", async () => {
    const s = await serve(project, ["--data-dir", ".tern-stop"]);
    s.child.kill("SIGINT");
    const code = await s.exited;
    expect(code, s.output().stderr).toBe(0);
    expect(s.output().stderr).toContain("stopping the server");
  });
});

describe("tern register", () => {
  it("registers examples/hello.ts, then reports it as already there", async () => {
    const r = await tern(project, at("register", "examples/hello.ts"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^created\s+task\s+say_hello@\w+$/m);
    expect(r.stdout).toMatch(/^created\s+workflow\s+hello@\w+$/m);
    expect(r.stdout).toContain("in default/development on");
    const again = await tern(project, at("register", "examples/hello.ts", "--json"));
    expect(again.code).toBe(0);
    const j = JSON.parse(again.stdout);
    expect(j.entities.map((e: any) => e.status)).toEqual(j.entities.map(() => "exists"));
  });

  it("refuses changed content under a taken --version with exit 2 and what differs", async () => {
    expect(
      (await tern(project, at("register", "remote.ts", "--version", "v1", "--project", "default"))).code,
    ).toBe(0);
    const file = path.join(project, "remote.ts");
    const original = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, original.replace("`Hi, ", "`Hey, "));
    try {
      const r = await tern(project, at("register", "remote.ts", "--version", "v1"));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        "error[TERN_E_VERSION_CONFLICT]: 3 versions are already registered with different content",
      );
      expect(r.stderr).toContain("task default/development/greet@v1 (changed: code.bundle, code.hash)");
    } finally {
      fs.writeFileSync(file, original);
    }
  });
});

describe("tern run --remote", () => {
  it("prints the console URL, follows progress and succeeds with the outputs", async () => {
    const r = await tern(project, at("run", "examples/hello.ts", "hello", "--name", "Ada", "--remote"));
    expect(r.code, r.stderr).toBe(0);
    const m = new RegExp(
      `^execution (x\\w+): ${url.replace(/[.:/]/g, "\\$&")}/console/projects/default/domains/development/executions/(x\\w+)$`,
      "m",
    ).exec(r.stdout);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    expect(r.stdout).toMatch(/succeeded\s+say_hello/);
    expect(r.stdout).toContain('outputs: "Hello, Ada!"');
    const rec = await (
      await fetch(`${url}/api/v1/projects/default/domains/development/executions/${m![1]}`)
    ).json();
    expect(rec).toMatchObject({ phase: "succeeded", outputs: "Hello, Ada!" });
  });

  it("gives the same --json object as a local run", async () => {
    const remote = await tern(
      project,
      at("run", "examples/hello.ts", "hello", "--name", "Bo", "--remote", "--json"),
    );
    const local = await tern(project, ["run", "examples/hello.ts", "hello", "--name", "Bo", "--json"]);
    expect(remote.code, remote.stderr).toBe(0);
    expect(local.code, local.stderr).toBe(0);
    expect(remote.stdout.trim().split("\n")).toHaveLength(1);
    const r = JSON.parse(remote.stdout);
    const l = JSON.parse(local.stdout);
    expect(Object.keys(r)).toEqual(Object.keys(l));
    expect(r.nodes.map((n: any) => Object.keys(n))).toEqual(l.nodes.map((n: any) => Object.keys(n)));
    const stable = (j: any) => ({
      ...j,
      execution: typeof j.execution,
      nodes: j.nodes.map((n: any) => ({ ...n, durationMs: typeof n.durationMs, cached: false })),
    });
    expect(stable(r)).toEqual(stable(l));
    expect(remote.stderr).toContain(
      `/console/projects/default/domains/development/executions/${r.execution}`,
    );
  });

  it("exits 1 on a failed execution, with the failure report and the node's log", async () => {
    const r = await tern(project, at("run", "remote.ts", "crashing", "--steps", "4", "--remote"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("crashed after 4 steps");
    expect(r.stderr).toContain("node: crash");
    expect(r.stderr).toContain("step 4 done");
    expect(r.stderr).toContain("/console/projects/default/domains/development/executions/");
    const j = await tern(project, at("run", "remote.ts", "crashing", "--remote", "--json"));
    expect(j.code).toBe(1);
    const doc = JSON.parse(j.stdout);
    expect(doc).toMatchObject({ phase: "failed", outputs: null, error: { node: "crash", kind: "user" } });
  });

  it("exits 2 for input errors, as a local run does", async () => {
    const r = await tern(project, at("run", "remote.ts", "crashing", "--steps", "many", "--remote"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("TERN_E_INPUT_INVALID");
    const missing = await tern(project, at("run", "remote.ts", "approval", "--remote"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('needs input "name"');
  });

  it("answers top-level gates given with --signal, and refuses unknown gates before launching", async () => {
    const r = await tern(
      project,
      at("run", "remote.ts", "approval", "--name", "Pre", "--remote", "--signal", "review=true"),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('outputs: "Hi, Pre!"');
    const bad = await tern(
      project,
      at("run", "remote.ts", "approval", "--name", "Pre", "--remote", "--signal", "nope=true"),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('workflow "approval" has no top-level gate "nope"');
  });

  it("waits at a gate until `tern signal` approves it", async () => {
    const run = startTern(project, at("run", "remote.ts", "approval", "--name", "Gate", "--remote"));
    await waitFor(() => /running\s+review/.test(run.output().stdout), "the gate to wait", 30_000);
    const id = /^execution (x\w+):/m.exec(run.output().stdout)![1];
    await waitFor(
      () => run.output().stderr.includes(`answer it with \`tern signal ${id} review=<value>\``),
      "the gate notice",
    );
    const bad = await tern(project, at("signal", id, "review=perhaps"));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("is not an answer to an approve gate");
    const s = await tern(project, at("signal", id, "review=approve"));
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain(`gate review of ${id} approved (as anonymous)`);
    expect(await run.exited).toBe(0);
    expect(run.output().stdout).toContain('outputs: "Hi, Gate!"');
    const again = await tern(project, at("signal", id, "review=approve"));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("TERN_E_CONFLICT");
  });
});

describe("tern executions", () => {
  let id: string;

  it("lists, gets and prints logs", async () => {
    const r = await tern(project, at("run", "remote.ts", "crashing", "--steps", "2", "--remote", "--json"));
    id = JSON.parse(r.stdout).execution;
    const list = await tern(project, at("executions", "list", "--phase", "failed", "--workflow", "crashing"));
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+✗ failed\\s+crashing`, "m"));
    const json = JSON.parse((await tern(project, at("executions", "list", "--limit", "1", "--json"))).stdout);
    expect(json.items).toHaveLength(1);
    expect(json.nextCursor).toBeTypeOf("string");
    const get = await tern(project, at("executions", "get", id));
    expect(get.stdout).toContain(`execution ${id}`);
    expect(get.stdout).toContain("error[TERN_E_TASK_FAILED]: crashed after 2 steps");
    expect(get.stdout).toMatch(/✗ failed\s+crash/);
    const logs = await tern(project, at("executions", "logs", id, "crash"));
    expect(logs.stdout).toContain("step 1 done");
    expect(logs.stdout).toContain("step 2 done");
    const missing = await tern(project, at("executions", "get", "xnothere"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('error[TERN_E_NOT_FOUND]: execution "xnothere" does not exist');
  });

  it("relaunches and recovers, and terminates a running execution", async () => {
    const re = await tern(project, at("executions", "relaunch", id, "--json"));
    expect(re.code).toBe(0);
    expect(JSON.parse(re.stdout).inputs).toEqual({ steps: 2 });
    const rec = await tern(project, at("executions", "recover", id));
    expect(rec.stdout).toMatch(new RegExp(`^execution x\\w+ \\(recovering ${id}\\): http`, "m"));
    const run = startTern(project, at("run", "remote.ts", "sleepy", "--remote"));
    await waitFor(() => /running\s+snooze/.test(run.output().stdout), "snooze to run", 30_000);
    const sleeping = /^execution (x\w+):/m.exec(run.output().stdout)![1];
    const t = await tern(project, at("executions", "terminate", sleeping, "--reason", "enough"));
    expect(t.code).toBe(0);
    expect(await run.exited).toBe(1);
    expect(run.output().stdout).toMatch(/aborted/);
  });

  it("reads $TERN_SERVER when --server is left out", async () => {
    const r = await tern(project, ["executions", "list", "--limit", "1"], { TERN_SERVER: url });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^x\w+\s/m);
  });

  it("says how to start a server when none answers", async () => {
    const port = await freePort();
    const r = await tern(project, ["executions", "list", "--server", `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `cannot reach the Tern server at http://127.0.0.1:${port} (connection refused)`,
    );
    expect(r.stderr).toContain("start one with `tern serve`");
    const run = await tern(project, [
      "run",
      "examples/hello.ts",
      "hello",
      "--remote",
      "--server",
      `http://127.0.0.1:${port}`,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("start one with `tern serve`");
  });
});

describe("tern launchplans", () => {
  it("lists, activates and deactivates", async () => {
    expect((await tern(project, at("register", "remote.ts"))).code).toBe(0);
    const list = await tern(project, at("launchplans", "list"));
    expect(list.stdout).toMatch(/^inactive\s+nightly@\w+\s+cron "0 3 \* \* \*"$/m);
    const a = await tern(project, at("launchplans", "activate", "nightly"));
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/launch plan nightly@\w+ is active \(cron "0 3 \* \* \*"\)/);
    expect((await tern(project, at("launchplans", "list"))).stdout).toMatch(/^active\s+nightly@/m);
    const d = await tern(project, at("launchplans", "deactivate", "nightly"));
    expect(d.stdout).toContain("launch plan nightly is inactive");
    const nope = await tern(project, at("launchplans", "activate", "nope"));
    expect(nope.code).toBe(1);
    expect(nope.stderr).toContain("TERN_E_NOT_FOUND");
  });
});

describe("tokens", () => {
  it("needs --token or $TERN_TOKEN on a server with tokens", async () => {
    const tokens = path.join(project, "tokens.json");
    fs.writeFileSync(
      tokens,
      JSON.stringify({
        tokens: [
          {
            name: "dev",
            token: "dev-token-0123456789abcdef",
            grants: [{ project: "*", domain: "development", role: "admin" }],
          },
        ],
      }),
    );
    const s = await serve(project, ["--data-dir", ".tern-tokens", "--tokens", "tokens.json"]);
    try {
      expect(s.output().stderr).toContain("tokens: required");
      const none = await tern(project, ["executions", "list", "--server", s.url]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain("error[TERN_E_UNAUTHORIZED]");
      const flag = await tern(project, [
        "register",
        "examples/hello.ts",
        "--server",
        s.url,
        "--token",
        "dev-token-0123456789abcdef",
      ]);
      expect(flag.code, flag.stderr).toBe(0);
      const env = await tern(project, ["run", "examples/hello.ts", "hello", "--remote", "--server", s.url], {
        TERN_TOKEN: "dev-token-0123456789abcdef",
      });
      expect(env.code, env.stderr).toBe(0);
      const prod = await tern(project, ["executions", "list", "--server", s.url, "--domain", "production"], {
        TERN_TOKEN: "dev-token-0123456789abcdef",
      });
      expect(prod.code).toBe(1);
      expect(prod.stderr).toContain(
        'error[TERN_E_FORBIDDEN]: token "dev" needs role viewer in project "default", domain "production"',
      );
      expect(s.output().stdout + s.output().stderr).not.toContain("dev-token-0123456789abcdef");
    } finally {
      s.child.kill("SIGINT");
      await s.exited;
    }
  });
});

describe("help", () => {
  it("documents every control-plane command with examples", async () => {
    for (const args of [
      ["serve"],
      ["register"],
      ["executions"],
      ["executions", "list"],
      ["executions", "get"],
      ["executions", "logs"],
      ["executions", "terminate"],
      ["executions", "relaunch"],
      ["executions", "recover"],
      ["signal"],
      ["launchplans"],
      ["launchplans", "list"],
      ["launchplans", "activate"],
      ["launchplans", "deactivate"],
    ]) {
      const r = await tern(project, [...args, "--help"]);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stdout, args.join(" ")).toContain("Examples:");
      expect(r.stdout, args.join(" ")).toContain(`$ tern ${args[0]}`);
    }
    const run = await tern(project, ["run", "--help"]);
    expect(run.stdout).toContain("--remote");
    expect(run.stdout).toContain("tern run examples/hello.ts hello --name Ada --remote");
    const root = await tern(project, ["--help"]);
    for (const c of ["serve", "register", "executions", "signal", "launchplans"])
      expect(root.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, "m"));
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
