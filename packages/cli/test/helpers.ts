/**
 * Test helpers: a throw-away project that links @tern/core and zod, and a way
 * to run the real built `tern` binary in it as a subprocess.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");
export const ternBin = path.join(repoRoot, "packages/cli/dist/bin/tern.js");
const coreDir = path.join(repoRoot, "packages/core");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A temp project: package.json, the fixture flows, a data file, and
 * node_modules links to @tern/core and the zod that core resolves (one zod
 * instance, as in a real install). `.tern/` is created under it by the CLI.
 */
export function makeProject(): string {
  if (!fs.existsSync(ternBin)) throw new Error(`${ternBin} is missing: run \`pnpm build\` first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-cli-"));
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "cli-test-project", private: true, type: "module" }),
  );
  fs.copyFileSync(path.join(here, "fixtures/flows.ts"), path.join(dir, "flows.ts"));
  fs.writeFileSync(path.join(dir, "data.csv"), "a,b\n1,2\n");
  fs.mkdirSync(path.join(dir, "node_modules/@tern"), { recursive: true });
  fs.symlinkSync(coreDir, path.join(dir, "node_modules/@tern/core"), "dir");
  fs.symlinkSync(
    fs.realpathSync(path.join(coreDir, "node_modules/zod")),
    path.join(dir, "node_modules/zod"),
    "dir",
  );
  return dir;
}

export function removeProject(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Colour and timing off, so output is plain text whatever the caller's environment. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...extra };
  delete e.FORCE_COLOR;
  delete e.TERN_TIMING;
  return e;
}

/** Run `tern <args>` in `cwd` and wait for it to exit. */
export function tern(cwd: string, args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ternBin, ...args],
      { cwd, env: env(extraEnv), maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Run `tern <args> --json` and parse stdout, which must be exactly one JSON document. */
export async function ternJson(cwd: string, args: string[]): Promise<RunResult & { json: any }> {
  const r = await tern(cwd, [...args, "--json"]);
  const lines = r.stdout.trim().split("\n");
  if (lines.length !== 1)
    throw new Error(`expected one line of JSON on stdout, got:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return { ...r, json: JSON.parse(lines[0]) };
}

/** Start `tern <args>` without waiting, collecting its output. */
export function startTern(
  cwd: string,
  args: string[],
): { child: ChildProcess; output: () => RunResult; exited: Promise<number> } {
  const child = spawn(process.execPath, [ternBin, ...args], {
    cwd,
    env: env(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number>((resolve) =>
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1))),
  );
  return { child, output: () => ({ code: child.exitCode ?? -1, stdout, stderr }), exited };
}

/** Wait until `cond` holds, checking every 20 ms; fails after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The parsed lines of an execution's events.ndjson. */
export function readEvents(project: string, execution: string): any[] {
  const file = path.join(project, ".tern/executions", execution, "events.ndjson");
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
