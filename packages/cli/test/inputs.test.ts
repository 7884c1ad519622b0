/**
 * Inputs on the command line: flags parsed by each input's declared type,
 * `--inputs` files with flag overrides, and the errors for bad values and
 * unknown flags (exit 2, naming the input).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProject, removeProject, tern, ternJson } from "./helpers.js";

let project: string;
beforeAll(() => {
  project = makeProject();
});
afterAll(() => removeProject(project));

const required = ["--count", "3", "--ratio", "0.5", "--cfg", '{"lr": 0.1}', "--data", "data.csv"];

describe("tern run inputs", () => {
  it("parses integers, numbers, booleans, JSON, repeated list flags, kebab-case names and file paths", async () => {
    const r = await ternJson(project, [
      "run",
      "flows.ts",
      "types",
      "--count",
      "-4",
      "--ratio",
      "2.5e-1",
      "--verbose",
      "--cfg",
      '{"lr": 0.01}',
      "--tags",
      "a",
      "--tags",
      "b",
      "--data",
      "data.csv",
      "--max-depth",
      "7",
    ]);
    expect(r.code).toBe(0);
    expect(r.json.outputs).toEqual({
      count: -4,
      ratio: 0.25,
      verbose: true,
      cfg: { lr: 0.01 },
      tags: ["a", "b"],
      dataText: "a,b\n1,2\n",
      max_depth: 7,
    });
  });

  it("accepts --flag false, --no-flag, --name=value, JSON arrays and the declared snake_case name", async () => {
    const a = await ternJson(project, [
      "run",
      "flows.ts",
      "types",
      ...required,
      "--verbose",
      "false",
      '--tags=["x","y"]',
      "--max_depth=2",
    ]);
    expect(a.json.outputs).toMatchObject({ verbose: false, tags: ["x", "y"], max_depth: 2 });
    const b = await ternJson(project, ["run", "flows.ts", "types", ...required, "--no-verbose"]);
    expect(b.json.outputs).toMatchObject({ verbose: false, tags: [], max_depth: 3 });
  });

  it("takes a base object from --inputs, with file paths relative to it, and lets flags override it", async () => {
    fs.mkdirSync(path.join(project, "conf"), { recursive: true });
    fs.writeFileSync(path.join(project, "conf/data.csv"), "from,conf\n");
    fs.writeFileSync(
      path.join(project, "conf/inputs.json"),
      JSON.stringify({ count: 1, ratio: 2, cfg: { lr: 1 }, data: "data.csv", tags: ["f"] }),
    );
    const r = await ternJson(project, [
      "run",
      "flows.ts",
      "types",
      "--inputs",
      "conf/inputs.json",
      "--count",
      "9",
    ]);
    expect(r.code).toBe(0);
    expect(r.json.outputs).toMatchObject({
      count: 9,
      ratio: 2,
      cfg: { lr: 1 },
      tags: ["f"],
      dataText: "from,conf\n",
    });
  });

  it.each([
    [["--count", "1.5"], /input "count" \(--count\) expects an integer, got "1\.5"/],
    [["--count", "abc"], /input "count" \(--count\) expects an integer, got "abc"/],
    [["--ratio", "abc"], /input "ratio" \(--ratio\) expects a number, got "abc"/],
    [["--cfg", "{lr: 1}"], /input "cfg" \(--cfg\) expects a JSON object/],
    [["--cfg", "[1]"], /input "cfg" \(--cfg\) expects a JSON object/],
    [["--verbose=maybe"], /input "verbose" \(--verbose\) expects true or false, got "maybe"/],
    [["--data", "missing.csv"], /input "data" \(--data\): no such file: missing\.csv/],
    [["--data", "."], /input "data" \(--data\): \. is a directory, not a file/],
  ])("rejects %j with exit 2 and a message naming the input", async (bad, message) => {
    const args = [...required];
    const i = args.indexOf(bad[0].split("=")[0]);
    if (i >= 0) args.splice(i, 2);
    const r = await tern(project, ["run", "flows.ts", "types", ...args, ...bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[TERN_E_INPUT_INVALID\]: /);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it("rejects a value the engine's schema refuses (exit 2, naming the input)", async () => {
    const r = await tern(project, [
      "run",
      "flows.ts",
      "types",
      "--count",
      "1",
      "--ratio",
      "1",
      "--cfg",
      '{"lr": "fast"}',
      "--data",
      "data.csv",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[TERN_E_INPUT_INVALID\]: input "cfg\.lr" of workflow "types"/);
  });

  it("rejects a missing required input (exit 2)", async () => {
    const r = await tern(project, [
      "run",
      "flows.ts",
      "types",
      "--count",
      "1",
      "--ratio",
      "1",
      "--data",
      "data.csv",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'error[TERN_E_INPUT_INVALID]: workflow "types" needs input "cfg": give --cfg <json object>',
    );
    expect(r.stderr).toContain("--max-depth <integer>  (default 3)");
  });

  it("rejects an unknown flag with exit 2, naming it and listing the inputs", async () => {
    const r = await tern(project, ["run", "flows.ts", "hello", "--nmae", "Ada"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'error[TERN_E_USAGE]: unknown option --nmae: workflow "hello" has no input "nmae" (did you mean --name?)',
    );
    expect(r.stderr).toContain('--name <string>  (default "world")');
    const j = await ternJson(project, ["run", "flows.ts", "hello", "--nmae", "Ada"]);
    expect(j.code).toBe(2);
    expect(j.json).toMatchObject({ execution: null, phase: "failed", outputs: null, nodes: [] });
    expect(j.json.error).toMatchObject({ kind: "user", code: "TERN_E_USAGE", node: null });
  });

  it("rejects a stray argument and an input flag without a value", async () => {
    const stray = await tern(project, ["run", "flows.ts", "hello", "Ada"]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('unexpected argument "Ada"');
    const empty = await tern(project, ["run", "flows.ts", "pipeline", "--n"]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("--n needs a value (number)");
  });

  it("rejects an --inputs file that is missing or not an object", async () => {
    const missing = await tern(project, ["run", "flows.ts", "hello", "--inputs", "nope.json"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error[TERN_E_FILE_NOT_FOUND]: inputs file not found: nope.json");
    fs.writeFileSync(path.join(project, "list.json"), "[1, 2]");
    const list = await tern(project, ["run", "flows.ts", "hello", "--inputs", "list.json"]);
    expect(list.code).toBe(2);
    expect(list.stderr).toContain(
      "error[TERN_E_INPUT_INVALID]: inputs file list.json must hold a JSON object",
    );
  });
});
