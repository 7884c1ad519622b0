/**
 * The catalog: cached task outputs. Key = hash(project, domain, task name, cache
 * version, interface, canonical inputs minus ignored ones). Each entry records
 * which execution produced it (lineage). A catalog can be listed, evicted and
 * bounded in size.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sha256 } from "./hash.js";
import { canonicalJson, type Json } from "./json.js";
import type { TaskSpec } from "./spec.js";
import { tmpPath } from "./tmp-path.js";

export interface CacheProducer {
  execution: string;
  node: string;
  attempt: number;
}

export interface CatalogEntry {
  key: string;
  project: string;
  domain: string;
  task: string;
  cacheVersion: string;
  /** Outputs as a literal (by-reference values are URIs). */
  outputs: Json;
  producer: CacheProducer;
  createdAt: number;
  /** Size of the stored entry, counted against the catalog's bound. */
  sizeBytes: number;
}

export interface CatalogFilter {
  task?: string;
  project?: string;
  domain?: string;
}

export interface Catalog {
  get(key: string): Promise<CatalogEntry | undefined>;
  put(entry: Omit<CatalogEntry, "sizeBytes" | "createdAt">): Promise<CatalogEntry>;
  list(filter?: CatalogFilter): Promise<CatalogEntry[]>;
  /** Remove entries; returns how many. */
  evict(filter?: CatalogFilter & { key?: string }): Promise<number>;
  /**
   * Take the lease that lets one caller compute `key` while identical calls wait
   * (`cache.serialize`). True when taken; a lease older than `ttlMs` is taken over.
   */
  acquire?(key: string, owner: string, ttlMs: number): Promise<boolean>;
  release?(key: string, owner: string): Promise<void>;
  close?(): Promise<void>;
}

const interfaceHashes = new WeakMap<object, string>();

/** The cache key of a task call. */
export function cacheKey(
  task: TaskSpec,
  version: string,
  ignore: readonly string[],
  inputs: Record<string, unknown>,
): string {
  let ih = interfaceHashes.get(task.interface);
  if (!ih) {
    ih = sha256(canonicalJson(task.interface));
    interfaceHashes.set(task.interface, ih);
  }
  let kept: Record<string, unknown> = inputs;
  if (ignore.length) {
    kept = {};
    for (const k of Object.keys(inputs)) if (!ignore.includes(k)) kept[k] = inputs[k];
  }
  return sha256(
    `${task.id.project}\n${task.id.domain}\n${task.id.name}\n${version}\n${ih}\n${canonicalJson(keyForm(kept))}`,
  );
}

const CAS_DIGEST = /\/cas\/[0-9a-f]{2}\/([0-9a-f]{64})/;

/**
 * What of a value goes into a cache key: by-reference values count by their
 * content digest (so the same bytes under another path or in another checkout hit,
 * and edited bytes miss), other values as they are.
 */
function keyForm(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(keyForm);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$tern === "string" && o.$tern !== "literal") {
      const uri = typeof o.uri === "string" ? o.uri : undefined;
      const digest = uri ? CAS_DIGEST.exec(uri)?.[1] : undefined;
      return { $tern: o.$tern, content: digest ?? uri ?? o.path ?? null, format: o.format ?? null };
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o)) out[k] = keyForm(o[k]);
    return out;
  }
  return v;
}

/** Literal form of a value: by-reference values keep their URI, never a machine-local path. */
export function stripLocal(v: unknown): unknown {
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = stripLocal(v[i]);
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$tern === "string" && ("path" in o || "rows" in o) && o.uri) {
      const { path: _p, rows: _r, ...rest } = o;
      return rest;
    }
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(o)) {
      const x = stripLocal(o[k]);
      if (x !== o[k]) (out ??= { ...o })[k] = x;
    }
    return out ?? v;
  }
  return v;
}

function matches(e: CatalogEntry, f: CatalogFilter & { key?: string }): boolean {
  return (
    (f.key === undefined || e.key === f.key) &&
    (f.task === undefined || e.task === f.task) &&
    (f.project === undefined || e.project === f.project) &&
    (f.domain === undefined || e.domain === f.domain)
  );
}

/** A catalog that lives as long as its process. */
export class MemoryCatalog implements Catalog {
  protected readonly entries = new Map<string, CatalogEntry>();
  private readonly leases = new Map<string, { owner: string; at: number }>();

  async get(key: string): Promise<CatalogEntry | undefined> {
    const e = this.entries.get(key);
    if (e) {
      // Re-insert: Map order doubles as least-recently-used order.
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  async put(entry: Omit<CatalogEntry, "sizeBytes" | "createdAt">): Promise<CatalogEntry> {
    const full: CatalogEntry = { ...entry, createdAt: Date.now(), sizeBytes: 0 };
    full.sizeBytes = Buffer.byteLength(JSON.stringify(full));
    this.entries.delete(full.key);
    this.entries.set(full.key, full);
    return full;
  }

  async list(filter: CatalogFilter = {}): Promise<CatalogEntry[]> {
    return [...this.entries.values()].filter((e) => matches(e, filter));
  }

  async evict(filter: CatalogFilter & { key?: string } = {}): Promise<number> {
    let n = 0;
    for (const e of [...this.entries.values()]) {
      if (matches(e, filter)) {
        this.entries.delete(e.key);
        n++;
      }
    }
    return n;
  }

  async acquire(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const l = this.leases.get(key);
    if (l && l.owner !== owner && Date.now() - l.at < ttlMs) return false;
    this.leases.set(key, { owner, at: Date.now() });
    return true;
  }

  async release(key: string, owner: string): Promise<void> {
    if (this.leases.get(key)?.owner === owner) this.leases.delete(key);
  }
}

export interface DiskCatalogOptions {
  /** Largest total size of entries; least recently used ones go first. @default 1 GiB */
  maxBytes?: number;
}

type LogRecord = { op: "put"; entry: CatalogEntry } | { op: "del"; key: string } | { op: "use"; key: string };

/**
 * The local catalog under `.tern/cache`: an append-only log replayed into memory
 * at open, so a hit costs no I/O. Entries are bounded by `maxBytes` (least
 * recently used first); the log is compacted when it grows past twice the live data.
 * Leases are lock files, so two local processes serialize too; a miss first reads what
 * other processes appended to the log since, so the waiting one sees the value.
 */
export class DiskCatalog extends MemoryCatalog {
  private readonly logPath: string;
  private readonly leaseDir: string;
  private readonly maxBytes: number;
  private totalBytes = 0;
  private logBytes = 0;
  /** Bytes of the log file applied to memory (complete lines only). */
  private readOffset = 0;
  /** Inode of the log file read: another process's compaction replaces it. */
  private logIno = 0;
  /** The log ends in a torn line (a crash mid-write): the next record starts on a new line. */
  private needsNewline = false;
  private fd: number;

  constructor(
    readonly dir: string,
    opts: DiskCatalogOptions = {},
  ) {
    super();
    this.maxBytes = opts.maxBytes ?? 1024 ** 3;
    fs.mkdirSync(dir, { recursive: true });
    this.logPath = path.join(dir, "catalog.ndjson");
    this.leaseDir = path.join(dir, "leases");
    this.replay();
    this.fd = fs.openSync(this.logPath, "a");
    this.logIno = fs.fstatSync(this.fd).ino;
  }

  private replay(): void {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(this.logPath);
      this.logIno = fs.statSync(this.logPath).ino;
    } catch {
      return;
    }
    this.logBytes = buf.length;
    this.needsNewline = buf.length > 0 && buf[buf.length - 1] !== 0x0a;
    this.readOffset = this.apply(buf);
  }

  /** Apply the complete lines of a piece of the log; returns the bytes consumed. */
  private apply(buf: Buffer): number {
    const end = buf.lastIndexOf(0x0a) + 1;
    for (const line of buf.subarray(0, end).toString("utf8").split("\n")) {
      if (!line) continue;
      let r: LogRecord;
      try {
        r = JSON.parse(line) as LogRecord;
      } catch {
        continue; // a torn last line after a crash: the entry was never acknowledged
      }
      if (r.op === "put") {
        const old = this.entries.get(r.entry.key);
        if (old) this.totalBytes -= old.sizeBytes;
        this.entries.delete(r.entry.key);
        this.entries.set(r.entry.key, r.entry);
        this.totalBytes += r.entry.sizeBytes;
      } else if (r.op === "del") {
        const old = this.entries.get(r.key);
        if (old) this.totalBytes -= old.sizeBytes;
        this.entries.delete(r.key);
      } else if (r.op === "use") {
        const e = this.entries.get(r.key);
        if (e) {
          this.entries.delete(r.key);
          this.entries.set(r.key, e);
        }
      }
    }
    return end;
  }

  /**
   * Catch up with records other processes appended (re-applying our own is harmless).
   * True when the log had anything new.
   */
  private refresh(): boolean {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.logPath);
    } catch {
      return false;
    }
    if (st.ino === this.logIno && st.size === this.readOffset) return false;
    if (st.ino !== this.logIno || st.size < this.readOffset) {
      // Another process compacted the log into a new file: read it afresh.
      this.entries.clear();
      this.totalBytes = 0;
      fs.closeSync(this.fd);
      this.replay();
      this.fd = fs.openSync(this.logPath, "a");
      this.logIno = fs.fstatSync(this.fd).ino;
      return true;
    }
    const fd = fs.openSync(this.logPath, "r");
    try {
      const buf = Buffer.alloc(st.size - this.readOffset);
      const n = fs.readSync(fd, buf, 0, buf.length, this.readOffset);
      this.readOffset += this.apply(buf.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }

  private append(records: LogRecord[]): void {
    const text = `${this.needsNewline ? "\n" : ""}${records.map((r) => JSON.stringify(r)).join("\n")}\n`;
    this.needsNewline = false;
    fs.writeSync(this.fd, text);
    this.logBytes += Buffer.byteLength(text);
  }

  override async get(key: string): Promise<CatalogEntry | undefined> {
    let e = await super.get(key);
    if (!e && this.refresh()) e = await super.get(key);
    if (e && this.entries.size > 1) this.pendingUses.add(key);
    return e;
  }

  private pendingUses = new Set<string>();

  override async put(entry: Omit<CatalogEntry, "sizeBytes" | "createdAt">): Promise<CatalogEntry> {
    const old = this.entries.get(entry.key);
    const full = await super.put(entry);
    this.totalBytes += full.sizeBytes - (old?.sizeBytes ?? 0);
    const records: LogRecord[] = [...this.flushUses(), { op: "put", entry: full }];
    for (const victim of this.entries.values()) {
      if (this.totalBytes <= this.maxBytes || victim.key === full.key) break;
      this.entries.delete(victim.key);
      this.totalBytes -= victim.sizeBytes;
      records.push({ op: "del", key: victim.key });
    }
    this.append(records);
    this.maybeCompact();
    return full;
  }

  private flushUses(): LogRecord[] {
    const out: LogRecord[] = [...this.pendingUses]
      .filter((k) => this.entries.has(k))
      .map((key) => ({ op: "use", key }));
    this.pendingUses.clear();
    return out;
  }

  override async evict(filter: CatalogFilter & { key?: string } = {}): Promise<number> {
    const victims = (await this.list(filter)).map((e) => e.key);
    for (const k of victims) {
      this.totalBytes -= this.entries.get(k)?.sizeBytes ?? 0;
      this.entries.delete(k);
    }
    if (victims.length) this.append(victims.map((key) => ({ op: "del", key })));
    this.maybeCompact();
    return victims.length;
  }

  /** Total size of live entries. */
  get sizeBytes(): number {
    return this.totalBytes;
  }

  private maybeCompact(): void {
    if (this.logBytes < 64 * 1024 || this.logBytes < 2 * this.totalBytes) return;
    const tmp = tmpPath(this.logPath);
    const text = [...this.entries.values()].map((entry) => JSON.stringify({ op: "put", entry })).join("\n");
    fs.writeFileSync(tmp, text ? `${text}\n` : "");
    fs.closeSync(this.fd);
    fs.renameSync(tmp, this.logPath);
    this.fd = fs.openSync(this.logPath, "a");
    this.logBytes = Buffer.byteLength(text) + (text ? 1 : 0);
    this.logIno = fs.fstatSync(this.fd).ino;
    this.readOffset = this.logBytes;
    this.needsNewline = false;
  }

  override async acquire(key: string, owner: string, ttlMs: number): Promise<boolean> {
    fs.mkdirSync(this.leaseDir, { recursive: true });
    const p = path.join(this.leaseDir, `${key}.lock`);
    const body = JSON.stringify({ owner, at: Date.now() });
    try {
      fs.writeFileSync(p, body, { flag: "wx" });
      return true;
    } catch {
      try {
        const cur = JSON.parse(fs.readFileSync(p, "utf8")) as { owner: string; at: number };
        if (cur.owner === owner) return true;
        if (Date.now() - cur.at >= ttlMs) {
          fs.writeFileSync(p, body);
          return true;
        }
      } catch {
        // Lease file vanished between the two calls: try once more next round.
      }
      return false;
    }
  }

  override async release(key: string, owner: string): Promise<void> {
    const p = path.join(this.leaseDir, `${key}.lock`);
    try {
      const cur = JSON.parse(fs.readFileSync(p, "utf8")) as { owner: string };
      if (cur.owner === owner) fs.rmSync(p, { force: true });
    } catch {
      // already gone
    }
  }

  async close(): Promise<void> {
    const uses = this.flushUses();
    if (uses.length) this.append(uses);
    fs.closeSync(this.fd);
  }
}
