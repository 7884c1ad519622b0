/**
 * Container logs (PROTOCOLS §1.4): what a container instance wrote, line by line with the time each
 * line arrived, and the `/log` answer with `follow`, `tailLines`, `sinceSeconds`, `sinceTime`,
 * `timestamps` and `limitBytes`.
 */
import type { ServerResponse } from "node:http";
import { rfc3339Nano } from "./util.js";

export interface LogLine {
  time: Date;
  /** The line including its trailing newline (the last line of a stream may lack one). */
  text: string;
}

/** One container instance's log. A restarted container gets a new one; the old one is `previous`. */
export class ContainerLog {
  readonly #lines: LogLine[] = [];
  readonly #partial = { stdout: "", stderr: "" };
  readonly #listeners = new Set<(line: LogLine | null) => void>();
  #bytes = 0;
  #ended = false;

  constructor(
    /** Oldest lines are dropped past this size, like the kubelet's log rotation. */
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {}

  get ended(): boolean {
    return this.#ended;
  }

  lines(): LogLine[] {
    return [...this.#lines];
  }

  /** The whole log as text. */
  text(): string {
    return this.#lines.map((l) => l.text).join("");
  }

  /** Appends decoded output; only complete lines are published, as the kubelet does. */
  append(stream: "stdout" | "stderr", chunk: string): void {
    if (this.#ended) return;
    const data = this.#partial[stream] + chunk;
    const parts = data.split("\n");
    this.#partial[stream] = parts.pop()!;
    for (const part of parts) this.#push(`${part}\n`);
  }

  /** Flushes unterminated output and wakes followers so their streams end. */
  end(): void {
    if (this.#ended) return;
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.#partial[stream]) this.#push(this.#partial[stream]);
      this.#partial[stream] = "";
    }
    this.#ended = true;
    for (const listener of [...this.#listeners]) listener(null);
    this.#listeners.clear();
  }

  /** Receives every new line, then `null` at the end. Returns an unsubscribe function. */
  subscribe(listener: (line: LogLine | null) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #push(text: string): void {
    const line = { time: new Date(), text };
    this.#lines.push(line);
    this.#bytes += Buffer.byteLength(text);
    while (this.#bytes > this.maxBytes && this.#lines.length > 1) {
      this.#bytes -= Buffer.byteLength(this.#lines.shift()!.text);
    }
    for (const listener of [...this.#listeners]) listener(line);
  }
}

export interface LogQuery {
  follow: boolean;
  timestamps: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  sinceTime?: Date;
  limitBytes?: number;
}

/** Writes a log to an HTTP response; with `follow`, keeps the response open until the container exits. */
export function streamLog(res: ServerResponse, log: ContainerLog, q: LogQuery): void {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.flushHeaders();
  let remaining = q.limitBytes ?? Number.POSITIVE_INFINITY;
  const since =
    q.sinceTime ?? (q.sinceSeconds !== undefined ? new Date(Date.now() - q.sinceSeconds * 1000) : undefined);
  const format = (l: LogLine) => (q.timestamps ? `${rfc3339Nano(l.time)} ${l.text}` : l.text);

  /** Writes one line; returns false once limitBytes is used up. */
  const emit = (l: LogLine): boolean => {
    if (res.writableEnded) return false;
    let out = Buffer.from(format(l));
    if (out.length > remaining) out = out.subarray(0, remaining);
    res.write(out);
    remaining -= out.length;
    return remaining > 0;
  };

  let backlog = log.lines().filter((l) => !since || l.time >= since);
  if (q.tailLines !== undefined) backlog = q.tailLines <= 0 ? [] : backlog.slice(-q.tailLines);
  for (const line of backlog) {
    if (!emit(line)) {
      res.end();
      return;
    }
  }
  if (!q.follow || log.ended) {
    res.end();
    return;
  }
  const unsubscribe = log.subscribe((line) => {
    if (line === null || !emit(line)) {
      unsubscribe();
      if (!res.writableEnded) res.end();
    }
  });
  res.on("close", unsubscribe);
}
