/**
 * A Kysely dialect for better-sqlite3, tuned for the store. It differs from
 * Kysely's own `SqliteDialect` in three ways:
 *
 * - transactions start with `BEGIN IMMEDIATE`, so a read-then-write
 *   transaction takes the write lock up front and never fails half-way with
 *   `SQLITE_BUSY` when another connection wrote in between;
 * - every connection to the same file in this process shares one mutex:
 *   better-sqlite3 blocks the event loop while it waits for a lock, so two
 *   connections of one process waiting on each other would deadlock until
 *   `busy_timeout`; other processes still wait through `busy_timeout`;
 * - prepared statements are cached by SQL text.
 */
import type BetterSqlite3 from "better-sqlite3";
import type {
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  QueryCompiler,
  QueryResult,
} from "kysely";
import { CompiledQuery, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from "./kysely.js";

/** A FIFO lock: `run` waits for every earlier holder to finish. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    return release;
  }
}

const fileLocks = new Map<string, { mutex: Mutex; users: number }>();

function fileLock(key: string): Mutex {
  let entry = fileLocks.get(key);
  if (!entry) {
    entry = { mutex: new Mutex(), users: 0 };
    fileLocks.set(key, entry);
  }
  entry.users++;
  return entry.mutex;
}

function dropFileLock(key: string): void {
  const entry = fileLocks.get(key);
  if (entry && --entry.users === 0) fileLocks.delete(key);
}

const STATEMENT_CACHE_SIZE = 256;

class SqliteConnection implements DatabaseConnection {
  private readonly statements = new Map<string, BetterSqlite3.Statement>();

  constructor(readonly db: BetterSqlite3.Database) {}

  private prepare(sql: string): BetterSqlite3.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        this.statements.delete(this.statements.keys().next().value as string);
      }
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const stmt = this.prepare(compiled.sql);
    const params = compiled.parameters as unknown[];
    if (stmt.reader) return { rows: stmt.all(params) as R[] };
    const { changes, lastInsertRowid } = stmt.run(params);
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
  }

  async *streamQuery<R>(compiled: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    // A fresh statement: a cached one may be iterated by another caller.
    const stmt = this.db.prepare(compiled.sql);
    for (const row of stmt.iterate(compiled.parameters as unknown[])) yield { rows: [row as R] };
  }
}

class SqliteDriver implements Driver {
  private readonly connection: SqliteConnection;
  private readonly mutex: Mutex;
  private readonly releases: (() => void)[] = [];

  constructor(
    db: BetterSqlite3.Database,
    private readonly lockKey: string,
  ) {
    this.connection = new SqliteConnection(db);
    this.mutex = fileLock(lockKey);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    this.releases.push(await this.mutex.lock());
    return this.connection;
  }

  async releaseConnection(): Promise<void> {
    this.releases.shift()?.();
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("commit"));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }

  async destroy(): Promise<void> {
    dropFileLock(this.lockKey);
    this.connection.db.close();
  }
}

/**
 * The store's SQLite dialect over an open better-sqlite3 handle.
 * `lockKey` names the file (its resolved path): connections sharing it serialize.
 */
export class StoreSqliteDialect implements Dialect {
  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly lockKey: string,
  ) {}

  createDriver(): Driver {
    return new SqliteDriver(this.db, this.lockKey);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}
