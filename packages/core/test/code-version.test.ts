import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCodeVersionCache, codeVersion } from "../src/code-version.js";

let dir: string;
// Every write gets a strictly later mtime: real edits within one coarse clock tick with
// the same size would otherwise look unchanged to the (mtime, size) memo.
let clock = 1_700_000_000;

function write(rel: string, content: string): string {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  clock += 10;
  fs.utimesSync(file, clock, clock);
  return file;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-code-version-"));
  clearCodeVersionCache();
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A task module built from parts, so each test edits exactly one of them. */
function taskModule(parts: { header?: string; helpers?: string; body?: string; extra?: string }): string {
  return [
    `import { task } from "@tern/core";`,
    `import { z } from "zod";`,
    parts.header ?? "",
    parts.helpers ?? `function greet(n: string): string { return "Hello, " + n; }`,
    `export const sayHello = task(`,
    `  { name: "say_hello", inputs: { name: z.string() }, output: z.string(), cache: true },`,
    `  async ({ name }) => ${parts.body ?? "greet(name)"},`,
    `);`,
    parts.extra ?? "",
  ].join("\n");
}

describe("codeVersion: the task's own file", () => {
  it("returns a 16-hex-character version, stable across calls and cache clears", () => {
    const file = write("tasks.ts", taskModule({}));
    const v = codeVersion(file, "say_hello");
    expect(v).toMatch(/^[0-9a-f]{16}$/);
    expect(codeVersion(file, "say_hello")).toBe(v);
    clearCodeVersionCache();
    expect(codeVersion(file, "say_hello")).toBe(v);
  });

  it("changes when the task body changes", () => {
    const file = write("tasks.ts", taskModule({}));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ body: "greet(name.trim())" }));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("changes when the task options change", () => {
    const file = write("tasks.ts", taskModule({}));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({}).replace("cache: true", "cache: true, retries: 2"));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("changes when a same-file helper used by the task changes", () => {
    const file = write("tasks.ts", taskModule({}));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: `function greet(n: string): string { return "Hi, " + n; }` }));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("changes when a helper of a helper changes", () => {
    const helpers = (suffix: string) =>
      [
        `function punctuate(s: string) { return s + "${suffix}"; }`,
        `const greet = (n: string) => punctuate("Hello, " + n);`,
      ].join("\n");
    const file = write("tasks.ts", taskModule({ helpers: helpers("!") }));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: helpers("?") }));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("changes when a top-level const used by a helper changes", () => {
    const helpers = (prefix: string) =>
      [`const PREFIX = "${prefix}";`, `function greet(n: string) { return \`\${PREFIX}, \${n}!\`; }`].join(
        "\n",
      );
    const file = write("tasks.ts", taskModule({ helpers: helpers("Hello") }));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: helpers("Howdy") }));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("changes when a destructured top-level binding or a top-level mutation of a used object changes", () => {
    const helpers = (n: number, mutation: string) =>
      [
        `const { greeting, times } = { greeting: "Hello", times: ${n} };`,
        `const config = { loud: false };`,
        mutation,
        `function greet(s: string) { return (config.loud ? greeting.toUpperCase() : greeting).repeat(times) + s; }`,
      ].join("\n");
    const file = write("tasks.ts", taskModule({ helpers: helpers(1, "") }));
    const v1 = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: helpers(2, "") }));
    const v2 = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: helpers(2, "config.loud = true;") }));
    const v3 = codeVersion(file, "say_hello");
    expect(new Set([v1, v2, v3]).size).toBe(3);
  });

  it("does not change when an unrelated function in the same file changes", () => {
    const file = write("tasks.ts", taskModule({ extra: "function unrelated() { return 42; }" }));
    const before = codeVersion(file, "say_hello");
    write(
      "tasks.ts",
      taskModule({ extra: "function unrelated() { return 43 + Math.random(); }\nexport const k = 1;" }),
    );
    expect(codeVersion(file, "say_hello")).toBe(before);
  });

  it("does not change for comment, formatting or type-annotation edits (types are stripped first)", () => {
    const file = write("tasks.ts", taskModule({}));
    const before = codeVersion(file, "say_hello");
    write(
      "tasks.ts",
      taskModule({
        helpers: `// Greets.\nfunction greet(n: string | number): string {\n    return "Hello, " + n;\n}`,
      }),
    );
    expect(codeVersion(file, "say_hello")).toBe(before);
  });

  it("respects local shadowing: a parameter named like a top-level function does not pull it in", () => {
    const helpers = (v: number) =>
      [`function greet(n: string) { return n; }`, `function fmt(x: number) { return x * ${v}; }`].join("\n");
    // `fmt` below is the callback's own parameter, not the top-level function.
    const body = `[name].map((fmt) => greet(fmt)).join("")`;
    const file = write("tasks.ts", taskModule({ helpers: helpers(1), body }));
    const before = codeVersion(file, "say_hello");
    write("tasks.ts", taskModule({ helpers: helpers(2), body }));
    expect(codeVersion(file, "say_hello")).toBe(before);
  });

  it("keeps two tasks in one file independent", () => {
    const source = (aSuffix: string, bSuffix: string) =>
      [
        `import { task } from "@tern/core";`,
        `function helperA(s: string) { return s + "${aSuffix}"; }`,
        `function helperB(s: string) { return s + "${bSuffix}"; }`,
        `export const a = task({ name: "a" }, async ({ s }: { s: string }) => helperA(s));`,
        `export const b = task({ name: "b" }, async ({ s }: { s: string }) => helperB(s));`,
      ].join("\n");
    const file = write("tasks.ts", source("1", "1"));
    const a1 = codeVersion(file, "a");
    const b1 = codeVersion(file, "b");
    expect(a1).not.toBe(b1);
    write("tasks.ts", source("2", "1"));
    expect(codeVersion(file, "a")).not.toBe(a1);
    expect(codeVersion(file, "b")).toBe(b1);
  });

  it("finds tasks defined through an aliased import", () => {
    const source = (body: string) =>
      [
        `import { task as defineTask } from "@tern/core";`,
        `function helper() { return 1; }`,
        `function unrelated() { return 1; }`,
        `export const t = defineTask({ name: "aliased" }, async () => ${body});`,
      ].join("\n");
    const file = write("tasks.ts", source("helper()"));
    const before = codeVersion(file, "aliased");
    // Found by name, so an unrelated edit does not matter (the fallback would change)...
    write(
      "tasks.ts",
      source("helper()").replace("function unrelated() { return 1; }", "function unrelated() { return 2; }"),
    );
    expect(codeVersion(file, "aliased")).toBe(before);
    // ...and a body edit does.
    write("tasks.ts", source("helper() + 1"));
    expect(codeVersion(file, "aliased")).not.toBe(before);
  });

  it("finds tasks defined through a namespace import", () => {
    const source = (unrelated: number, body: string) =>
      [
        `import * as tern from "@tern/core";`,
        `function unrelated() { return ${unrelated}; }`,
        `export const t = tern.task({ name: "ns" }, async () => ${body});`,
      ].join("\n");
    const file = write("tasks.ts", source(1, "1"));
    const before = codeVersion(file, "ns");
    write("tasks.ts", source(2, "1"));
    expect(codeVersion(file, "ns")).toBe(before);
    write("tasks.ts", source(2, "2"));
    expect(codeVersion(file, "ns")).not.toBe(before);
  });

  it("finds workflows with calleeNames, and only the requested callee kinds", () => {
    const source = (unrelated: number, wfBody: string) =>
      [
        `import { task, workflow } from "@tern/core";`,
        `function unrelated() { return ${unrelated}; }`,
        `export const t = task({ name: "same" }, async () => 1);`,
        `export const w = workflow({ name: "same" }, () => ${wfBody});`,
      ].join("\n");
    const file = write("flows.ts", source(1, "t({})"));
    const wf = codeVersion(file, "same", { calleeNames: ["workflow"] });
    const tk = codeVersion(file, "same");
    expect(wf).not.toBe(tk);
    write("flows.ts", source(2, "t({})"));
    expect(codeVersion(file, "same", { calleeNames: ["workflow"] })).toBe(wf);
    write("flows.ts", source(2, "t({}) && t({})"));
    expect(codeVersion(file, "same", { calleeNames: ["workflow"] })).not.toBe(wf);
    expect(codeVersion(file, "same")).toBe(tk);
  });

  it("supports CommonJS files using require", () => {
    const source = (helper: number, unrelated: number) =>
      [
        `const { task } = require("@tern/core");`,
        `const util = require("./util.cjs");`,
        `function helper() { return ${helper}; }`,
        `function unrelated() { return ${unrelated}; }`,
        `module.exports.t = task({ name: "cjs" }, async () => helper() + util.one());`,
      ].join("\n");
    write("util.cjs", "exports.one = () => 1;");
    const file = write("tasks.cjs", source(1, 1));
    const before = codeVersion(file, "cjs");
    write("tasks.cjs", source(1, 2));
    expect(codeVersion(file, "cjs")).toBe(before);
    write("tasks.cjs", source(2, 2));
    const afterHelper = codeVersion(file, "cjs");
    expect(afterHelper).not.toBe(before);
    write("util.cjs", "exports.one = () => 2;");
    expect(codeVersion(file, "cjs")).not.toBe(afterHelper);
  });
});

describe("codeVersion: other modules", () => {
  it("changes when a function in an imported relative module changes (also transitively)", () => {
    write("lib/deep.ts", `export const suffix = "!";`);
    write(
      "lib/util.ts",
      `import { suffix } from "./deep.js";\nexport function normalize(s: string) { return s.trim() + suffix; }`,
    );
    const file = write(
      "tasks.ts",
      taskModule({ header: `import { normalize } from "./lib/util.js";`, body: "greet(normalize(name))" }),
    );
    const v1 = codeVersion(file, "say_hello");
    write(
      "lib/util.ts",
      `import { suffix } from "./deep.js";\nexport function normalize(s: string) { return s.toLowerCase() + suffix; }`,
    );
    const v2 = codeVersion(file, "say_hello");
    write("lib/deep.ts", `export const suffix = "?";`);
    const v3 = codeVersion(file, "say_hello");
    expect(v2).not.toBe(v1);
    expect(v3).not.toBe(v2);
  });

  it("resolves './util.js' to util.ts, directory imports to index.ts, and extensionless imports", () => {
    write("util.ts", `export const a = 1;`);
    write("lib/index.ts", `export const b = 1;`);
    write("plain.ts", `export const c = 1;`);
    const file = write(
      "tasks.ts",
      taskModule({
        header: [
          `import { a } from "./util.js";`,
          `import { b } from "./lib";`,
          `import { c } from "./plain";`,
        ].join("\n"),
        body: "greet(String(a + b + c))",
      }),
    );
    const versions = [codeVersion(file, "say_hello")];
    write("util.ts", `export const a = 2;`);
    versions.push(codeVersion(file, "say_hello"));
    write("lib/index.ts", `export const b = 2;`);
    versions.push(codeVersion(file, "say_hello"));
    write("plain.ts", `export const c = 2;`);
    versions.push(codeVersion(file, "say_hello"));
    expect(new Set(versions).size).toBe(4);
  });

  it("does not change when a file that is not imported (or an import the task does not use) changes", () => {
    write("used.ts", `export const used = 1;`);
    write("unused.ts", `export const other = 1;`);
    write("stranger.ts", `export const x = 1;`);
    const file = write(
      "tasks.ts",
      taskModule({
        header: `import { used } from "./used.js";\nimport { other } from "./unused.js";`,
        body: "greet(String(used))",
        extra: "export const keep = () => other;",
      }),
    );
    const before = codeVersion(file, "say_hello");
    write("stranger.ts", `export const x = 2;`);
    write("unused.ts", `export const other = 2;`);
    expect(codeVersion(file, "say_hello")).toBe(before);
    write("used.ts", `export const used = 2;`);
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("follows a literal dynamic import inside the task body", () => {
    write("heavy.ts", `export const run = () => 1;`);
    const file = write("tasks.ts", taskModule({ body: `(await import("./heavy.js")).run() + name` }));
    const before = codeVersion(file, "say_hello");
    write("heavy.ts", `export const run = () => 2;`);
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("terminates on an import cycle and still sees edits on both sides of it", () => {
    write("a.ts", `import { b } from "./b.js";\nexport const a = () => b() + 1;`);
    write("b.ts", `import { a } from "./a.js";\nexport const b = () => 1;\nexport const viaA = () => a();`);
    const file = write(
      "tasks.ts",
      taskModule({ header: `import { a } from "./a.js";`, body: "greet(String(a()))" }),
    );
    const v1 = codeVersion(file, "say_hello");
    expect(v1).toMatch(/^[0-9a-f]{16}$/);
    write("b.ts", `import { a } from "./a.js";\nexport const b = () => 2;\nexport const viaA = () => a();`);
    const v2 = codeVersion(file, "say_hello");
    write("a.ts", `import { b } from "./b.js";\nexport const a = () => b() + 2;`);
    const v3 = codeVersion(file, "say_hello");
    expect(new Set([v1, v2, v3]).size).toBe(3);
  });

  it("includes name@version of used packages and changes when the version changes", () => {
    const manifest = (version: string) => JSON.stringify({ name: "leftpad-ish", version });
    write("node_modules/leftpad-ish/package.json", manifest("1.0.0"));
    write(
      "node_modules/@scope/unused/package.json",
      JSON.stringify({ name: "@scope/unused", version: "1.0.0" }),
    );
    const file = write(
      "src/tasks.ts",
      taskModule({
        header: `import pad from "leftpad-ish/sub/path";\nimport { x } from "@scope/unused";`,
        body: "greet(pad(name))",
        extra: "export const y = x;",
      }),
    );
    const before = codeVersion(file, "say_hello");
    write(
      "node_modules/@scope/unused/package.json",
      JSON.stringify({ name: "@scope/unused", version: "2.0.0" }),
    );
    expect(codeVersion(file, "say_hello")).toBe(before);
    write("node_modules/leftpad-ish/package.json", manifest("1.0.1"));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("includes the @tern/core version too", () => {
    write("node_modules/@tern/core/package.json", JSON.stringify({ name: "@tern/core", version: "0.1.0" }));
    const file = write("tasks.ts", taskModule({}));
    const before = codeVersion(file, "say_hello");
    write("node_modules/@tern/core/package.json", JSON.stringify({ name: "@tern/core", version: "0.2.0" }));
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });
});

describe("codeVersion: fallback, memoization and errors", () => {
  it("falls back to the module closure when the task is not found by name", () => {
    write("util.ts", `export const u = 1;`);
    const source = (unrelated: number) =>
      [
        `import { task } from "@tern/core";`,
        `import { u } from "./util.js";`,
        `const NAME = "dyn" + "amic";`,
        `function unrelated() { return ${unrelated}; }`,
        `export const t = task({ name: NAME }, async () => u);`,
      ].join("\n");
    const file = write("tasks.ts", source(1));
    const v1 = codeVersion(file, "dynamic");
    // Whole-module semantics: even an unrelated edit changes it...
    write("tasks.ts", source(2));
    const v2 = codeVersion(file, "dynamic");
    // ...and so does an edit to an imported module.
    write("util.ts", `export const u = 2;`);
    const v3 = codeVersion(file, "dynamic");
    expect(new Set([v1, v2, v3]).size).toBe(3);
    // Any name that is not found gets the same whole-module version.
    expect(codeVersion(file, "missing-task")).toBe(v3);
  });

  it("resolves options given as a top-level const object", () => {
    const source = (unrelated: number) =>
      [
        `import { task } from "@tern/core";`,
        `const opts = { name: "from_const", cache: true };`,
        `function unrelated() { return ${unrelated}; }`,
        `export const t = task(opts, async () => 1);`,
      ].join("\n");
    const file = write("tasks.ts", source(1));
    const before = codeVersion(file, "from_const");
    write("tasks.ts", source(2));
    expect(codeVersion(file, "from_const")).toBe(before);
    write("tasks.ts", source(2).replace("cache: true", "cache: false"));
    expect(codeVersion(file, "from_const")).not.toBe(before);
  });

  it("memoizes by (mtime, size) until clearCodeVersionCache()", () => {
    const file = write("tasks.ts", taskModule({ body: "greet(name + 1)" }));
    const before = codeVersion(file, "say_hello");
    // Same size, same mtime, different content: the memo cannot tell...
    const stat = fs.statSync(file);
    fs.writeFileSync(file, taskModule({ body: "greet(name + 2)" }));
    fs.utimesSync(file, stat.atime, stat.mtime);
    expect(codeVersion(file, "say_hello")).toBe(before);
    // ...until the cache is cleared.
    clearCodeVersionCache();
    expect(codeVersion(file, "say_hello")).not.toBe(before);
  });

  it("throws a clear error naming the file and the task when the file is missing", () => {
    const file = path.join(dir, "nope.ts");
    expect(() => codeVersion(file, "say_hello")).toThrow(/say_hello/);
    expect(() => codeVersion(file, "say_hello")).toThrow(
      new RegExp(`${escapeRegExp(file)}.*ENOENT|ENOENT.*${escapeRegExp(file)}`),
    );
  });

  it("throws an error naming the file and line on a syntax error", () => {
    const file = write("broken.ts", `import { task } from "@tern/core";\n\nconst x = ;\n`);
    expect(() => codeVersion(file, "t")).toThrow(new RegExp(`${escapeRegExp(file)} \\(line 3`));
  });

  it("names an imported file that does not parse", () => {
    const bad = write("bad.ts", `export const = 1;`);
    const file = write("tasks.ts", taskModule({ header: `import { x } from "./bad.js";`, body: "greet(x)" }));
    expect(() => codeVersion(file, "say_hello")).toThrow(new RegExp(`cannot parse ${escapeRegExp(bad)}`));
  });
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
