/**
 * `tern serve`: the control plane (API, executor) in this process, until
 * Ctrl-C. With no flags: the embedded sandbox on 127.0.0.1:8080 with SQLite and
 * blobs under `.tern/`, and `./tern.config.ts` loaded when it exists.
 *
 * The banner (URL, console, docs) goes to stderr; stdout carries the
 * server's JSON log lines.
 */
import * as fs from "node:fs";
import { EXIT_FAILED, EXIT_OK } from "../errors.js";
import type { Io } from "../io.js";

export interface ServeFlags {
  host: string;
  port: number;
  dataDir: string;
  db?: string;
  storage?: string;
  config?: string;
  tokens?: string;
  backend?: string;
  workers?: number;
  logLevel: string;
  version?: string;
}

/** Start the server; resolves (to the exit status) once it has shut down after SIGINT/SIGTERM. */
export async function serveCommand(flags: ServeFlags, io: Io): Promise<number> {
  const { startServer, createLogger } = await import("@tern/server/serve");
  let config = flags.config;
  if (config === undefined) {
    for (const name of ["tern.config.ts", "tern.config.mjs", "tern.config.js"]) {
      if (fs.existsSync(name)) {
        config = name;
        break;
      }
    }
  }
  const server = await startServer({
    host: flags.host,
    port: flags.port,
    dataDir: flags.dataDir,
    ...(flags.db ? { db: flags.db } : {}),
    ...(flags.storage ? { storage: flags.storage } : {}),
    ...(config ? { config } : {}),
    ...(flags.tokens ? { tokensFile: flags.tokens } : {}),
    ...(flags.backend ? { backend: flags.backend } : {}),
    ...(flags.workers ? { workers: flags.workers } : {}),
    logger: flags.logLevel === "silent" ? false : createLogger({ level: flags.logLevel }),
    ...(flags.version ? { version: flags.version } : {}),
  });
  const tokensOn = server.ctx.auth.enabled;
  io.err(
    [
      `tern server listening on ${server.url}`,
      `  console: ${server.url}/console/projects/default/domains/development/executions`,
      `  API docs: ${server.url}/docs`,
      `  store: ${server.store.database.location}   blobs: ${server.blobs.uri("")}`,
      ...(config ? [`  config: ${config}`] : []),
      `  tokens: ${tokensOn ? "required" : "none (open sandbox, loopback only)"}`,
      "press Ctrl-C to stop",
      "",
    ].join("\n"),
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) {
        io.err("exiting at once\n");
        process.exit(130);
      }
      stopping = true;
      io.err(`${sig}: stopping the server (running executions are resumed by the next start)…\n`);
      server.close().then(
        () => resolve(EXIT_OK),
        (e: Error) => {
          io.err(`error: the server did not stop cleanly: ${e.message}\n`);
          resolve(EXIT_FAILED);
        },
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
