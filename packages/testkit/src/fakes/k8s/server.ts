/**
 * The HTTP side: a node:http server on 127.0.0.1 that records every request, applies injected
 * latency and failures, checks the bearer token, and hands the rest to the router. It can also go
 * "down" — really refusing connections (the listener is closed and every socket destroyed) or
 * answering 503 — and come back up on the same port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { failure, StatusError, statusForCode, unauthorized } from "./errors.js";
import type { Faults } from "./faults.js";
import { type RequestContext, type Router, sendJson } from "./router.js";
import type { RecordedRequest } from "./types.js";
import { sleep } from "./util.js";

export type DownMode = "refuse" | "503";

export interface HttpServerOptions {
  router: Router;
  faults: Faults;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Called for every request as it arrives (the record's `status` is filled in when answered). */
  record(request: RecordedRequest): void;
}

export class HttpServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #down: DownMode | undefined;

  constructor(private readonly options: HttpServerOptions) {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    // Watches and log follows are long-lived; never let Node's own timeouts cut them.
    this.#server.requestTimeout = 0;
    this.#server.headersTimeout = 0;
    this.#server.keepAliveTimeout = 5000;
    this.#server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  get port(): number {
    return this.#port;
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once("error", onError);
      this.#server.listen(port, "127.0.0.1", () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
    const addr = this.#server.address();
    if (addr && typeof addr === "object") this.#port = addr.port;
  }

  /** Stops listening and cuts every connection (watches and log streams included). */
  async close(): Promise<void> {
    const closed = this.#server.listening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  /** Simulates an unreachable API server until `up()`. */
  async down(mode: DownMode): Promise<void> {
    this.#down = mode;
    if (mode === "refuse") await this.close();
  }

  async up(): Promise<void> {
    const mode = this.#down;
    this.#down = undefined;
    if (mode === "refuse" && !this.#server.listening) await this.listen(this.#port);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const raw = await readBody(req);
    const contentType = req.headers["content-type"];
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query,
      headers,
      body: parseMaybeJson(raw),
      status: 0,
      time: new Date(),
    };
    this.options.record(record);
    // Streams answer with 200 at once; the record shows it as soon as headers go out.
    const origWriteHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    (res as { writeHead: unknown }).writeHead = (code: number, ...rest: unknown[]) => {
      record.status = code;
      return origWriteHead(code, ...rest);
    };

    try {
      if (this.#down === "503") {
        const { body, headers: h } = statusForCode(503);
        sendJson(res, 503, body, h);
        return;
      }
      const latency = this.options.faults.takeDelay(record);
      if (latency > 0) await sleep(latency);
      if (this.options.token !== undefined && headers.authorization !== `Bearer ${this.options.token}`) {
        throw unauthorized();
      }
      const injected = this.options.faults.takeFailure(record);
      if (injected) {
        const fallback = statusForCode(injected.status, injected.retryAfterSeconds ?? 1);
        const body = injected.body ?? fallback.body;
        const h = { ...fallback.headers, ...(injected.headers ?? {}) };
        if (typeof body === "string") {
          res.writeHead(injected.status, { "Content-Type": "text/plain", ...h });
          res.end(body);
        } else sendJson(res, injected.status, body, h);
        return;
      }
      let body: unknown;
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString("utf8"));
        } catch {
          if (req.method !== "DELETE" && req.method !== "GET") {
            throw new StatusError(
              failure(400, "BadRequest", "the request body is not valid JSON (the fake only speaks JSON)"),
            );
          }
        }
      }
      const ctx: RequestContext = {
        req,
        res,
        method: req.method ?? "GET",
        path: url.pathname,
        query,
        body,
        contentType,
      };
      this.options.router.handle(ctx);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof StatusError) sendJson(res, err.code, err.body, err.headers);
      else {
        const message = err instanceof Error ? err.message : String(err);
        sendJson(
          res,
          500,
          failure(
            500,
            "InternalError",
            `an error on the server ("${message}") has prevented the request from succeeding`,
          ),
        );
      }
    }
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseMaybeJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  const text = raw.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
