/**
 * Help and version: every command explains itself with options, defaults and
 * examples; usage mistakes exit 2.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, tern } from "./helpers.js";

const cwd = os.tmpdir();

describe("tern --help", () => {
  it("teaches the commands, with examples and exit statuses", async () => {
    const r = await tern(cwd, ["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: tern [options] [command]");
    expect(r.stdout).toMatch(/run \[options\] <file> \[workflow\]\s+Run a workflow or task/);
    expect(r.stdout).toMatch(/cache\s+Inspect and clear the local task cache/);
    expect(r.stdout).toContain("Examples:");
    expect(r.stdout).toContain("tern run examples/hello.ts hello --name Ada");
    expect(r.stdout).toContain("Exit status: 0 succeeded, 1 the execution failed");
  });

  it("documents run's options with their defaults, the input flags and examples", async () => {
    const r = await tern(cwd, ["run", "--help"]);
    expect(r.code).toBe(0);
    const flat = r.stdout.replace(/\s+/g, " ");
    expect(flat).toMatch(
      /--backend <kind> where TypeScript tasks run: inline .* process .* a plugin from tern\.config\.ts/,
    );
    expect(flat).toMatch(/--config <file>/);
    expect(flat).toMatch(/--workers <n> worker processes of the process backend \(default: number of CPUs\)/);
    expect(r.stdout).toContain("--no-cache");
    expect(r.stdout).toContain("--inputs <file>");
    expect(r.stdout).toContain("Every workflow input is a flag");
    expect(r.stdout).toContain("Examples:");
    expect(r.stdout).toContain("tern run flows.ts train --inputs inputs.json --epochs 5");
  });

  it("documents the cache commands with examples", async () => {
    for (const args of [
      ["cache", "--help"],
      ["cache", "list", "--help"],
      ["cache", "clear", "--help"],
    ]) {
      const r = await tern(cwd, args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stdout, args.join(" ")).toContain("Examples:");
    }
  });

  it("prints the package version", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "packages/cli/package.json"), "utf8"));
    const r = await tern(cwd, ["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("exits 2 on usage mistakes, in the same error format", async () => {
    const unknown = await tern(cwd, ["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error[TERN_E_USAGE]: unknown command 'frobnicate'");
    const workers = await tern(cwd, ["run", "x.ts", "wf", "--workers", "0"]);
    expect(workers.code).toBe(2);
    expect(workers.stderr).toContain("expected a whole number ≥ 1");
    const bare = await tern(cwd, []);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("Usage: tern");
  });
});
