/**
 * API test fixtures: a throw-away project holding the fixture flows (with
 * node_modules links to @tern/core and zod, so worker processes can load the
 * bundle), the registration payload compiled from it in a child process (the
 * way `tern register` builds it), and a control plane on a temp SQLite file
 * and blob directory driven through fastify's `inject()`.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { CompiledWorkflow, LaunchPlanSpec } from "@tern/core";
import { type ControlPlane, createControlPlane, type ServeOptions } from "../../src/serve.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../../..");
const coreDir = path.join(repoRoot, "packages/core");

/** A temp project with the fixture flows. */
export function makeProject(prefix = "tern-api-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "api-test-project", private: true, type: "module" }),
  );
  fs.copyFileSync(path.join(here, "../fixtures/api-flows.ts"), path.join(dir, "flows.ts"));
  fs.mkdirSync(path.join(dir, "node_modules/@tern"), { recursive: true });
  fs.symlinkSync(coreDir, path.join(dir, "node_modules/@tern/core"), "dir");
  fs.symlinkSync(
    fs.realpathSync(path.join(coreDir, "node_modules/zod")),
    path.join(dir, "node_modules/zod"),
    "dir",
  );
  return dir;
}

/** What `POST /api/v1/register` takes, for the fixture flows. */
export interface Payload {
  workflows: CompiledWorkflow[];
  launchPlans: LaunchPlanSpec[];
  bundles: { digest: string; contentBase64: string }[];
}

const COMPILE_SCRIPT = `
import * as fs from "node:fs";
import * as core from "@tern/core";
const [file, project, domain, version] = process.argv.slice(1);
const bundle = await core.bundleEntry(file);
const mod = await core.importBundle(bundle.path);
const opts = { bundle: bundle.digest, projectRoot: bundle.projectRoot, project, domain, ...(version ? { version } : {}) };
const workflows = [], launchPlans = [];
for (const v of Object.values(mod)) {
  const kind = core.definitionKind(v);
  if (kind === "workflow" || kind === "task") workflows.push(core.compile(v, opts).spec);
  else if (kind === "launchplan") { const c = core.compileLaunchPlan(v, opts); workflows.push(c.spec); launchPlans.push(c.launchPlan); }
}
const bundles = [{ digest: bundle.digest, contentBase64: fs.readFileSync(bundle.path).toString("base64") }];
process.stdout.write(JSON.stringify({ workflows, launchPlans, bundles }));
`;

/** Compile `file` of `project` (in a child process, as the CLI would) into a registration payload. */
export function compilePayload(
  dir: string,
  opts: { file?: string; project?: string; domain?: string; version?: string } = {},
): Promise<Payload> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        COMPILE_SCRIPT,
        opts.file ?? "flows.ts",
        opts.project ?? "default",
        opts.domain ?? "development",
        opts.version ?? "",
      ],
      { cwd: dir, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`compiling fixtures failed: ${stderr || err.message}`))
          : resolve(JSON.parse(stdout) as Payload),
    );
  });
}

/** A control plane on temp storage, not listening. */
export async function startPlane(dir: string, opts: ServeOptions = {}): Promise<ControlPlane> {
  return createControlPlane({
    workDir: dir,
    dataDir: path.join(dir, ".tern"),
    logger: false,
    backend: "process",
    workers: 1,
    executor: { claimIntervalMs: 50 },
    ...opts,
  });
}

export interface Reply {
  status: number;
  body: any;
  text: string;
  headers: Record<string, unknown>;
}

/** `inject()` with JSON in and out. */
export function client(plane: ControlPlane, token?: string) {
  return async (
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply> => {
    const res = await plane.app.inject({
      method: method as "GET",
      url,
      headers: {
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      ...(body !== undefined ? { payload: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      parsed = undefined;
    }
    return { status: res.statusCode, body: parsed, text: res.body, headers: res.headers };
  };
}

export const TERMINAL = new Set(["succeeded", "failed", "aborted"]);

/** Poll an execution until `done(record)` holds (default: terminal). */
export async function waitForExecution(
  api: ReturnType<typeof client>,
  scope: string,
  id: string,
  done: (r: any) => boolean = (r) => TERMINAL.has(r.phase),
  ms = 25_000,
): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await api("GET", `${scope}/executions/${id}`);
    if (r.status === 200 && done(r.body)) return r.body;
    if (Date.now() > end)
      throw new Error(`execution ${id} did not get there in time: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

/** Wait until `cond()` resolves truthy. */
export async function eventually<T>(
  cond: () => Promise<T | undefined | false>,
  what: string,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
