/**
 * `startServer()`: the control plane in one process — store, blob storage,
 * executor, scheduler (with launch plan notifications) and the HTTP API. With no options it is the embedded sandbox of a
 * fresh clone: SQLite at `.tern/tern.db`, blobs in `.tern/blobs`, the
 * worker-process backend, on 127.0.0.1:8080, open without tokens.
 *
 * Binding any address other than loopback without tokens is refused: anyone
 * who reached the port could run code on the machine.
 *
 * @example
 * const server = await startServer({ port: 0 });
 * console.log(server.url); // http://127.0.0.1:40123
 * await server.close();
 */
import * as path from "node:path";
import { type BlobStore, DEFAULT_PROJECT, ErrorCodes, TernError } from "@tern/core";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import pino from "pino";
import type { BuildAppOptions } from "./api/app.js";
import { CompiledWorkflows } from "./api/compiled.js";
import type { ApiContext } from "./api/context.js";
import { Scopes } from "./api/scopes.js";
import { Authorizer } from "./auth/authorize.js";
import { loadTokensFile, TokenRegistry, type TokenSpec } from "./auth/tokens.js";
import { openBlobStore } from "./blob/index.js";
import { checkServerConfig, loadServerConfig, type ServerConfig } from "./config.js";
import { Executor, type ExecutorOptions } from "./executor/executor.js";
import type { ExecutorLogger } from "./executor/logger.js";
import { Notifier } from "./scheduler/notifier.js";
import type { Scheduler } from "./scheduler/scheduler.js";
import { Store } from "./store/store.js";

export interface ServeOptions {
  /** Address to bind. @default "127.0.0.1" */
  host?: string;
  /** Port; 0 picks a free one. @default 8080 */
  port?: number;
  /** Where the sandbox keeps its database and blobs. @default "<workDir>/.tern" */
  dataDir?: string;
  /** `sqlite` (the file `<dataDir>/tern.db`), `sqlite:<path>`, or `postgres://…`. @default "sqlite" */
  db?: string;
  /** Blob storage: a directory or `s3://bucket/prefix`. @default "<dataDir>/blobs" */
  storage?: string;
  /** `tern.config.ts` to load, or the config itself. */
  config?: string | ServerConfig;
  /** A JSON file of tokens (added to the config's). */
  tokensFile?: string;
  /** Tokens given directly (added to the others). */
  tokens?: TokenSpec[];
  /** Project directory: code bundles are materialized under its `.tern/bundles`. @default process.cwd() */
  workDir?: string;
  /** Backend for TypeScript tasks. @default config's, else "process" */
  backend?: string;
  /** Worker processes of the process backend. */
  workers?: number;
  /** A pino logger, `false` for none, or options for the default JSON logger. @default info to stdout */
  logger?: FastifyBaseLogger | false | LoggerOptions;
  /** Largest request body. @default 8 MiB */
  bodyLimit?: number;
  /** Largest `POST /register` body (bundles are base64 in it). @default 64 MiB */
  registerBodyLimit?: number;
  /** Heartbeat comments on idle watch streams. @default 15000 ms */
  heartbeatMs?: number;
  /**
   * How often watch streams read the store for events written elsewhere (and waiting create
   * requests for the end of executions driven elsewhere). @default 1000 ms
   */
  watchPollMs?: number;
  /** Executor tuning (lease TTL, claim interval, replica name, concurrency). */
  executor?: Pick<ExecutorOptions, "owner" | "leaseTtlMs" | "claimIntervalMs" | "maxExecutions">;
  /** Claim and run executions (false: an API-only replica). @default true */
  runExecutor?: boolean;
  /** Fire scheduled launch plans and send their notifications. @default runExecutor */
  runScheduler?: boolean;
  /** Time between scheduler rounds. @default 1000 ms */
  schedulerIntervalMs?: number;
  /** Projects to create at start-up, besides "default". */
  projects?: string[];
  /** Shown in the OpenAPI document. */
  version?: string;
}

export interface LoggerOptions {
  /** @default "info" */
  level?: string;
  /** Where JSON lines go. @default stdout */
  destination?: NodeJS.WritableStream;
}

/** A server built but not listening: what `inject()` tests use. */
export interface ControlPlane {
  app: FastifyInstance;
  ctx: ApiContext;
  store: Store;
  executor: Executor;
  /** Present when the plane runs schedules (`runScheduler`). */
  scheduler?: Scheduler;
  blobs: BlobStore;
  /** Stop the API, the executor (leases are given back) and the store. */
  close(): Promise<void>;
}

export interface RunningServer extends ControlPlane {
  /** `http://host:port` of the API. */
  url: string;
}

/** Header and field paths never written to logs. */
export const REDACTED_LOG_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['x-tern-token']",
  "headers.authorization",
  "authorization",
  "token",
  "tokens",
  "*.token",
  "*.tokenSha256",
];

/** The server's JSON logger: pino with secrets redacted. */
export function createLogger(opts: LoggerOptions = {}): FastifyBaseLogger {
  return pino(
    {
      level: opts.level ?? "info",
      redact: { paths: REDACTED_LOG_PATHS, censor: "[redacted]" },
      base: { service: "tern-server" },
    },
    (opts.destination ?? process.stdout) as pino.DestinationStream,
  ) as unknown as FastifyBaseLogger;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return (
    h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === "::ffff:127.0.0.1"
  );
}

function resolveDb(db: string | undefined, dataDir: string): string {
  if (!db || db === "sqlite") return `sqlite:${path.join(dataDir, "tern.db")}`;
  return db;
}

/** Build the control plane without listening (tests drive it with `app.inject()`). */
export async function createControlPlane(opts: ServeOptions = {}): Promise<ControlPlane> {
  const host = opts.host ?? "127.0.0.1";
  const workDir = path.resolve(opts.workDir ?? process.cwd());
  const dataDir = path.resolve(workDir, opts.dataDir ?? ".tern");
  const config =
    typeof opts.config === "string"
      ? await loadServerConfig(opts.config)
      : opts.config
        ? checkServerConfig(opts.config)
        : {};
  const tokens = [
    ...(config.tokens ?? []),
    ...(opts.tokensFile ? loadTokensFile(opts.tokensFile) : []),
    ...(opts.tokens ?? []),
  ];
  const registry = new TokenRegistry(tokens);
  if (!isLoopback(host) && registry.size === 0) {
    throw new TernError(
      ErrorCodes.CONFIG,
      `refusing to listen on ${host} without tokens: anyone who reaches it could run code on this machine`,
      {
        hint: "configure tokens (tokens: [...] in tern.config.ts, or --tokens tokens.json), or bind 127.0.0.1",
        details: { host },
      },
    );
  }
  const logger =
    opts.logger === false
      ? false
      : opts.logger && "info" in opts.logger
        ? (opts.logger as FastifyBaseLogger)
        : createLogger(opts.logger as LoggerOptions | undefined);

  const store = await Store.open(resolveDb(opts.db, dataDir));
  let executor: Executor | undefined;
  try {
    const blobs = openBlobStore(opts.storage ?? path.join(dataDir, "blobs"));
    executor = await Executor.create({
      store,
      workDir,
      blobs,
      backend: opts.backend ?? config.backend ?? "process",
      plugins: config.plugins,
      backendConfig: config.backendConfig,
      workers: opts.workers ?? config.workers,
      // Left to the executor by default: its name (host, pid, start time) lets a restarted
      // server on the same host take over at once instead of waiting out the lease.
      ...(opts.executor?.owner ? { owner: opts.executor.owner } : {}),
      ...(logger ? { logger: logger.child({ component: "executor" }) as unknown as ExecutorLogger } : {}),
      ...(opts.executor?.leaseTtlMs ? { leaseTtlMs: opts.executor.leaseTtlMs } : {}),
      ...(opts.executor?.claimIntervalMs ? { claimIntervalMs: opts.executor.claimIntervalMs } : {}),
      ...(opts.executor?.maxExecutions ? { maxExecutions: opts.executor.maxExecutions } : {}),
    });
    const exec = executor;
    const runScheduler = opts.runScheduler ?? opts.runExecutor !== false;
    const schedulerLogger = logger
      ? (logger.child({ component: "scheduler" }) as unknown as ExecutorLogger)
      : undefined;
    // Listening before any execution can end here.
    const notifier = runScheduler
      ? new Notifier({
          store,
          source: exec,
          owner: `notifier-${exec.owner}`,
          ...(schedulerLogger ? { logger: schedulerLogger } : {}),
        })
      : undefined;
    // Stored work resumes first: a restarted server re-attaches to its executions, and only
    // once their work is under way again (or after 2 s) loads the API (fastify, OpenAPI,
    // metrics) and the scheduler, whose module loading would hold the resume up.
    if (opts.runExecutor !== false) {
      exec.start();
      await exec.resumed();
    }
    const [{ buildApp }, { Metrics }, { Scheduler }] = await Promise.all([
      import("./api/app.js"),
      import("./metrics.js"),
      import("./scheduler/scheduler.js"),
    ]);
    const metrics = new Metrics({ store });
    metrics.instrument(store);
    const scopes = new Scopes(store);
    await scopes.ensureProject(DEFAULT_PROJECT);
    for (const p of [...(config.projects ?? []), ...(opts.projects ?? [])]) {
      if (typeof p === "string") await scopes.ensureProject(p);
      else await scopes.ensureProject(p.name, p.description);
    }
    const ctx: ApiContext = {
      store,
      executor,
      blobs,
      auth: new Authorizer(registry),
      metrics,
      compiled: new CompiledWorkflows(store, blobs),
      scopes,
      remoteInputsOnly: registry.size > 0,
      streams: new Set(),
      heartbeatMs: opts.heartbeatMs ?? 15_000,
      watchPollMs: opts.watchPollMs ?? 1000,
      registerBodyLimit: opts.registerBodyLimit ?? 64 * 1024 * 1024,
    };
    const appOpts: BuildAppOptions = { logger, bodyLimit: opts.bodyLimit, version: opts.version };
    const app = await buildApp(ctx, appOpts).catch(async (e) => {
      await notifier?.close().catch(() => undefined);
      throw e;
    });
    let scheduler: Scheduler | undefined;
    if (runScheduler) {
      scheduler = new Scheduler({
        store,
        launcher: exec,
        resolveWorkflow: (id) => ctx.compiled.get(id),
        ...(opts.schedulerIntervalMs ? { intervalMs: opts.schedulerIntervalMs } : {}),
        ...(schedulerLogger ? { logger: schedulerLogger } : {}),
      });
      scheduler.start();
    }
    let closing: Promise<void> | undefined;
    return {
      app,
      ctx,
      store,
      executor: exec,
      ...(scheduler ? { scheduler } : {}),
      blobs,
      close: () =>
        (closing ??= (async () => {
          await app.close().catch(() => undefined);
          await scheduler?.close().catch(() => undefined);
          await notifier?.close().catch(() => undefined);
          await exec.close().catch(() => undefined);
          await store.close();
        })()),
    };
  } catch (e) {
    await executor?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw e;
  }
}

/** Start the control plane and listen. */
export async function startServer(opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? "127.0.0.1";
  const plane = await createControlPlane(opts);
  try {
    await plane.app.listen({ host, port: opts.port ?? 8080 });
  } catch (e) {
    await plane.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "EADDRINUSE" || err.code === "EACCES" || err.code === "EADDRNOTAVAIL") {
      throw new TernError(ErrorCodes.CONFIG, `cannot listen on ${host}:${opts.port ?? 8080}: ${err.code}`, {
        hint:
          err.code === "EADDRINUSE"
            ? "another server uses that port: pick another with --port (0 picks a free one)"
            : "check the address and port",
      });
    }
    throw e;
  }
  const addr = plane.app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 8080);
  const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return { ...plane, url: `http://${shown}:${port}` };
}
