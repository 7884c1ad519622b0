/**
 * The worker's attempt journal: when a file is full it is settled into result files —
 * except for attempts whose outcomes the engine's caller already stored (`forget`), which
 * nobody will ever adopt.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JOURNAL_DIR, JournalWriter, settleJournal } from "../src/backends/attempt-journal.js";

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

describe("settling a dead worker's journal", () => {
  it("two settlements of one journal in one process both finish, and leave whole result files", async () => {
    // Two backends of one process may settle the same dead journal at once (the one whose
    // worker died, and a new one on the same blob root): their writes must not share a
    // temporary file, or one truncates what the other is about to publish.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-journal-"));
    roots.push(root);
    const dead = { pid: 2 ** 22 + 17, start: 1 };
    const w = new JournalWriter(root, dead);
    const big = "z".repeat(64 * 1024);
    for (let i = 0; i < 40; i++) {
      w.started(`a${i}`, `x/a${i}/1`);
      if (i % 2) w.result(`a${i}`, `x/a${i}/1`, "e", JSON.stringify({ message: big }));
    }
    const journals = fs.readdirSync(path.join(root, JOURNAL_DIR)).map((f) => path.join(root, JOURNAL_DIR, f));
    expect(journals.length).toBe(1);
    const settle = () => settleJournal(root, journals[0], true);
    await Promise.all([settle(), settle(), settle()]);
    for (let i = 0; i < 40; i++) {
      const doc = JSON.parse(fs.readFileSync(path.join(root, `x/a${i}/1`, "error.json"), "utf8"));
      expect(doc.message).toEqual(i % 2 ? big : expect.stringContaining(`the attempt a${i} was lost`));
    }
    const left = fs.readdirSync(root, { recursive: true }).filter((f) => String(f).endsWith(".tmp"));
    expect(left).toEqual([]);
  });
});
