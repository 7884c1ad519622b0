/**
 * The worker's attempt journal: when a file is full it is settled into result files —
 * except for attempts whose outcomes the engine's caller already stored (`forget`), which
 * nobody will ever adopt.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JOURNAL_DIR, JournalWriter } from "../src/backends/attempt-journal.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

function outputs(root: string, prefix: string): string | undefined {
  const f = path.join(root, prefix, "outputs.json");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : undefined;
}

describe("JournalWriter", () => {
  it("settles a full file into result files, skipping the attempts recorded elsewhere", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-journal-"));
    roots.push(root);
    const w = new JournalWriter(root, { pid: process.pid, start: 1 });
    for (const a of ["a1", "a2", "a3"]) {
      w.started(a, `x/${a}/1`);
      w.result(a, `x/${a}/1`, "o", JSON.stringify(`${a}-out`));
    }
    // a1 before the file fills, a3 after (told late, but before its file is settled).
    w.forget(["a1"]);
    w.started("big", "x/big/1");
    // Past the rotation size: the file is closed and settled in the background.
    w.result("big", "x/big/1", "o", JSON.stringify("y".repeat(4 * 1024 * 1024)));
    w.forget(["a3"]);
    await w.idle();
    expect(outputs(root, "x/a1/1")).toBeUndefined();
    expect(outputs(root, "x/a3/1")).toBeUndefined();
    expect(outputs(root, "x/a2/1")).toBe('"a2-out"');
    expect(outputs(root, "x/big/1")?.length).toBe(4 * 1024 * 1024 + 2);
    // The settled file is gone; the next one is started on the next line.
    expect(fs.readdirSync(path.join(root, JOURNAL_DIR))).toEqual([]);
    w.started("a4", "x/a4/1");
    expect(fs.readdirSync(path.join(root, JOURNAL_DIR))).toEqual([`${process.pid}-1-1.log`]);
  });
});
