/**
 * The task cache through the CLI: a second run hits the cache, `tern cache
 * list` shows the entries with their producer, `tern cache clear` removes
 * them and the next run recomputes, `--no-cache` bypasses it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProject, removeProject, tern, ternJson } from "./helpers.js";

let project: string;
beforeAll(() => {
  project = makeProject();
});
afterAll(() => removeProject(project));

describe("tern cache", () => {
  it("serves a cached task on the second run, lists it, clears it, and recomputes", async () => {
    const first = await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "4"]);
    expect(first.json.outputs).toBe(17);
    expect(first.json.nodes[0]).toMatchObject({ id: "square", cached: false, attempts: 1 });

    const second = await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "4"]);
    expect(second.json.outputs).toBe(17);
    expect(second.json.nodes[0]).toMatchObject({ id: "square", cached: true, attempts: 0 });
    // add_one is not cacheable: it runs again.
    expect(second.json.nodes[1]).toMatchObject({ id: "add_one", cached: false, attempts: 1 });

    const list = await ternJson(project, ["cache", "list"]);
    expect(list.code).toBe(0);
    expect(list.json.entries).toHaveLength(1);
    expect(list.json.entries[0]).toMatchObject({
      task: "square",
      outputs: 16,
      producer: { execution: first.json.execution, node: "square", attempt: 1 },
    });
    expect(list.json.entries[0].cacheVersion).toMatch(/^[0-9a-f]+$/);
    expect(list.json.entries[0].sizeBytes).toBeGreaterThan(0);

    const table = await tern(project, ["cache", "list"]);
    expect(table.stdout).toMatch(/^TASK\s+CACHE VERSION\s+CREATED\s+SIZE\s+PRODUCER/);
    expect(table.stdout).toContain(`square  ${list.json.entries[0].cacheVersion}`);
    expect(table.stdout).toContain(`${first.json.execution}/square`);
    expect(table.stdout).toContain("1 entry");

    const cleared = await tern(project, ["cache", "clear", "square"]);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain('removed 1 cache entry of task "square"');
    expect((await ternJson(project, ["cache", "list"])).json.entries).toEqual([]);

    const third = await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "4"]);
    expect(third.json.nodes[0]).toMatchObject({ id: "square", cached: false, attempts: 1 });
  });

  it("neither reads nor writes the cache with --no-cache", async () => {
    await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "6"]);
    const before = (await ternJson(project, ["cache", "list", "--task", "square"])).json.entries.length;
    const r = await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "6", "--no-cache"]);
    expect(r.json.nodes[0]).toMatchObject({ cached: false, attempts: 1 });
    const fresh = await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "7", "--no-cache"]);
    expect(fresh.json.outputs).toBe(50);
    expect((await ternJson(project, ["cache", "list", "--task", "square"])).json.entries.length).toBe(before);
  });

  it("requires a task name or --all to clear, and --all empties the cache", async () => {
    const none = await tern(project, ["cache", "clear"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("error[TERN_E_USAGE]: say which task's cache entries to clear, or --all");
    await ternJson(project, ["run", "flows.ts", "pipeline", "--n", "8"]);
    const all = await ternJson(project, ["cache", "clear", "--all"]);
    expect(all.json.removed).toBeGreaterThanOrEqual(1);
    expect((await ternJson(project, ["cache", "list"])).json.entries).toEqual([]);
  });
});
