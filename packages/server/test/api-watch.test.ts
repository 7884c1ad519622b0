/**
 * The watch stream over a real loopback socket: server-sent events replayed
 * from the store, then live from the executor, resumed with Last-Event-ID or
 * ?after=, heartbeats on idle streams, the end event, and streams closed when
 * the server stops.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../src/serve.js";
import { compilePayload, makeProject, type Payload } from "./helpers/api.js";

let dir: string;
let server: RunningServer;
let payload: Payload;
const S = "/api/v1/projects/default/domains/development";

interface Sse {
  id?: string;
  event: string;
  data: string;
}

/** Read a watch stream; `onMessage` (also called with `event: ":"` for comments) may stop it early by returning true. */
async function readStream(
  url: string,
  headers: Record<string, string> = {},
  onMessage?: (m: Sse, comments: number) => boolean | Promise<boolean>,
) {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const messages: Sse[] = [];
  let comments = 0;
  let stopped = false;
  if (res.status !== 200) return { res, messages, comments, body: await res.text(), stopped };
  const decoder = new TextDecoder();
  let buf = "";
  let cur: Sse = { event: "message", data: "" };
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === "") {
          if (cur.data !== "") {
            messages.push(cur);
            if (onMessage && (await onMessage(cur, comments))) {
              stopped = true;
              ac.abort();
              return { res, messages, comments, body: "", stopped };
            }
          }
          cur = { event: "message", data: "" };
        } else if (line.startsWith(":")) {
          comments++;
          if (onMessage && (await onMessage({ event: ":", data: line }, comments))) {
            stopped = true;
            ac.abort();
            return { res, messages, comments, body: "", stopped };
          }
        } else if (line.startsWith("id: ")) cur.id = line.slice(4);
        else if (line.startsWith("event: ")) cur.event = line.slice(7);
        else if (line.startsWith("data: ")) cur.data += line.slice(6);
      }
    }
  } catch (e) {
    if (!stopped) throw e;
  }
  return { res, messages, comments, body: "", stopped };
}

const events = (ms: Sse[]) => ms.filter((m) => m.event === "message").map((m) => JSON.parse(m.data));

async function launch(body: unknown): Promise<string> {
  const r = await fetch(`${server.url}${S}/executions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const j = (await r.json()) as { id: string };
  expect(r.status).toBe(201);
  return j.id;
}

/** A server that runs nothing, on its own database, with the fixtures registered. */
async function apiOnlyServer(name: string): Promise<RunningServer> {
  const s = await startServer({
    port: 0,
    workDir: dir,
    dataDir: path.join(dir, `.tern-${name}`),
    logger: false,
    runExecutor: false,
    watchPollMs: 50,
  });
  const r = await fetch(`${s.url}/api/v1/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  expect(r.status).toBe(200);
  return s;
}

async function record(id: string): Promise<any> {
  return (await fetch(`${server.url}${S}/executions/${id}`)).json();
}

beforeAll(async () => {
  dir = makeProject();
  payload = await compilePayload(dir);
  server = await startServer({
    port: 0,
    workDir: dir,
    dataDir: path.join(dir, ".tern"),
    logger: false,
    workers: 1,
    heartbeatMs: 100,
    watchPollMs: 200,
    executor: { claimIntervalMs: 50 },
  });
  const r = await fetch(`${server.url}/api/v1/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  expect(r.status).toBe(200);
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("watch", () => {
  let finished: string;
  let finishedEvents: any[];

  it("replays a finished execution's events in order, then ends", async () => {
    finished = await launch({ workflow: { name: "hello" }, inputs: { name: "Replay" } });
    const live = await readStream(`${server.url}${S}/executions/${finished}/watch`);
    expect(live.res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const r = await readStream(`${server.url}${S}/executions/${finished}/watch`);
    const evs = events(r.messages);
    finishedEvents = evs;
    expect(evs.length).toBeGreaterThanOrEqual(5);
    expect(evs.map((e) => e.seq)).toEqual(evs.map((_, i) => i + 1));
    expect(r.messages.filter((m) => m.event === "message").map((m) => Number(m.id))).toEqual(
      evs.map((e) => e.seq),
    );
    expect(evs.at(-1)).toMatchObject({ phase: "succeeded", outputs: "Hello, Replay!" });
    expect(evs.some((e) => "pluginState" in e)).toBe(false);
    const end = r.messages.at(-1)!;
    expect(end.event).toBe("end");
    expect(JSON.parse(end.data)).toEqual({ execution: finished, phase: "succeeded" });
    // The first stream (opened while it may still have been running) saw the same events.
    expect(events(live.messages)).toEqual(evs);
  });

  it("resumes after Last-Event-ID, and after ?after=", async () => {
    const byHeader = await readStream(`${server.url}${S}/executions/${finished}/watch`, {
      "last-event-id": "3",
    });
    expect(events(byHeader.messages)).toEqual(finishedEvents.slice(3));
    const byQuery = await readStream(`${server.url}${S}/executions/${finished}/watch?after=5`);
    expect(events(byQuery.messages)).toEqual(finishedEvents.slice(5));
    const past = await readStream(`${server.url}${S}/executions/${finished}/watch?after=99`);
    expect(events(past.messages)).toEqual([]);
    expect(past.messages.at(-1)!.event).toBe("end");
  });

  it("streams live events of a running execution, with heartbeats, and reconnects without gaps or repeats", async () => {
    const id = await launch({ workflow: { name: "slow" }, inputs: { ms: 1500 } });
    // First connection: stop once the task runs and a heartbeat went by, while the execution is still going.
    let phaseWhenRunning: string | undefined;
    const first = await readStream(`${server.url}${S}/executions/${id}/watch`, {}, async (m, comments) => {
      if (m.event === "message") {
        const e = JSON.parse(m.data);
        if (e.node === "nap" && e.phase === "running") phaseWhenRunning = (await record(id)).phase;
      }
      return phaseWhenRunning !== undefined && comments > 0;
    });
    expect(first.stopped).toBe(true);
    expect(phaseWhenRunning).toBe("running");
    const seen = events(first.messages);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    const last = seen.at(-1).seq;
    // Second connection: from the last event received on.
    const rest = await readStream(`${server.url}${S}/executions/${id}/watch`, {
      "last-event-id": String(last),
    });
    const more = events(rest.messages);
    const all = [...seen, ...more];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(all.at(-1)).toMatchObject({ phase: "succeeded", outputs: 1500 });
    expect(JSON.parse(rest.messages.at(-1)!.data).phase).toBe("succeeded");
    expect(rest.comments, JSON.stringify({ n: more.length, first: first.comments })).toBeGreaterThan(0);
  });

  it("streams an execution driven here from the subscription alone: the store is read once, not polled", async () => {
    const store = server.ctx.store;
    const list = store.events.list.bind(store.events);
    const reads: string[] = [];
    store.events.list = (execution, ...rest) => {
      reads.push(execution);
      return list(execution, ...rest);
    };
    try {
      const id = await launch({ workflow: { name: "slow" }, inputs: { ms: 1200 } });
      const r = await readStream(`${server.url}${S}/executions/${id}/watch`);
      const evs = events(r.messages);
      // Every event, in order, without a gap (the "claimed by" marker included), then the end.
      expect(evs.map((e) => e.seq)).toEqual(evs.map((_, i) => i + 1));
      expect(evs.some((e) => !e.node && /^claimed by /.test(e.message ?? ""))).toBe(true);
      expect(JSON.parse(r.messages.at(-1)!.data)).toEqual({ execution: id, phase: "succeeded" });
      // `end` comes once the record is final: read right after it, it has the outputs.
      expect(await record(id)).toMatchObject({ phase: "succeeded", outputs: 1200 });
      // Polls every 200 ms over 1.2 s would have read it 6 times or more.
      expect(reads.filter((x) => x === id).length).toBeLessThanOrEqual(2);
    } finally {
      store.events.list = list;
    }
  });

  it("ends the stream of an execution terminated before it started (no events)", async () => {
    const apiOnly = await apiOnlyServer("api-only");
    try {
      const r = await fetch(`${apiOnly.url}${S}/executions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ workflow: { name: "hello" }, inputs: { name: "Never" } }),
      });
      const { id } = (await r.json()) as { id: string };
      const watching = readStream(`${apiOnly.url}${S}/executions/${id}/watch`);
      await new Promise((res) => setTimeout(res, 100));
      const t = await fetch(`${apiOnly.url}${S}/executions/${id}/terminate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(((await t.json()) as { phase: string }).phase).toBe("aborted");
      const w = await watching;
      expect(events(w.messages)).toEqual([]);
      expect(JSON.parse(w.messages.at(-1)!.data)).toEqual({ execution: id, phase: "aborted" });
    } finally {
      await apiOnly.close();
    }
  });

  it("answers JSON errors for unknown executions and bad positions", async () => {
    const missing = await readStream(`${server.url}${S}/executions/xnothing/watch`);
    expect(missing.res.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe("TERN_E_NOT_FOUND");
    const bad = await readStream(`${server.url}${S}/executions/${finished}/watch`, {
      "last-event-id": "abc",
    });
    expect(bad.res.status).toBe(400);
    const neg = await readStream(`${server.url}${S}/executions/${finished}/watch?after=-1`);
    expect(neg.res.status).toBe(400);
  });

  it("ends open streams when the server closes", async () => {
    const other = await apiOnlyServer("closing");
    const r = await fetch(`${other.url}${S}/executions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ workflow: { name: "hello" }, inputs: { name: "Open" } }),
    });
    const { id } = (await r.json()) as { id: string };
    let opened = false;
    const watching = readStream(`${other.url}${S}/executions/${id}/watch`).catch((e) => e);
    const res = await fetch(`${other.url}${S}/executions/${id}/watch`);
    opened = res.status === 200;
    await other.close();
    await watching;
    expect(opened).toBe(true);
    const text = await res.text().catch(() => "");
    expect(text.startsWith("retry:")).toBe(true);
  });
});
