/**
 * The watch stream of one execution, as server-sent events: stored events
 * after the client's position (`Last-Event-ID` or `?after=`) first, then live
 * ones from the executor, in seq order without gaps or repeats, then a final
 * `end` event once the execution is over.
 *
 * Each execution event is `id: <seq>` + `data: <event JSON>`; the stream ends
 * with `event: end` + `data: {"execution", "phase"}`. Idle streams get a
 * `: heartbeat` comment every `heartbeatMs`.
 *
 * Live events come from `executor.subscribe` when the execution runs on this
 * replica (with the events emitted before the subscription and not stored yet);
 * the stored ones are read once at the start. While another replica drives the
 * execution, the store is read again every `watchPollMs`, and whenever a gap
 * shows in the live sequence.
 */
import type { ServerResponse } from "node:http";
import type { ExecutionEvent } from "@tern/core";
import type { ApiContext } from "./context.js";
import { TERMINAL_PHASES } from "./launch.js";

const PAGE = 1000;
/** Wait this long for a missing event to reach the store before reading it. */
const GAP_FILL_MS = 15;
/** First store poll after subscribing; each next one waits twice as long, up to `watchPollMs`. */
const FIRST_POLL_MS = 20;

/** An event as the API shows it: a plugin's persisted state (job handles, pids) stays inside the server. */
export function publicEvent(e: ExecutionEvent): Omit<ExecutionEvent, "pluginState"> {
  if (e.pluginState === undefined) return e;
  const { pluginState: _state, ...rest } = e;
  return rest;
}

const isEnd = (e: ExecutionEvent) => e.node === undefined && TERMINAL_PHASES.has(e.phase);

/**
 * Stream `execution` on `res` (already hijacked from fastify) from after `after`.
 * Resolves when the stream ends (execution over, client gone or server closing).
 */
export function streamExecution(
  ctx: ApiContext,
  res: ServerResponse,
  execution: string,
  after: number,
  opts: { requestId: string; terminal: boolean },
): Promise<void> {
  return new Promise<void>((resolve) => {
    let lastSent = after;
    let ended = false;
    let endPhase: string | undefined;
    const pending = new Map<number, ExecutionEvent>();
    let filling: Promise<void> | undefined;
    let gapTimer: NodeJS.Timeout | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    let pollDelay = FIRST_POLL_MS;
    let unsubscribe: (() => void) | undefined;

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      "x-request-id": opts.requestId,
    });
    res.write("retry: 1000\n\n");

    let corked = false;
    const write = (text: string): Promise<void> | undefined => {
      if (ended || res.destroyed) return undefined;
      // What is written in one tick (an engine burst, the last event and `end`) goes out in one send.
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(() => {
          corked = false;
          res.uncork();
        });
      }
      if (res.write(text)) return undefined;
      return new Promise((r) => res.once("drain", () => r()));
    };

    const finish = (phase?: string) => {
      if (ended) return;
      void write(`event: end\ndata: ${JSON.stringify({ execution, phase: phase ?? endPhase ?? null })}\n\n`);
      close();
    };

    const close = () => {
      if (ended) return;
      ended = true;
      unsubscribe?.();
      clearInterval(heartbeat);
      clearTimeout(poll);
      clearTimeout(gapTimer);
      ctx.streams.delete(close);
      if (!res.destroyed) res.end();
      resolve();
    };

    /** Send what is pending in order; returns a promise when the socket is full. */
    const drain = (): Promise<void> | undefined => {
      let wait: Promise<void> | undefined;
      while (!ended && pending.has(lastSent + 1)) {
        const e = pending.get(lastSent + 1)!;
        pending.delete(lastSent + 1);
        lastSent = e.seq;
        wait = write(`id: ${e.seq}\ndata: ${JSON.stringify(publicEvent(e))}\n\n`) ?? wait;
        if (isEnd(e)) {
          endPhase = e.phase;
          void settleEnd();
        }
      }
      return wait;
    };

    /**
     * The outcome event went out; `end` follows once the record says so too, so a client
     * that reads the execution on `end` finds its outputs (the record is written just after
     * the last events are stored).
     */
    const settleEnd = async () => {
      // Driven here: the run says when its end is stored, no need to read the store for it.
      const here = await ctx.executor.ended(execution);
      if (here) return finish(here.phase);
      for (let delay = 5; !ended; delay = Math.min(ctx.watchPollMs, delay * 2)) {
        try {
          const rec = await ctx.store.executions.get(execution, { spec: false });
          if (!rec || TERMINAL_PHASES.has(rec.phase)) return finish(rec?.phase ?? endPhase);
        } catch {
          // the store hiccuped: try again
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    };

    /** Read the store after the last sent event; end if the execution is over and nothing is left. */
    const fill = (): Promise<void> => {
      if (filling) return filling;
      filling = (async () => {
        try {
          for (;;) {
            if (ended) return;
            const page = await ctx.store.events.list(execution, lastSent, PAGE);
            for (const e of page) if (e.seq > lastSent) pending.set(e.seq, e);
            await drain();
            if (page.length < PAGE) break;
          }
          if (ended || pending.size) return;
          const rec = await ctx.store.executions.get(execution, { spec: false });
          if (!rec) return finish("unknown");
          if (TERMINAL_PHASES.has(rec.phase)) {
            // The record turns terminal after its events are stored: one more read catches the last ones.
            const rest = await ctx.store.events.list(execution, lastSent, PAGE);
            for (const e of rest) if (e.seq > lastSent) pending.set(e.seq, e);
            await drain();
            if (!ended && pending.size === 0) finish(rec.phase);
          }
        } catch {
          // The store hiccuped: the next poll tries again.
        } finally {
          filling = undefined;
        }
      })();
      return filling;
    };

    const onLive = (e: ExecutionEvent) => {
      if (ended || e.seq <= lastSent) return;
      pending.set(e.seq, e);
      void drain();
      if (!ended && pending.size && !gapTimer) {
        gapTimer = setTimeout(() => {
          gapTimer = undefined;
          void fill();
        }, GAP_FILL_MS);
      }
    };

    // Driven here: its whole history is in memory, the subscription replays it.
    const here = !opts.terminal && ctx.executor.drives(execution);
    if (here) unsubscribe = ctx.executor.subscribe(execution, onLive, lastSent);
    else if (!opts.terminal) unsubscribe = ctx.executor.subscribe(execution, onLive);
    heartbeat = setInterval(() => void write(": heartbeat\n\n"), ctx.heartbeatMs);
    // Polls start fast and slow down to watchPollMs: right after subscribing, events emitted
    // just before (and the end of a very short execution) are only in the store.
    const schedulePoll = () => {
      if (ended) return;
      poll = setTimeout(() => {
        // Driven here: the subscription sees every event, the store has nothing more.
        if (!opts.terminal && ctx.executor.drives(execution)) return schedulePoll();
        void fill().finally(schedulePoll);
      }, pollDelay);
      pollDelay = Math.min(ctx.watchPollMs, pollDelay * 2);
    };
    schedulePoll();
    ctx.streams.add(close);
    res.on("close", close);
    if (!here) void fill();
  });
}
