/**
 * The durable store of the control plane: one object over one database,
 * exposing a repository per concern. Every method is async and safe to call
 * from several executor replicas sharing one PostgreSQL.
 */
import { SqlCatalog, type SqlCatalogOptions } from "./catalog.js";
import type { StoreContext } from "./codec.js";
import { type DialectName, type OpenDatabase, type OpenDatabaseOptions, openDatabase } from "./db.js";
import { type EventInput, EventRepository } from "./events.js";
import { type ExecutionRecord, ExecutionRepository } from "./executions.js";
import { type MigrationReport, migrateToLatest } from "./migrations.js";
import { NodeExecutionRepository } from "./nodes.js";
import { NotificationOutbox } from "./notifications.js";
import { ProjectRepository } from "./projects.js";
import { RegistryRepository } from "./registry.js";
import { ScheduleRepository } from "./schedules.js";
import { SignalRepository } from "./signals.js";

export interface StoreOptions extends OpenDatabaseOptions {
  /** Run migrations on open. @default true */
  migrate?: boolean;
  /** Epoch-ms clock for leases and timestamps. @default Date.now */
  now?: () => number;
  /** Catalog size bound and the like. */
  catalog?: SqlCatalogOptions;
}

/**
 * @example
 * const store = await Store.open("sqlite:.tern/tern.db");
 * await store.registry.register("task", taskSpec);
 * const mine = await store.claimExecutions("replica-a", 30_000, 10);
 * await store.close();
 */
export class Store {
  readonly registry: RegistryRepository;
  readonly projects: ProjectRepository;
  readonly executions: ExecutionRepository;
  readonly nodes: NodeExecutionRepository;
  readonly events: EventRepository;
  readonly catalog: SqlCatalog;
  readonly schedules: ScheduleRepository;
  readonly signals: SignalRepository;
  readonly notifications: NotificationOutbox;
  readonly ctx: StoreContext;

  constructor(
    readonly database: OpenDatabase,
    opts: Pick<StoreOptions, "now" | "catalog"> = {},
  ) {
    this.ctx = { db: database.db, dialect: database.dialect, now: opts.now ?? Date.now };
    this.registry = new RegistryRepository(this.ctx);
    this.projects = new ProjectRepository(this.ctx);
    this.executions = new ExecutionRepository(this.ctx);
    this.nodes = new NodeExecutionRepository(this.ctx);
    this.events = new EventRepository(this.ctx, this.executions);
    this.catalog = new SqlCatalog(this.ctx, opts.catalog);
    this.schedules = new ScheduleRepository(this.ctx);
    this.signals = new SignalRepository(this.ctx);
    this.notifications = new NotificationOutbox(this.ctx);
  }

  /** Open the database at `url` (see {@link openDatabase}) and bring its schema up to date. */
  static async open(url: string, opts: StoreOptions = {}): Promise<Store> {
    const database = await openDatabase(url, opts);
    const store = new Store(database, opts);
    if (opts.migrate !== false) {
      try {
        await store.migrate();
      } catch (e) {
        await store.close();
        throw e;
      }
    }
    return store;
  }

  get dialect(): DialectName {
    return this.database.dialect;
  }

  /** Apply pending migrations (idempotent). */
  migrate(): Promise<MigrationReport> {
    return migrateToLatest(this.database.db);
  }

  /** See {@link ExecutionRepository.claim}. */
  claimExecutions(owner: string, ttlMs: number, limit: number): Promise<ExecutionRecord[]> {
    return this.executions.claim(owner, ttlMs, limit);
  }

  /** See {@link ExecutionRepository.renewLeases}. */
  renewLeases(owner: string, ttlMs: number): Promise<string[]> {
    return this.executions.renewLeases(owner, ttlMs);
  }

  /** See {@link ExecutionRepository.release}. */
  releaseExecution(id: string, owner: string): Promise<boolean> {
    return this.executions.release(id, owner);
  }

  /** See {@link EventRepository.append}. */
  appendEvents(execution: string, events: readonly EventInput[]): Promise<void> {
    return this.events.append(execution, events);
  }

  /** See {@link EventRepository.list}. */
  listEvents(execution: string, afterSeq?: number, limit?: number) {
    return this.events.list(execution, afterSeq, limit);
  }

  /** See {@link ScheduleRepository.claimTick}. */
  claimTick(lp: { project: string; domain: string; name: string }, tickAt: number, executionId: string) {
    return this.schedules.claimTick(lp, tickAt, executionId);
  }

  async close(): Promise<void> {
    await this.database.close();
  }
}
