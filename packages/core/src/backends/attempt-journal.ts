/**
 * The attempt journal: what makes a `process` backend attempt outlive the engine that
 * launched it, at the cost of two appends to an open file per attempt.
 *
 * Each worker appends to its own file, `<blob root>/.tern-journal/<pid>-<start>-<n>.log`,
 * one JSON line per record:
 *
 * - `{"s": attempt, "p": outputPrefix}` before the attempt runs: "this process runs it";
 * - `{"r": attempt, "p": outputPrefix, "k": "o" | "e" | "f", "v": value}` before the
 *   worker replies: its outputs (`o`), its error document (`e`), or `f` when the outputs
 *   were large and written to `<outputPrefix>/outputs.json` instead;
 * - `{"x": attempt, "p": outputPrefix}` when the worker gives an attempt back without a
 *   result (it runs again on a fresh worker).
 *
 * Why a journal, not a file per attempt: creating directories and files waits on the
 * filesystem's own journal, and under I/O load that was measured at 0.3–2 ms per
 * create on this project's machines, where an append to an open file takes ~2 µs.
 *
 * Settling: when a journal file passes {@link ROTATE_BYTES} its worker starts the next
 * one and, in the background, writes every result of the old one to
 * `<outputPrefix>/outputs.json` or `error.json` (where the engine and the blob store
 * keep results) and then deletes it. Journals of workers that are gone are settled
 * by the process backends that use the blob root ({@link settleDeadJournals}); an
 * attempt such a worker started and never finished gets an `error.json` saying it was
 * lost (a system error: the engine retries it).
 *
 * A restarted engine looks an attempt up (see {@link JournalIndex}) in the journals of
 * workers that are not its own: a result is adopted, a mark of a live worker means the
 * attempt still runs there, a mark of a dead one without a result means it was lost.
 * @internal
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ErrorCodes, type ErrorDocument } from "../errors.js";
import type { Json } from "../json.js";
import {
  ERROR_FILE,
  isWorkerAlive,
  OUTPUTS_FILE,
  type ProcessIdentity,
  readResult,
  type StoredResult,
  writeResultFileAsync,
} from "./attempt-files.js";

/** Directory of the journals, inside the blob root. */
export const JOURNAL_DIR = ".tern-journal";
/** Recorded attempt ids a worker remembers at most (see JournalWriter.forget). */
const MAX_RECORDED = 200_000;
/** Size after which a worker starts a new journal file and settles the old one. */
export const ROTATE_BYTES = 4 * 1024 * 1024;

/** How a result is recorded: outputs inline, an error document, or outputs in `outputs.json`. */
export type ResultKind = "o" | "e" | "f";

interface Line {
  s?: string;
  r?: string;
  x?: string;
  p: string;
  k?: ResultKind;
  v?: unknown;
}

function fileName(self: ProcessIdentity, n: number): string {
  return `${self.pid}-${self.start ?? ""}-${n}.log`;
}

/** The worker of a journal file, from its name. */
export function journalWorker(name: string): ProcessIdentity | undefined {
  const m = /^(\d+)-(\d*)-\d+\.log$/.exec(name);
  if (!m) return undefined;
  return { pid: Number(m[1]), ...(m[2] ? { start: Number(m[2]) } : {}) };
}

/** The worker side: appends marks and results, rotates, settles its old files. */
export class JournalWriter {
  private fd?: number;
  private size = 0;
  private n = 0;
  private file = "";
  private settling: Promise<void> = Promise.resolve();
  private readonly dir: string;
  /** Attempts whose outcomes the engine's caller stored: settling writes no result file for them. */
  private readonly recorded = new Set<string>();

  constructor(
    private readonly rootDir: string,
    private readonly self: ProcessIdentity,
  ) {
    this.dir = path.join(rootDir, JOURNAL_DIR);
  }

  /** Record that this process is about to run the attempt. */
  started(attempt: string, prefix: string): void {
    this.append(`{"s":${JSON.stringify(attempt)},"p":${JSON.stringify(prefix)}}\n`);
  }

  /** Record the attempt's result (`json`: outputs or error document as JSON text; none for `f`). */
  result(attempt: string, prefix: string, kind: ResultKind, json?: string): void {
    this.append(
      `{"r":${JSON.stringify(attempt)},"p":${JSON.stringify(prefix)},"k":"${kind}"${json === undefined ? "" : `,"v":${json}`}}\n`,
    );
    if (this.size >= ROTATE_BYTES) this.rotate();
  }

  /** Record that the attempt was given back without a result (it runs again elsewhere). */
  released(attempt: string, prefix: string): void {
    this.append(`{"x":${JSON.stringify(attempt)},"p":${JSON.stringify(prefix)}}\n`);
  }

  /**
   * The engine's caller stored these attempts' outcomes durably (see
   * `BackendPlugin.recorded`): when their journal file is settled, their results need no
   * file of their own — nobody will adopt them. Most results then cost nothing more than
   * their two journal lines.
   */
  forget(attempts: readonly string[]): void {
    // Bounded: an id left over (its file settled elsewhere) must not pile up forever.
    if (this.recorded.size + attempts.length > MAX_RECORDED) this.recorded.clear();
    for (const a of attempts) this.recorded.add(a);
  }

  /** Settling in progress (tests, clean exits). */
  idle(): Promise<void> {
    return this.settling;
  }

  private append(line: string): void {
    if (this.fd === undefined) this.open();
    const buf = Buffer.from(line, "utf8");
    for (let off = 0; off < buf.length; ) off += fs.writeSync(this.fd!, buf, off, buf.length - off);
    this.size += buf.length;
  }

  private open(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    this.file = path.join(this.dir, fileName(this.self, this.n));
    this.fd = fs.openSync(this.file, "a");
    this.size = fs.fstatSync(this.fd).size;
  }

  private rotate(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.n++;
    const old = this.file;
    // Every attempt in the old file has its result in it (rotation follows a result).
    this.settling = this.settling
      .then(() => settleJournal(this.rootDir, old, false, this.recorded))
      .catch(() => {});
  }
}

function parseLines(text: string): Line[] {
  const out: Line[] = [];
  for (const l of text.split("\n")) {
    if (!l) continue;
    try {
      out.push(JSON.parse(l) as Line);
    } catch {
      // a line cut short by a crash: it records nothing
    }
  }
  return out;
}

/**
 * Write every result of a journal file under its outputPrefix (unless one is there
 * already, or the attempt is in `recorded`: its outcome is stored elsewhere), then
 * delete the file. With `workerGone`, an attempt started in the file and
 * never finished or given back gets an `error.json` saying it was lost. A file that
 * cannot be read is left alone.
 */
export async function settleJournal(
  rootDir: string,
  file: string,
  workerGone = true,
  recorded?: Set<string>,
): Promise<void> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, "utf8");
  } catch {
    return;
  }
  const open = new Map<string, string>();
  for (const l of parseLines(text)) {
    if (l.s) {
      open.set(l.s, l.p);
      continue;
    }
    const id = l.r ?? l.x;
    if (id) open.delete(id);
    if (!l.r || (l.k !== "o" && l.k !== "e")) continue;
    // Stored by the engine's caller: nobody will look for this result.
    if (recorded?.delete(l.r)) continue;
    const dir = path.join(rootDir, l.p);
    if (readResult(dir)) continue;
    await writeResultFileAsync(
      path.join(dir, l.k === "o" ? OUTPUTS_FILE : ERROR_FILE),
      JSON.stringify(l.v ?? null),
    );
  }
  if (workerGone) {
    const worker = journalWorker(path.basename(file));
    for (const [id, prefix] of open) {
      const dir = path.join(rootDir, prefix);
      if (readResult(dir)) continue;
      const lost: ErrorDocument = {
        code: ErrorCodes.SYSTEM,
        kind: "system",
        message: `the attempt ${id} was lost: its worker process${worker ? ` (pid ${worker.pid})` : ""} is gone and left no result`,
        hint: "the worker was killed with (or after) the engine that started it; the attempt is retried",
      };
      await writeResultFileAsync(path.join(dir, ERROR_FILE), JSON.stringify(lost));
    }
  }
  await fs.promises.rm(file, { force: true });
}

/** Delete the journals of the given workers (killed by their own backend: nothing to adopt). */
export function removeJournals(rootDir: string, pids: ReadonlySet<number>): Promise<void> {
  const dir = path.join(rootDir, JOURNAL_DIR);
  return fs.promises.readdir(dir).then(
    async (names) => {
      for (const name of names) {
        const w = journalWorker(name);
        if (w && pids.has(w.pid)) await fs.promises.rm(path.join(dir, name), { force: true });
      }
    },
    () => undefined,
  );
}

/** Settle, in the background, the journals of workers that no longer run. */
export function settleDeadJournals(
  rootDir: string,
  alive: (id: ProcessIdentity) => boolean = isWorkerAlive,
): Promise<void> {
  const dir = path.join(rootDir, JOURNAL_DIR);
  return fs.promises.readdir(dir).then(
    async (names) => {
      for (const name of names) {
        const w = journalWorker(name);
        if (w && !alive(w)) await settleJournal(rootDir, path.join(dir, name)).catch(() => undefined);
      }
    },
    () => undefined,
  );
}

/** What the journals say about one attempt. */
export interface JournalEntry {
  /** Workers that took it (more than one when it was moved to a fresh worker). */
  workers: ProcessIdentity[];
  result?: StoredResult;
}

interface Tail {
  fd: number;
  offset: number;
  partial: string;
  worker: ProcessIdentity;
  /** What this file says, by attempt (dropped with the file once it is settled). */
  entries: Map<string, JournalEntry>;
}

/**
 * The parent side: an index of the journals of workers that are not this backend's
 * own, read incrementally. Each lookup first lists the journal directory and reads
 * what was appended since the last one, so it sees every record written before it.
 */
export class JournalIndex {
  private readonly dir: string;
  private readonly tails = new Map<string, Tail>();
  /** The last listing of the journal directory, and the directory's mtime before it. */
  private names: string[] = [];
  private listedMtime = Number.NaN;
  private listingTrusted = false;
  /** A journal file disappeared (was settled) during the last refresh. */
  private dropped = false;

  constructor(
    private readonly rootDir: string,
    /** True for the pids of this backend's live workers (their attempts it knows). */
    private readonly own: (pid: number) => boolean,
  ) {
    this.dir = path.join(rootDir, JOURNAL_DIR);
  }

  /**
   * What the journals say about `attempt` now. `settledMeanwhile` is set when a journal
   * file went away during the look (its results moved under their outputPrefix).
   */
  lookup(attempt: string): (JournalEntry & { settledMeanwhile?: boolean }) | undefined {
    this.refresh();
    if (this.dropped) return { workers: [], settledMeanwhile: true, ...this.entryOf(attempt) };
    return this.entryOf(attempt);
  }

  private entryOf(attempt: string): JournalEntry | undefined {
    let out: JournalEntry | undefined;
    for (const t of this.tails.values()) {
      const e = t.entries.get(attempt);
      if (!e) continue;
      out ??= { workers: [] };
      out.workers.push(...e.workers);
      if (e.result) out.result = e.result;
    }
    return out;
  }

  /** Stop reading (close the files). */
  close(): void {
    for (const t of this.tails.values()) closeQuietly(t.fd);
    this.tails.clear();
  }

  /**
   * The journal directory's entries. Listed again only when its mtime changed since the
   * last listing; that is trusted only when the listing was taken well after the
   * directory last changed (mtimes are coarse: a change in the same tick as a listing
   * could otherwise go unseen).
   */
  private list(): string[] | undefined {
    const st = fs.statSync(this.dir, { throwIfNoEntry: false });
    if (!st) {
      this.names = [];
      this.listedMtime = Number.NaN;
      return this.names;
    }
    const mtime = st.mtimeMs;
    if (mtime === this.listedMtime && this.listingTrusted) return undefined; // unchanged
    const now = Date.now();
    try {
      this.names = fs.readdirSync(this.dir);
    } catch {
      this.names = [];
    }
    this.listedMtime = mtime;
    this.listingTrusted = now - mtime > 100;
    return this.names;
  }

  private refresh(): void {
    this.dropped = false;
    const names = this.list();
    if (!names) {
      // Same files as last time: only read what foreign journals appended since.
      for (const t of this.tails.values()) this.readTail(t);
      return;
    }
    const seen = new Set<string>();
    for (const name of names) {
      const worker = journalWorker(name);
      if (!worker || this.own(worker.pid)) continue;
      seen.add(name);
      let t = this.tails.get(name);
      if (!t) {
        let fd: number;
        try {
          fd = fs.openSync(path.join(this.dir, name), "r");
        } catch {
          this.dropped = true; // settled and removed meanwhile: its results are under their outputPrefix
          continue;
        }
        t = { fd, offset: 0, partial: "", worker, entries: new Map() };
        this.tails.set(name, t);
      }
      this.readTail(t);
    }
    for (const [name, t] of this.tails) {
      if (seen.has(name)) continue;
      closeQuietly(t.fd);
      this.tails.delete(name);
      this.dropped = true;
    }
  }

  private readTail(t: Tail): void {
    const size = fs.fstatSync(t.fd).size;
    if (size <= t.offset) return;
    const buf = Buffer.allocUnsafe(size - t.offset);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(t.fd, buf, got, buf.length - got, t.offset + got);
      if (n === 0) break;
      got += n;
    }
    t.offset += got;
    const text = t.partial + buf.subarray(0, got).toString("utf8");
    const cut = text.lastIndexOf("\n");
    t.partial = text.slice(cut + 1);
    for (const l of parseLines(text.slice(0, cut + 1))) this.add(l, t);
  }

  private add(l: Line, t: Tail): void {
    const id = l.s ?? l.r;
    if (!id) {
      // Given back without a result: this worker no longer has it.
      if (l.x) {
        const e = t.entries.get(l.x);
        if (e) e.workers = e.workers.filter((w) => w !== t.worker);
      }
      return;
    }
    let e = t.entries.get(id);
    if (!e) t.entries.set(id, (e = { workers: [] }));
    if (l.s) {
      e.workers.push(t.worker);
      return;
    }
    if (l.k === "o") e.result = { kind: "succeeded", outputs: (l.v ?? null) as Json };
    else if (l.k === "e") e.result = { kind: "failed", error: l.v as ErrorDocument };
    else if (l.k === "f") {
      const stored = readResult(path.join(this.rootDir, l.p));
      if (stored) e.result = stored;
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
