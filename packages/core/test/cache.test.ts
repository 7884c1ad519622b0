import * as fs from "node:fs";
import * as path from "node:path";
import {
  type AnyTask,
  bundleEntry,
  type CatalogEntry,
  cacheKey,
  compile,
  createEngine,
  DiskCatalog,
  type ExecutionEvent,
  file,
  importBundle,
  isTaskDef,
  type LocalEngine,
  MemoryCatalog,
  t,
  task,
  workflow,
} from "@tern/core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { cleanupTempDirs, tempDir } from "./helpers.js";

afterAll(cleanupTempDirs);

const engines: LocalEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

async function engine(opts: Parameters<typeof createEngine>[0] = {}): Promise<LocalEngine> {
  const local = await createEngine({ workDir: tempDir(), ...opts });
  engines.push(local);
  return local;
}

/** The node's succeeded event of a one-node run. */
function succeeded(events: ExecutionEvent[]): ExecutionEvent {
  const e = events.find((x) => x.node !== undefined && x.phase === "succeeded");
  if (!e) throw new Error("no succeeded node event");
  return e;
}

describe("cache: hits and misses", () => {
  it("hits on identical inputs, misses on different ones", async () => {
    let calls = 0;
    const square = task(
      {
        name: "ca_square",
        inputs: { x: z.number(), o: z.object({ a: z.number(), b: z.number() }) },
        output: z.number(),
        cache: true,
      },
      async ({ x }) => {
        calls++;
        return x * x;
      },
    );
    const local = await engine();
    const run = async (inputs: Record<string, unknown>) => {
      const r = await local.run(square, inputs);
      expect(r.phase).toBe("succeeded");
      return { out: r.outputs, cached: r.nodes[0].cached };
    };
    expect(await run({ x: 3, o: { a: 1, b: 2 } })).toEqual({ out: 9, cached: false });
    expect(await run({ x: 3, o: { a: 1, b: 2 } })).toEqual({ out: 9, cached: true });
    // Key order does not matter: inputs are compared canonically.
    expect(await run({ o: { b: 2, a: 1 }, x: 3 })).toEqual({ out: 9, cached: true });
    expect(await run({ x: 4, o: { a: 1, b: 2 } })).toEqual({ out: 16, cached: false });
    expect(await run({ x: 3, o: { a: 1, b: 3 } })).toEqual({ out: 9, cached: false });
    expect(calls).toBe(3);
  });

  it("a cache hit records lineage: the execution, node and attempt that produced the value", async () => {
    let calls = 0;
    const flaky = task(
      {
        name: "ca_flaky",
        inputs: { x: z.number() },
        output: z.number(),
        cache: true,
        retries: { user: 1, backoff: { base: 1 } },
      },
      async ({ x }) => {
        if (++calls === 1) throw new Error("first attempt fails");
        return x + 1;
      },
    );
    const wf = workflow({ name: "ca_lineage", output: z.number() }, () => flaky({ x: 1 }, { id: "inc" }));
    const local = await engine();
    const first: ExecutionEvent[] = [];
    const r1 = await local.run(wf, {}, { id: "first-run", onEvent: (e) => first.push(e) });
    expect(r1.phase).toBe("succeeded");
    expect(succeeded(first).cached).toBeUndefined();
    const second: ExecutionEvent[] = [];
    const r2 = await local.run(wf, {}, { id: "second-run", onEvent: (e) => second.push(e) });
    expect(r2.outputs).toBe(2);
    expect(succeeded(second)).toMatchObject({
      cached: true,
      outputs: 2,
      producer: { execution: "first-run", node: "inc", attempt: 2 },
    });
    expect(second.filter((e) => e.node === "inc").map((e) => e.phase)).toEqual(["queued", "succeeded"]);
    expect(r2.nodes[0]).toMatchObject({ cached: true, attempts: 0 });
    const [entry] = await local.catalog!.list({ task: "ca_flaky" });
    expect(entry).toMatchObject({
      task: "ca_flaky",
      project: "default",
      domain: "development",
      outputs: 2,
      producer: { execution: "first-run", node: "inc", attempt: 2 },
    });
    expect(calls).toBe(2);
  });

  it("ignoreInputs are left out of the key", async () => {
    let calls = 0;
    const fetch = task(
      {
        name: "ca_ignore",
        inputs: { url: z.string(), verbose: z.boolean().default(false), token: z.string().optional() },
        output: z.string(),
        cache: { ignoreInputs: ["verbose", "token"] },
      },
      async ({ url }) => {
        calls++;
        return url.toUpperCase();
      },
    );
    const local = await engine();
    const cached = async (inputs: Record<string, unknown>) =>
      (await local.run(fetch, inputs)).nodes[0].cached;
    expect(await cached({ url: "a", verbose: true, token: "t1" })).toBe(false);
    expect(await cached({ url: "a", verbose: false, token: "t2" })).toBe(true);
    expect(await cached({ url: "a" })).toBe(true);
    expect(await cached({ url: "b", verbose: true })).toBe(false);
    expect(calls).toBe(2);
  });

  it("an explicit version change invalidates; the old version stays cached", async () => {
    let calls = 0;
    const body = async ({ x }: { x: number }) => {
      calls++;
      return x;
    };
    const v1 = task(
      { name: "ca_version", inputs: { x: z.number() }, output: z.number(), cache: { version: "1" } },
      body,
    );
    const v2 = task(
      { name: "ca_version", inputs: { x: z.number() }, output: z.number(), cache: { version: "2" } },
      body,
    );
    const local = await engine();
    const cached = async (def: AnyTask) => (await local.run(def, { x: 1 })).nodes[0].cached;
    expect([
      await cached(v1),
      await cached(v1),
      await cached(v2),
      await cached(v2),
      await cached(v1),
    ]).toEqual([false, true, false, true, true]);
    expect(calls).toBe(2);
  });

  it("failures are not cached, and a node can turn its cache off", async () => {
    let calls = 0;
    const maybe = task(
      { name: "ca_fail", inputs: { fail: z.boolean() }, output: z.number(), cache: true },
      async ({ fail }) => {
        calls++;
        if (fail) throw new Error("no");
        return 1;
      },
    );
    const local = await engine();
    expect((await local.run(maybe, { fail: true })).phase).toBe("failed");
    expect((await local.run(maybe, { fail: true })).phase).toBe("failed");
    expect(calls).toBe(2);
    const off = workflow({ name: "ca_off" }, () => maybe({ fail: false }, { cache: false }));
    await local.run(off);
    await local.run(off);
    expect(calls).toBe(4);
    expect(await local.catalog!.list({ task: "ca_fail" })).toEqual([]);
  });

  it("evicting a task's entries makes the next run a miss", async () => {
    let calls = 0;
    const one = task({ name: "ca_evict", output: z.number(), cache: true }, async () => ++calls);
    const local = await engine();
    await local.run(one);
    await local.run(one);
    expect(calls).toBe(1);
    expect(await local.catalog!.evict({ task: "ca_evict" })).toBe(1);
    expect((await local.run(one)).nodes[0].cached).toBe(false);
    expect(calls).toBe(2);
  });

  it("the key covers project, domain, task name, version, interface and inputs", () => {
    const def = task(
      {
        name: "ca_key",
        inputs: { a: z.number(), b: z.string().optional() },
        output: z.number(),
        cache: { version: "v" },
      },
      async () => 1,
    );
    const spec = Object.values(compile(def).spec.tasks)[0];
    const base = cacheKey(spec, "v", [], { a: 1, b: "x" });
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey(spec, "v", [], { b: "x", a: 1 })).toBe(base);
    const other = (patch: object) =>
      cacheKey({ ...spec, id: { ...spec.id, ...patch } }, "v", [], { a: 1, b: "x" });
    expect(
      new Set([
        base,
        other({ project: "p" }),
        other({ domain: "production" }),
        other({ name: "other" }),
        cacheKey(spec, "w", [], { a: 1, b: "x" }),
      ]).size,
    ).toBe(5);
    const otherIface = { ...spec, interface: { ...spec.interface, output: { type: "string" } } };
    expect(cacheKey(otherIface, "v", [], { a: 1, b: "x" })).not.toBe(base);
    expect(cacheKey(spec, "v", ["b"], { a: 1, b: "y" })).toBe(cacheKey(spec, "v", ["b"], { a: 1 }));
    // Local paths of by-reference values are not part of the key, their URIs are.
    const f = (p: string, uri = "file:///blob/1") => ({ a: 1, f: { $tern: "file", path: p, uri } });
    expect(cacheKey(spec, "v", [], f("/tmp/one"))).toBe(cacheKey(spec, "v", [], f("/tmp/two")));
    expect(cacheKey(spec, "v", [], f("/tmp/one"))).not.toBe(
      cacheKey(spec, "v", [], f("/tmp/one", "file:///blob/2")),
    );
  });
});

describe("cache: file inputs", () => {
  it("keys a workflow's input file by its content, not its path", async () => {
    let calls = 0;
    const countLines = task(
      { name: "ca_count_lines", inputs: { f: t.file({ format: "csv" }) }, output: z.number(), cache: true },
      async ({ f }) => {
        calls++;
        return fs.readFileSync(f.path, "utf8").split("\n").length;
      },
    );
    const wf = workflow(
      { name: "ca_count_wf", inputs: { f: t.file({ format: "csv" }) }, output: z.number() },
      ({ f }) => countLines({ f }),
    );
    const local = await engine();
    const dir = tempDir();
    const p = path.join(dir, "data.csv");
    fs.writeFileSync(p, "a\nb\n");
    expect((await local.run(wf, { f: file(p) })).outputs).toBe(3);
    // Same path, new content: must not be served from the cache.
    fs.writeFileSync(p, "a\nb\nc\nd\n");
    const second = await local.run(wf, { f: file(p) });
    expect(second.outputs).toBe(5);
    expect(second.nodes[0].cached).toBe(false);
    // Same content under another name: a hit.
    const copy = path.join(dir, "copy.csv");
    fs.copyFileSync(p, copy);
    const third = await local.run(wf, { f: file(copy) });
    expect(third.outputs).toBe(5);
    expect(third.nodes[0].cached).toBe(true);
    expect(calls).toBe(2);
  });
});

describe("cache: serialize", () => {
  it("two concurrent executions with identical inputs run the body once; the second is a cache hit", async () => {
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = task(
      { name: "ca_serial", inputs: { x: z.number() }, output: z.number(), cache: { serialize: true } },
      async ({ x }) => {
        calls++;
        await gate;
        return x * 10;
      },
    );
    const local = await engine();
    const a = local.run(slow, { x: 1 });
    const b = local.run(slow, { x: 1 });
    setTimeout(release, 30);
    const [ra, rb] = await Promise.all([a, b]);
    expect(calls).toBe(1);
    expect([ra.outputs, rb.outputs]).toEqual([10, 10]);
    expect([ra.nodes[0].cached, rb.nodes[0].cached].sort()).toEqual([false, true]);
  });

  it("different inputs are not serialized against each other", async () => {
    let calls = 0;
    let active = 0;
    let maxActive = 0;
    const slow = task(
      { name: "ca_serial2", inputs: { x: z.number() }, output: z.number(), cache: { serialize: true } },
      async ({ x }) => {
        calls++;
        maxActive = Math.max(maxActive, ++active);
        await new Promise((r) => setTimeout(r, 10));
        active--;
        return x;
      },
    );
    const local = await engine();
    await Promise.all([local.run(slow, { x: 1 }), local.run(slow, { x: 2 })]);
    expect(calls).toBe(2);
    expect(maxActive).toBe(2);
  });

  it("engines on one disk catalog (two processes) serialize too", { timeout: 15_000 }, async () => {
    const dir = tempDir();
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = task(
      { name: "ca_serial_disk", inputs: { x: z.number() }, output: z.number(), cache: { serialize: true } },
      async ({ x }) => {
        calls++;
        await gate;
        return x;
      },
    );
    const one = await engine({ workDir: dir, catalog: "disk" });
    const two = await engine({ workDir: dir, catalog: "disk" });
    const a = one.run(slow, { x: 5 });
    const b = two.run(slow, { x: 5 });
    setTimeout(release, 50);
    const [ra, rb] = await Promise.all([a, b]);
    expect([ra.outputs, rb.outputs]).toEqual([5, 5]);
    expect(calls).toBe(1);
  });
});

describe("cache: code-derived versions", () => {
  /** A project in a temp dir whose modules import the same @tern/core and zod as this test. */
  function project(files: Record<string, string>): {
    dir: string;
    edit(file: string, from: string, to: string): void;
  } {
    const dir = tempDir("tern-cv-");
    fs.mkdirSync(path.join(dir, "node_modules", "@tern"), { recursive: true });
    fs.symlinkSync("/work/main/packages/core", path.join(dir, "node_modules", "@tern", "core"));
    fs.symlinkSync(
      fs.realpathSync("/work/main/packages/core/node_modules/zod"),
      path.join(dir, "node_modules", "zod"),
    );
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "cv-project", type: "module" }));
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
    let tick = 0;
    return {
      dir,
      edit(file, from, to) {
        const p = path.join(dir, file);
        const text = fs.readFileSync(p, "utf8");
        if (!text.includes(from)) throw new Error(`${file} does not contain ${from}`);
        fs.writeFileSync(p, text.replace(from, to));
        // Move mtime forward so a same-size edit within one clock tick is still seen.
        const t = new Date(Date.now() + ++tick * 10_000);
        fs.utimesSync(p, t, t);
      },
    };
  }

  async function load(dir: string, exportName: string): Promise<AnyTask> {
    const bundle = await bundleEntry(path.join(dir, "tasks.ts"));
    const mod = await importBundle(bundle.path);
    const def = mod[exportName];
    if (!isTaskDef(def)) throw new Error(`${exportName} is not a task`);
    return def;
  }

  it("editing the task body or a helper it imports misses; editing unrelated code or comments hits", async () => {
    const p = project({
      "tasks.ts": [
        'import { task } from "@tern/core";',
        'import { z } from "zod";',
        'import { helper } from "./helper.js";',
        'import { unrelated } from "./other.js";',
        "",
        "export const work = task(",
        '  { name: "cv_work", inputs: { x: z.number() }, output: z.number(), cache: true },',
        "  async ({ x }) => helper(x) + 1,",
        ");",
        'export const other = task({ name: "cv_other", inputs: { x: z.number() }, output: z.string(), cache: true }, async ({ x }) => unrelated(x));',
        "",
      ].join("\n"),
      "helper.ts": "export function helper(x: number): number {\n  return x * 2;\n}\n",
      "other.ts": "export function unrelated(x: number): string {\n  return String(x);\n}\n",
    });
    const local = await engine({ workDir: p.dir });
    const runWork = async () => {
      const def = await load(p.dir, "work");
      expect(def.callSite.file).toBe(path.join(p.dir, "tasks.ts"));
      const r = await local.run(def, { x: 1 });
      expect(r.phase).toBe("succeeded");
      return [r.outputs, r.nodes[0].cached];
    };
    expect(await runWork()).toEqual([3, false]);
    expect(await runWork()).toEqual([3, true]);

    p.edit("other.ts", "return String(x);", 'return "#" + String(x);');
    expect(await runWork()).toEqual([3, true]);

    p.edit(
      "tasks.ts",
      'import { unrelated } from "./other.js";\n',
      'import { unrelated } from "./other.js";\n// a comment between declarations\n',
    );
    expect(await runWork()).toEqual([3, true]);

    p.edit("tasks.ts", "helper(x) + 1", "helper(x) + 2");
    expect(await runWork()).toEqual([4, false]);
    expect(await runWork()).toEqual([4, true]);

    p.edit("helper.ts", "x * 2", "x * 3");
    expect(await runWork()).toEqual([5, false]);

    // Going back to earlier code finds its cached value again.
    p.edit("helper.ts", "x * 3", "x * 2");
    expect(await runWork()).toEqual([4, true]);
  });
});

describe("DiskCatalog", () => {
  const entry = (
    key: string,
    outputs: unknown = { v: key },
    task = "t",
  ): Omit<CatalogEntry, "sizeBytes" | "createdAt"> => ({
    key,
    project: "p",
    domain: "d",
    task,
    cacheVersion: "1",
    outputs: outputs as never,
    producer: { execution: "x1", node: "n", attempt: 1 },
  });
  const keys = async (c: MemoryCatalog) => (await c.list()).map((e) => e.key).sort();

  it("persists entries across instances", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    const put = await a.put(entry("k1", { rows: [1, 2] }));
    await a.put(entry("k2"));
    expect(put.sizeBytes).toBeGreaterThan(0);
    expect(put.createdAt).toBeGreaterThan(0);
    await a.close();
    const b = new DiskCatalog(dir);
    expect(await b.get("k1")).toEqual(put);
    expect(await keys(b)).toEqual(["k1", "k2"]);
    expect(b.sizeBytes).toBe(a.sizeBytes);
    expect(await b.get("missing")).toBeUndefined();
    await b.close();
  });

  it("evicts by task, project or key, durably", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    await a.put(entry("k1", 1, "train"));
    await a.put(entry("k2", 2, "train"));
    await a.put(entry("k3", 3, "score"));
    expect(await a.evict({ task: "train" })).toBe(2);
    expect(await a.evict({ task: "train" })).toBe(0);
    expect(await a.list({ task: "score" })).toHaveLength(1);
    expect(await a.evict({ key: "nope" })).toBe(0);
    await a.close();
    const b = new DiskCatalog(dir);
    expect(await keys(b)).toEqual(["k3"]);
    expect(await b.evict({ project: "p" })).toBe(1);
    expect(b.sizeBytes).toBe(0);
    await b.close();
  });

  it("maxBytes evicts the least recently used entries, and reopening keeps that order", async () => {
    const dir = tempDir();
    const probe = new DiskCatalog(tempDir());
    const size = (await probe.put(entry("k0", "x".repeat(100)))).sizeBytes;
    await probe.close();
    const a = new DiskCatalog(dir, { maxBytes: size * 3 });
    for (const k of ["k1", "k2", "k3"]) await a.put(entry(k, "x".repeat(100)));
    expect(await keys(a)).toEqual(["k1", "k2", "k3"]);
    await a.get("k1"); // k2 is now the least recently used
    await a.put(entry("k4", "x".repeat(100)));
    expect(await keys(a)).toEqual(["k1", "k3", "k4"]);
    expect(a.sizeBytes).toBeLessThanOrEqual(size * 3);
    await a.get("k3"); // k1 is now the least recently used; recorded in the log at close
    await a.close();
    const b = new DiskCatalog(dir, { maxBytes: size * 3 });
    expect(await keys(b)).toEqual(["k1", "k3", "k4"]);
    await b.put(entry("k5", "x".repeat(100)));
    expect(await keys(b)).toEqual(["k3", "k4", "k5"]);
    await b.close();
  });

  it("an entry larger than the bound is kept alone rather than lost", async () => {
    const a = new DiskCatalog(tempDir(), { maxBytes: 50 });
    await a.put(entry("small", 1));
    await a.put(entry("big", "x".repeat(500)));
    expect(await keys(a)).toEqual(["big"]);
    await a.close();
  });

  it("compacts its log and keeps every live entry", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    const big = "y".repeat(2000);
    for (let i = 0; i < 80; i++) await a.put(entry(`k${i % 4}`, `${big}${i}`));
    const logSize = fs.statSync(path.join(dir, "catalog.ndjson")).size;
    // 80 records of ~2 KB (~170 KB) were written; the log is compacted to the live entries
    // whenever it passes 64 KiB, so it never holds much more than that.
    expect(logSize).toBeLessThan(64 * 1024 + 2 * 2200);
    expect(a.sizeBytes).toBeGreaterThan(4 * 2000);
    await a.close();
    const b = new DiskCatalog(dir);
    expect(await keys(b)).toEqual(["k0", "k1", "k2", "k3"]);
    expect((await b.get("k3"))!.outputs).toBe(`${big}79`);
    expect((await b.get("k0"))!.outputs).toBe(`${big}76`);
    await b.close();
  });

  it("ignores a torn last line, and entries written after it survive the next reopen", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    await a.put(entry("k1"));
    await a.put(entry("k2"));
    await a.close();
    const log = path.join(dir, "catalog.ndjson");
    fs.appendFileSync(log, '{"op":"put","entry":{"key":"k3","proj');
    const b = new DiskCatalog(dir);
    expect(await keys(b)).toEqual(["k1", "k2"]);
    await b.put(entry("k4"));
    await b.close();
    const c = new DiskCatalog(dir);
    expect(await keys(c)).toEqual(["k1", "k2", "k4"]);
    await c.close();
  });

  it("a miss reads what another instance on the same directory wrote, compacted or not", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    const b = new DiskCatalog(dir);
    await a.put(entry("k1", 1));
    expect((await b.get("k1"))?.outputs).toBe(1);
    // b appends too; a sees it, and re-reading its own records changes nothing.
    await b.put(entry("k2", 2));
    expect((await a.get("k2"))?.outputs).toBe(2);
    expect(await keys(a)).toEqual(["k1", "k2"]);
    // a compacts (rewrites the log into a new file); b notices and reads it afresh.
    const big = "z".repeat(3000);
    for (let i = 0; i < 40; i++) await a.put(entry("k3", `${big}${i}`));
    expect((await b.get("k3"))?.outputs).toBe(`${big}39`);
    expect(await keys(b)).toEqual(["k1", "k2", "k3"]);
    expect(b.sizeBytes).toBe(a.sizeBytes);
    await a.close();
    await b.close();
  });

  it("leases are shared by instances on one directory", async () => {
    const dir = tempDir();
    const a = new DiskCatalog(dir);
    const b = new DiskCatalog(dir);
    expect(await a.acquire("key", "owner-a", 60_000)).toBe(true);
    expect(await a.acquire("key", "owner-a", 60_000)).toBe(true); // re-entrant for its owner
    expect(await b.acquire("key", "owner-b", 60_000)).toBe(false);
    await b.release("key", "owner-b"); // not b's lease: no effect
    expect(await b.acquire("key", "owner-b", 60_000)).toBe(false);
    await a.release("key", "owner-a");
    expect(await b.acquire("key", "owner-b", 60_000)).toBe(true);
    expect(await a.acquire("key", "owner-a", 60_000)).toBe(false);
    // A lease older than the ttl is taken over.
    expect(await a.acquire("key", "owner-a", 0)).toBe(true);
    expect(await b.acquire("key", "owner-b", 60_000)).toBe(false);
    await a.close();
    await b.close();
  });
});

describe("MemoryCatalog", () => {
  it("lists and evicts with filters, and leases per key", async () => {
    const c = new MemoryCatalog();
    const base = {
      project: "p",
      cacheVersion: "1",
      outputs: null,
      producer: { execution: "x", node: "n", attempt: 1 },
    };
    await c.put({ ...base, key: "a", domain: "development", task: "t1" });
    await c.put({ ...base, key: "b", domain: "production", task: "t1" });
    await c.put({ ...base, key: "c", domain: "production", task: "t2" });
    expect((await c.list({ task: "t1" })).map((e) => e.key)).toEqual(["a", "b"]);
    expect((await c.list({ domain: "production" })).map((e) => e.key)).toEqual(["b", "c"]);
    expect(await c.evict({ domain: "production", task: "t1" })).toBe(1);
    expect((await c.list()).map((e) => e.key)).toEqual(["a", "c"]);
    expect(await c.acquire("k", "o1", 60_000)).toBe(true);
    expect(await c.acquire("k", "o2", 60_000)).toBe(false);
    expect(await c.acquire("other", "o2", 60_000)).toBe(true);
    await c.release("k", "o1");
    expect(await c.acquire("k", "o2", 60_000)).toBe(true);
  });
});
