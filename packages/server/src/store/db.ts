/**
 * Opening the store's database from a URL: a SQLite file for the embedded
 * server, PostgreSQL for replicated production. Drivers load lazily, so a
 * SQLite deployment never loads `pg` and the other way round.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ErrorCodes, TernError } from "@tern/core";
import { Kysely, PostgresDialect } from "./kysely.js";
import type { Database } from "./schema.js";
import { StoreSqliteDialect } from "./sqlite-driver.js";

/** Which database a store runs on. */
export type DialectName = "sqlite" | "postgres";

export interface OpenDatabaseOptions {
  /** PostgreSQL pool size. @default 10 */
  poolSize?: number;
  /** How long SQLite waits for another process's write lock, in ms. @default 5000 */
  busyTimeoutMs?: number;
}

/** An open database: the Kysely instance plus what kind it is. */
export interface OpenDatabase {
  readonly db: Kysely<Database>;
  readonly dialect: DialectName;
  /** The URL with any password masked, for logs. */
  readonly location: string;
  close(): Promise<void>;
}

/**
 * Open a database by URL.
 *
 * - `postgres://user:pass@host:5432/db` (or `postgresql://`): a `pg` pool; int8
 *   columns come back as JS numbers.
 * - `sqlite:<path>`, `sqlite:///abs/path`, a plain file path, or `:memory:`:
 *   better-sqlite3 with WAL, `synchronous=NORMAL`, `busy_timeout` and foreign keys on.
 *
 * @example
 * const { db, dialect } = await openDatabase("sqlite:.tern/tern.db");
 */
export async function openDatabase(url: string, opts: OpenDatabaseOptions = {}): Promise<OpenDatabase> {
  if (/^postgres(ql)?:\/\//i.test(url)) return openPostgres(url, opts);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme && scheme.toLowerCase() !== "sqlite" && scheme.toLowerCase() !== "file") {
    throw new TernError(
      ErrorCodes.CONFIG,
      `unsupported database URL scheme "${scheme}:" in ${maskPassword(url)}`,
      {
        hint: "use sqlite:<path> for a local file or postgres://user:password@host:5432/database",
      },
    );
  }
  return openSqlite(sqlitePath(url), opts);
}

/** The file path a SQLite URL names. */
export function sqlitePath(url: string): string {
  if (url === ":memory:" || url === "sqlite::memory:") return ":memory:";
  if (url.startsWith("file://")) return decodeURIComponent(new URL(url).pathname);
  if (url.startsWith("sqlite://")) return decodeURIComponent(url.slice("sqlite://".length)) || ":memory:";
  if (url.startsWith("sqlite:")) return url.slice("sqlite:".length);
  return url;
}

function maskPassword(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, "$1***@");
}

async function openSqlite(file: string, opts: OpenDatabaseOptions): Promise<OpenDatabase> {
  const { default: BetterSqlite3 } = await import("better-sqlite3");
  const memory = file === ":memory:";
  const resolved = memory ? file : path.resolve(file);
  if (!memory) fs.mkdirSync(path.dirname(resolved), { recursive: true });
  let handle: InstanceType<typeof BetterSqlite3>;
  try {
    handle = new BetterSqlite3(resolved);
  } catch (e) {
    throw new TernError(
      ErrorCodes.CONFIG,
      `cannot open SQLite database ${resolved}: ${(e as Error).message}`,
      {
        hint: "check that the directory exists and is writable",
        cause: e,
      },
    );
  }
  handle.pragma("journal_mode = WAL");
  handle.pragma("synchronous = NORMAL");
  handle.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
  handle.pragma("foreign_keys = ON");
  const lockKey = memory ? `:memory:${Math.random()}` : resolved;
  const db = new Kysely<Database>({ dialect: new StoreSqliteDialect(handle, lockKey) });
  return { db, dialect: "sqlite", location: `sqlite:${resolved}`, close: () => db.destroy() };
}

const INT8_OID = 20;

async function openPostgres(url: string, opts: OpenDatabaseOptions): Promise<OpenDatabase> {
  const { default: pg } = await import("pg");
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    // Per pool, not the process-wide pg.types: epoch-ms and counts fit a double exactly.
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID && format !== "binary"
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
    },
  });
  // A connection the server drops (restart, failover, idle kill) must fail the query or
  // transaction using it, not crash the process: pg emits 'error' on idle clients (the
  // pool's listener) and on checked-out ones between queries (this listener). The pool
  // discards a broken client when it is released.
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: "postgres", location: maskPassword(url), close: () => db.destroy() };
}
