/**
 * Local execution records under `<projectRoot>/.tern/executions/<id>/`:
 *
 * - `events.ndjson`  every event, in order (appended in batches)
 * - `spec.json`      the compiled workflow
 * - `inputs.json`    the inputs as given
 * - `run.json`       how the run was started (file, target, bundle, backend…)
 * - `result.json`    the outcome
 * - `logs/<node>.<attempt>.log`  each attempt's log lines
 *
 * `tern run --recover` reads these. Events are only buffered on the hot path;
 * a timer writes them in batches, so a crash loses at most one interval.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { ExecutionEvent, ExecutionResult } from "@tern/core";

export interface JournalOptions {
  /** How often buffered events are written. @default 200 */
  flushMs?: number;
}

/** The files written once, at the first flush. */
export interface JournalHeader {
  spec: unknown;
  inputs: unknown;
  run: Record<string, unknown>;
}

/** Where an execution's records live. */
export function executionDir(projectRoot: string, id: string): string {
  return path.join(projectRoot, ".tern", "executions", id);
}

/** Writes one execution's records; never throws into the run (the first failure is kept in `error`). */
export class Journal {
  private buffer: ExecutionEvent[] = [];
  private header?: JournalHeader;
  private timer?: NodeJS.Timeout;
  private ready = false;
  /** The first write failure, reported once at the end of the run. */
  error?: Error;

  constructor(
    readonly dir: string,
    private readonly opts: JournalOptions = {},
  ) {}

  /** Start recording: the header files are written with the first batch, off the start-up path. */
  begin(header: JournalHeader): void {
    this.header = header;
    this.timer = setInterval(() => this.flush(), this.opts.flushMs ?? 200);
    this.timer.unref();
  }

  /** Buffer an event (called from the engine's event listener). */
  record(e: ExecutionEvent): void {
    this.buffer.push(e);
  }

  /** Write what is buffered. Synchronous, so it is also safe on the way out of a hard exit. */
  flush(): void {
    if (this.error) return;
    try {
      if (!this.ready) {
        fs.mkdirSync(path.join(this.dir, "logs"), { recursive: true });
        this.ready = true;
      }
      if (this.header) {
        const h = this.header;
        this.header = undefined;
        writeJson(path.join(this.dir, "spec.json"), h.spec);
        writeJson(path.join(this.dir, "inputs.json"), h.inputs);
        writeJson(path.join(this.dir, "run.json"), h.run);
      }
      if (this.buffer.length) {
        const batch = this.buffer;
        this.buffer = [];
        fs.appendFileSync(
          path.join(this.dir, "events.ndjson"),
          `${batch.map((e) => JSON.stringify(e)).join("\n")}\n`,
        );
      }
    } catch (e) {
      this.error = e as Error;
    }
  }

  /** Flush everything and write the result and every attempt's log. */
  finish(result: ExecutionResult, logs: (node: string, attempt: number) => readonly string[]): void {
    if (this.timer) clearInterval(this.timer);
    this.flush();
    if (this.error) return;
    try {
      for (const n of result.nodes) {
        for (let a = 1; a <= n.attempts; a++) {
          const lines = logs(n.id, a);
          if (!lines.length) continue;
          // Nested ids (`sub/train`, `map_x[3]`) become folders under logs/.
          const file = this.logPath(n.id, a);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          fs.writeFileSync(file, `${lines.join("\n")}\n`);
        }
      }
      writeJson(path.join(this.dir, "result.json"), result);
    } catch (e) {
      this.error = e as Error;
    }
  }

  /** Path of an attempt's log file. */
  logPath(node: string, attempt: number): string {
    return path.join(this.dir, "logs", `${node}.${attempt}.log`);
  }
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** What `tern run --recover <id>` takes from a recorded execution. */
export interface Recovery {
  id: string;
  workflow: string;
  inputs: Record<string, unknown>;
  /** Outputs of the nodes that succeeded, by fully qualified node id. */
  succeeded: Map<string, { outputs: unknown }>;
}

/**
 * Read a recorded local execution for recovery; undefined when there is none.
 * A torn last line (the run was killed mid-write) is skipped.
 */
export function readRecovery(projectRoot: string, id: string): Recovery | undefined {
  const dir = executionDir(projectRoot, id);
  if (!/^[A-Za-z0-9_-]+$/.test(id) || !fs.existsSync(path.join(dir, "events.ndjson"))) return undefined;
  const succeeded = new Map<string, { outputs: unknown }>();
  for (const line of fs.readFileSync(path.join(dir, "events.ndjson"), "utf8").split("\n")) {
    if (!line) continue;
    let e: ExecutionEvent;
    try {
      e = JSON.parse(line) as ExecutionEvent;
    } catch {
      continue;
    }
    if (e.node && e.phase === "succeeded") succeeded.set(e.node, { outputs: e.outputs });
  }
  const read = (f: string) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  const spec = read("spec.json") as { workflow?: { id?: { name?: string } } } | undefined;
  return { id, workflow: spec?.workflow?.id?.name ?? "", inputs: read("inputs.json") ?? {}, succeeded };
}
