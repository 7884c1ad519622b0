/**
 * A real `tern serve` for the browser tests: a temp project holding the
 * fixture flows (its @tern/core and zod linked to the workspace's), compiled
 * the way `tern register` compiles them, a server on 127.0.0.1:0 with SQLite
 * and the worker-process backend, and the flows registered over HTTP.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { type RunningServer, startServer, type TokenSpec } from "@tern/server";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const coreDir = path.dirname(require.resolve("@tern/core/package.json"));
const zodDir = path.dirname(createRequire(path.join(coreDir, "package.json")).resolve("zod/package.json"));

const COMPILE = `
import * as fs from "node:fs";
import * as core from "@tern/core";
const bundle = await core.bundleEntry("flows.ts");
const mod = await core.importBundle(bundle.path);
const opts = { bundle: bundle.digest, projectRoot: bundle.projectRoot, project: "default", domain: "development" };
const workflows = [], launchPlans = [];
for (const v of Object.values(mod)) {
  const kind = core.definitionKind(v);
  if (kind === "workflow") workflows.push(core.compile(v, opts).spec);
  else if (kind === "launchplan") { const c = core.compileLaunchPlan(v, opts); workflows.push(c.spec); launchPlans.push(c.launchPlan); }
}
const bundles = [{ digest: bundle.digest, contentBase64: fs.readFileSync(bundle.path).toString("base64") }];
process.stdout.write(JSON.stringify({ workflows, launchPlans, bundles }));
`;

export interface ConsoleServer {
  server: RunningServer;
  dir: string;
  /** JSON request to the API (with the admin token when the server has tokens). */
  api(method: string, url: string, body?: unknown): Promise<any>;
  close(): Promise<void>;
}

let compiled: Promise<{ dir: string; payload: string }> | undefined;

/** Compile the fixtures once per test file. */
function compileFixtures(): Promise<{ dir: string; payload: string }> {
  compiled ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-console-"));
    fs.writeFileSync(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "console-test", private: true, type: "module" }),
    );
    fs.copyFileSync(path.join(here, "../fixtures/flows.ts"), path.join(dir, "flows.ts"));
    fs.mkdirSync(path.join(dir, "node_modules/@tern"), { recursive: true });
    fs.symlinkSync(coreDir, path.join(dir, "node_modules/@tern/core"), "dir");
    fs.symlinkSync(zodDir, path.join(dir, "node_modules/zod"), "dir");
    const payload = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--input-type=module", "-e", COMPILE],
        { cwd: dir, maxBuffer: 256 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`compiling the fixtures failed: ${stderr || err.message}`))
            : resolve(stdout),
      ),
    );
    return { dir, payload };
  })();
  return compiled;
}

export async function startConsoleServer(
  opts: { tokens?: TokenSpec[]; adminToken?: string } = {},
): Promise<ConsoleServer> {
  const { dir, payload } = await compileFixtures();
  const dataDir = fs.mkdtempSync(path.join(dir, ".tern-"));
  const server = await startServer({
    port: 0,
    workDir: dir,
    dataDir,
    logger: false,
    backend: "process",
    workers: 2,
    executor: { claimIntervalMs: 50 },
    ...(opts.tokens ? { tokens: opts.tokens } : {}),
  });
  const api = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${server.url}${url}`, {
      method,
      headers: {
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(opts.adminToken ? { authorization: `Bearer ${opts.adminToken}` } : {}),
      },
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text);
  };
  await api("POST", "/api/v1/register", payload);
  return {
    server,
    dir,
    api,
    close: async () => {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function removeFixtures(): void {
  void compiled?.then(({ dir }) => fs.rmSync(dir, { recursive: true, force: true }));
}
