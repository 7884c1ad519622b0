import { TernError } from "@tern/core";
import { describe, expect, it } from "vitest";
import { DEFAULT_DOMAINS, migrations, openDatabase, Store, sqlitePath } from "../src/store/index.js";
import { BACKENDS, useStores } from "./helpers/store.js";

describe("openDatabase", () => {
  it("reads SQLite URLs in every accepted spelling", () => {
    expect(sqlitePath("sqlite:.tern/tern.db")).toBe(".tern/tern.db");
    expect(sqlitePath("sqlite:///var/lib/tern.db")).toBe("/var/lib/tern.db");
    expect(sqlitePath("/var/lib/tern.db")).toBe("/var/lib/tern.db");
    expect(sqlitePath("file:///var/lib/t%20n.db")).toBe("/var/lib/t n.db");
    expect(sqlitePath(":memory:")).toBe(":memory:");
  });

  it("refuses an unknown scheme with a config error that masks the password", async () => {
    const err = await openDatabase("mysql://root:hunter2@db/tern").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TernError);
    expect((err as TernError).code).toBe("TERN_E_CONFIG");
    expect((err as TernError).message).toContain("mysql:");
    expect((err as TernError).message).not.toContain("hunter2");
  });

  it("opens SQLite with WAL, synchronous=NORMAL, busy_timeout and foreign keys", async () => {
    const store = await Store.open(":memory:");
    try {
      // In-memory databases cannot use WAL; check the other pragmas there and WAL on a file below.
      const { sql } = await import("kysely");
      const fk = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(store.ctx.db);
      expect(fk.rows[0].foreign_keys).toBe(1);
      const bt = await sql<{ timeout: number }>`pragma busy_timeout`.execute(store.ctx.db);
      expect(bt.rows[0].timeout).toBe(5000);
    } finally {
      await store.close();
    }
  });
});

describe.each(BACKENDS)("migrations on %s", (backend) => {
  const stores = useStores(backend);

  it("create the schema once and are idempotent", async () => {
    const url = await stores.freshUrl({ empty: true });
    const first = await stores.open({ url, migrate: false });
    expect((await first.migrate()).applied).toEqual(Object.keys(migrations));
    expect(Object.keys(migrations)).toEqual([
      "0001_initial",
      "0002_notification_outbox",
      "0003_execution_specs",
    ]);
    expect((await first.migrate()).applied).toEqual([]);
    expect(await first.projects.domains()).toEqual([...DEFAULT_DOMAINS]);
    // A second process opening the same database finds nothing to do.
    const second = await stores.open({ url });
    expect((await second.migrate()).applied).toEqual([]);
    expect(await second.catalog.sizeBytes()).toBe(0);
  });

  it("let two replicas migrate the same empty database at once", async () => {
    const url = await stores.freshUrl({ empty: true });
    const [a, b] = await Promise.all([
      stores.open({ url, migrate: false }),
      stores.open({ url, migrate: false }),
    ]);
    const reports = await Promise.all([a.migrate(), b.migrate()]);
    // One replica applies every migration, the other none (the lock serializes them).
    expect(reports.map((r) => r.applied.length).sort()).toEqual([0, Object.keys(migrations).length]);
    expect(await b.projects.domains()).toEqual([...DEFAULT_DOMAINS]);
  });

  if (backend === "postgres") {
    it("survives the server dropping a connection between two statements of a transaction", async () => {
      const { sql } = await import("kysely");
      const store = await stores.open();
      const err = await store.ctx.db
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          await sql`select pg_terminate_backend(${rows[0].pid})`.execute(store.ctx.db);
          // The FATAL arrives while no query is running on that connection: pg emits 'error' on it.
          await new Promise((r) => setTimeout(r, 200));
          await trx.selectFrom("projects").selectAll().execute();
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      // The broken connection left the pool; the store carries on.
      await store.projects.create("after-drop");
      expect((await store.projects.list()).map((p) => p.name)).toEqual(["after-drop"]);
    });
  }

  it(`reports the dialect (${backend})`, async () => {
    const url = await stores.freshUrl();
    const store = await stores.open({ url });
    expect(store.dialect).toBe(backend);
    if (backend === "sqlite") {
      const { sql } = await import("kysely");
      const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.ctx.db);
      expect(mode.rows[0].journal_mode).toBe("wal");
      const sync = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.ctx.db);
      expect(sync.rows[0].synchronous).toBe(1); // NORMAL
    } else {
      const password = new URL(url).password;
      expect(store.database.location).toMatch(/^postgres(ql)?:\/\//);
      if (password) {
        expect(store.database.location).toContain(":***@");
        expect(store.database.location).not.toContain(password);
      }
    }
  });
});
