/**
 * The CLI's client of a Tern server's HTTP API: JSON requests with the
 * server's error bodies turned into coded errors, the watch stream (server-sent
 * events, resumed with `Last-Event-ID` when the connection drops), and the
 * defaults every remote command shares (`--server`, `--token`).
 *
 * Kept free of `@tern/core` so that remote commands start fast.
 */
import { UsageError } from "./errors.js";

/** Where the server is when neither `--server` nor `$TERN_SERVER` says. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** Options every remote command takes. */
export interface RemoteFlags {
  server?: string;
  token?: string;
  project?: string;
  domain?: string;
}

/** An error the server answered with (or could not be reached for), shaped like core's `TernError`. */
export class RemoteError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details: Record<string, unknown> = {},
    readonly status?: number,
    readonly kind: "user" | "system" = "user",
  ) {
    super(message);
    this.name = "TernError";
  }
}

/** `--server`, else `$TERN_SERVER`, else {@link DEFAULT_SERVER}; checked and without a trailing slash. */
export function resolveServer(flag?: string): string {
  const raw = flag ?? process.env.TERN_SERVER ?? DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--server must be a URL like ${DEFAULT_SERVER}, not "${raw}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--server must be an http:// or https:// URL, not "${raw}"`);
  return raw.replace(/\/+$/, "");
}

/** `--token`, else `$TERN_TOKEN`. */
export function resolveToken(flag?: string): string | undefined {
  const t = flag ?? process.env.TERN_TOKEN;
  return t ? t : undefined;
}

/** A parsed server-sent event. */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** What a watch stream yields: execution events, then its end. */
export type WatchItem =
  | { kind: "event"; event: Record<string, unknown> & { seq: number } }
  | { kind: "end"; phase: string | null };

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function networkCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function deepestMessage(e: unknown): string {
  let cur = e as { message?: string; cause?: unknown } | undefined;
  let msg = cur?.message ?? String(e);
  for (let i = 0; i < 4 && cur?.cause; i++) {
    cur = cur.cause as { message?: string; cause?: unknown };
    if (cur?.message) msg = cur.message;
  }
  return msg;
}

export class ApiClient {
  readonly server: string;
  private readonly token?: string;

  constructor(opts: { server?: string; token?: string } = {}) {
    this.server = resolveServer(opts.server);
    this.token = resolveToken(opts.token);
  }

  /** The console page of an execution. */
  consoleUrl(project: string, domain: string, id: string): string {
    return `${this.server}/console/projects/${encodeURIComponent(project)}/domains/${encodeURIComponent(domain)}/executions/${encodeURIComponent(id)}`;
  }

  /** `/api/v1/projects/<p>/domains/<d>` + rest, each part encoded. */
  scoped(project: string, domain: string, ...rest: (string | number)[]): string {
    return ["/api/v1/projects", project, "domains", domain, ...rest]
      .map((s, i) => (i === 0 ? s : encodeURIComponent(String(s))))
      .join("/");
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json" };
    if (json) h["content-type"] = "application/json";
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  private unreachable(e: unknown): RemoteError {
    const code = networkCode(e) ?? deepestMessage(e);
    return new RemoteError(
      "TERN_E_SERVER_UNREACHABLE",
      `cannot reach the Tern server at ${this.server} (${code === "ECONNREFUSED" ? "connection refused" : code})`,
      "start one with `tern serve`, or point --server (or TERN_SERVER) at a running server",
      { server: this.server },
      undefined,
      "system",
    );
  }

  private async fail(res: Response): Promise<RemoteError> {
    const text = await res.text().catch(() => "");
    let body:
      | { error?: { code?: string; message?: string; hint?: string; details?: Record<string, unknown> } }
      | undefined;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const err = body?.error;
    if (err?.code && err.message)
      return new RemoteError(err.code, err.message, err.hint, err.details ?? {}, res.status);
    return new RemoteError(
      res.status >= 500 ? "TERN_E_SERVER" : "TERN_E_BAD_REQUEST",
      `the server at ${this.server} answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ""}`,
      res.status === 404 ? "is this a Tern server? check --server" : undefined,
      {},
      res.status,
      "system",
    );
  }

  /** A JSON request; resolves to the parsed body, throws {@link RemoteError} for any error. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.server + path, {
        method,
        headers: this.headers(body !== undefined),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      throw this.unreachable(e);
    }
    if (!res.ok) throw await this.fail(res);
    return (await res.json()) as T;
  }

  /**
   * Follow an execution's watch stream from after `after`: execution events in
   * order, then `{ kind: "end" }`. A dropped connection is resumed from the
   * last event received (up to `retries` times in a row).
   */
  async *watch(
    project: string,
    domain: string,
    id: string,
    opts: { after?: number; signal?: AbortSignal; retries?: number } = {},
  ): AsyncGenerator<WatchItem> {
    let last = opts.after ?? 0;
    let failures = 0;
    const retries = opts.retries ?? 20;
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${this.server}${this.scoped(project, domain, "executions", id, "watch")}`, {
          headers: {
            ...this.headers(false),
            accept: "text/event-stream",
            ...(last ? { "last-event-id": String(last) } : {}),
          },
          signal: opts.signal,
        });
      } catch (e) {
        if (opts.signal?.aborted) return;
        if (++failures > retries) throw this.unreachable(e);
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** failures)));
        continue;
      }
      if (!res.ok) throw await this.fail(res);
      try {
        for await (const m of parseSse(res.body!)) {
          failures = 0;
          if (m.event === "end") {
            const d = JSON.parse(m.data) as { phase?: string | null };
            yield { kind: "end", phase: d.phase ?? null };
            return;
          }
          if (m.event !== "message") continue;
          const event = JSON.parse(m.data) as Record<string, unknown> & { seq: number };
          if (typeof event.seq === "number" && event.seq <= last) continue;
          last = event.seq;
          yield { kind: "event", event };
        }
      } catch (e) {
        if (opts.signal?.aborted) return;
        if (!networkCode(e) && !(e instanceof TypeError)) throw e;
      }
      // The stream closed without its end event: reconnect and resume.
      if (++failures > retries) throw this.unreachable(new Error("the watch stream kept closing"));
      await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** failures)));
    }
  }
}

/** Parse a `text/event-stream` body into messages (comments and `retry:` are skipped). */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = "";
  let id: string | undefined;
  let event = "message";
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (data.length) yield { ...(id !== undefined ? { id } : {}), event, data: data.join("\n") };
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id") id = value;
    }
  }
}
