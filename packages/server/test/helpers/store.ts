/**
 * Store fixtures: the same tests run on SQLite (a temp file) and PostgreSQL
 * (see ./postgres.ts). Use inside `describe.each(BACKENDS)`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { DEFAULT_DOMAINS, Store, type StoreOptions } from "../../src/store/index.js";
import { startTestPostgres, type TestPostgres } from "./postgres.js";

export type Backend = "sqlite" | "postgres";

/** For `describe.each`: one row per database. */
export const BACKENDS: [Backend][] = [["sqlite"], ["postgres"]];

/** A clock tests move by hand, so leases expire without sleeping. */
export class FakeClock {
  constructor(public t = 1_700_000_000_000) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface StoreFixture {
  /**
   * A URL naming a fresh database: migrated and holding only the seed rows, or
   * `empty` (no tables) for tests of the migrations. On PostgreSQL the migrated
   * one is a single database per file, emptied again on each call (creating a
   * database costs ~0.4 s there, emptying one a few ms).
   */
  freshUrl(opts?: { empty?: boolean }): Promise<string>;
  /** Open a store (migrated) on `url`, or on a fresh database; closed after the test. */
  open(opts?: StoreOptions & { url?: string }): Promise<Store>;
}

/** Empty every table, then restore the rows the migrations seed. */
function resetStatements(): string[] {
  const data = [
    "signals",
    "schedule_ticks",
    "catalog_leases",
    "catalog_entries",
    "events",
    "node_executions",
    "notification_outbox",
    "executions",
    "execution_specs",
    "launch_plans",
    "workflows",
    "tasks",
    "projects",
    "domains",
  ];
  // DELETE, not TRUNCATE: on tables this small it is several times faster.
  return [
    ...data.map((t) => `DELETE FROM ${t}`),
    `INSERT INTO domains (name, position) VALUES ${DEFAULT_DOMAINS.map((d, i) => `('${d}', ${i})`).join(", ")}`,
    "UPDATE catalog_stats SET total_bytes = 0",
  ];
}

/** Register the hooks for one backend and return the fixture. */
export function useStores(backend: Backend): StoreFixture {
  let pg: TestPostgres | undefined;
  let tmp: string | undefined;
  let n = 0;
  let shared: Promise<string> | undefined;
  const open: Store[] = [];

  // Kept, not thrown from beforeAll: vitest would report the tests as skipped.
  // Each PostgreSQL test fails with the reason and how to provide PostgreSQL instead.
  let pgError: Error | undefined;

  beforeAll(async () => {
    if (backend === "postgres") {
      try {
        pg = await startTestPostgres();
      } catch (e) {
        pgError = e as Error;
      }
    } else tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tern-store-"));
  }, 120_000);

  afterEach(async () => {
    const stores = open.splice(0);
    await Promise.all(stores.map((s) => s.close()));
  });

  afterAll(async () => {
    await pg?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const fixture: StoreFixture = {
    async freshUrl(opts = {}) {
      if (backend === "postgres") {
        const server = pg;
        if (!server) throw pgError ?? new Error("PostgreSQL did not start");
        if (opts.empty) return server.createDatabase();
        shared ??= server.createDatabase().then(async (url) => {
          await (await Store.open(url)).close();
          return url;
        });
        const url = await shared;
        await server.exec(url, resetStatements());
        return url;
      }
      return `sqlite:${path.join(tmp!, `store-${n++}.db`)}`;
    },
    async open(opts = {}) {
      const { url, ...rest } = opts;
      const store = await Store.open(url ?? (await fixture.freshUrl()), rest);
      open.push(store);
      return store;
    },
  };
  return fixture;
}
