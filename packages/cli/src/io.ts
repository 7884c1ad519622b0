/**
 * The CLI's streams. Human output goes to stdout, diagnostics to stderr; in
 * `--json` mode stdout is reserved for the one JSON document, so anything else
 * written to it (a task's `console.log` in the inline backend included) is sent
 * to stderr instead.
 */

/** Where a command writes. */
export interface Io {
  /** Write to stdout (or, in `--json` mode, to stderr). */
  out(text: string): void;
  err(text: string): void;
  /** Write the `--json` document to the real stdout; resolves once it is handed to the OS. */
  json(value: unknown): Promise<void>;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
}

// Captured before anything can redirect it, so the `--json` document always reaches the real stdout.
const realStdoutWrite = process.stdout.write.bind(process.stdout) as (
  chunk: string,
  cb: (err?: Error | null) => void,
) => boolean;
let redirected = false;

/** Streams for one command; with `json`, stdout is redirected to stderr, and only {@link Io.json} writes there. */
export function createIo(json: boolean): Io {
  const stdout = process.stdout;
  const stderr = process.stderr;
  if (json && !redirected) {
    redirected = true;
    stdout.write = ((chunk: unknown, enc?: unknown, cb?: unknown) =>
      (stderr.write as (...a: unknown[]) => boolean)(chunk, enc, cb)) as typeof stdout.write;
  }
  return {
    out: (text) => void stdout.write(text),
    err: (text) => void stderr.write(text),
    json: (value) => new Promise((resolve) => realStdoutWrite(`${JSON.stringify(value)}\n`, () => resolve())),
    stdout,
    stderr,
  };
}

/**
 * When the reader of stdout or stderr goes away (`tern run … | head`), drop
 * further output instead of crashing: the execution still runs to its end and
 * is recorded, and the exit status still tells how it went.
 */
export function ignoreBrokenPipes(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      s.write = ((_chunk: unknown, enc?: unknown, cb?: unknown) => {
        const done = typeof enc === "function" ? enc : cb;
        if (typeof done === "function") done();
        return true;
      }) as typeof s.write;
    });
  }
}

/** Resolve once both streams have handed everything written so far to the OS. */
export function drain(): Promise<void> {
  const flush = (s: NodeJS.WriteStream) =>
    new Promise<void>((resolve) =>
      s.writableLength === 0 || s.destroyed ? resolve() : s.write("", () => resolve()),
    );
  return Promise.all([flush(process.stdout), flush(process.stderr)]).then(() => undefined);
}
