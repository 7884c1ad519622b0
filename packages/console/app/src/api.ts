/**
 * The console's API client: JSON over fetch with the session's token, errors
 * as {@link ApiError} (code, message, hint), and the execution watch stream
 * read with fetch (EventSource cannot send an Authorization header).
 */
import { getToken, tokenRejected } from "./auth.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function failure(res: Response): Promise<ApiError> {
  let body: {
    error?: { code?: string; message?: string; hint?: string; details?: Record<string, unknown> };
  } = {};
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const e = body.error ?? {};
  const err = new ApiError(
    res.status,
    e.code ?? `HTTP_${res.status}`,
    e.message ?? `${res.status} ${res.statusText}`,
    e.hint,
    e.details,
  );
  if (res.status === 401) tokenRejected(err.message);
  return err;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: headers(body !== undefined ? { "content-type": "application/json" } : {}),
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export const get = <T = any>(path: string) => api<T>("GET", path);
export const post = <T = any>(path: string, body: unknown = {}) => api<T>("POST", path, body);

/** Download a blob of an execution as a file (the request carries the token, so no plain link). */
export async function download(scope: string, execution: string, uri: string, name: string): Promise<void> {
  const res = await fetch(`/api/v1${scope}/executions/${execution}/blob?uri=${encodeURIComponent(uri)}`, {
    headers: headers(),
  });
  if (!res.ok) throw await failure(res);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface WatchHandlers {
  /** A batch of events (in seq order). */
  events(items: any[]): void;
  /** The execution is over. */
  end(phase: string | null): void;
  error?(e: unknown): void;
}

/**
 * Follow an execution's events as server-sent events, read through fetch so the
 * token goes in a header. Reconnects after a dropped connection from the last
 * seq seen. Events are handed over in batches (one per network chunk), so a
 * replay of thousands costs one render, not thousands. Returns a stop function.
 */
export function watch(scope: string, execution: string, h: WatchHandlers): () => void {
  let stopped = false;
  let last = 0;
  let ctrl: AbortController | undefined;
  const run = async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const res = await fetch(`/api/v1${scope}/executions/${execution}/watch?after=${last}`, {
          headers: headers({ accept: "text/event-stream" }),
          signal: ctrl.signal,
        });
        if (!res.ok || !res.body) throw await failure(res);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          const batch: any[] = [];
          let endPhase: string | null | undefined;
          let cut: number;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let event = "message";
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trimStart();
            }
            if (!data) continue;
            const parsed = JSON.parse(data);
            if (event === "end") endPhase = parsed.phase ?? null;
            else {
              batch.push(parsed);
              if (typeof parsed.seq === "number") last = parsed.seq;
            }
          }
          if (batch.length) h.events(batch);
          if (endPhase !== undefined) {
            stopped = true;
            h.end(endPhase);
            return;
          }
        }
      } catch (e) {
        if (stopped) return;
        h.error?.(e);
        if (e instanceof ApiError && e.status < 500) return;
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void run();
  return () => {
    stopped = true;
    ctrl?.abort();
  };
}
