/**
 * Gates wait for a person or for time: approve (the value passes, or a rejection fails the
 * node), input (a typed value, checked), sleep; a timeout; and a clear error when nothing
 * can give a signal.
 */
import { ErrorCodes, type SignalProvider, type SignalRequest } from "@tern/core";
import { describe, expect, it } from "vitest";
import { approveFlow, approveWithTimeout, inputFlow, sleepFlow } from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  callsOf,
  expectSucceeded,
  nodeOf,
  useBackend,
} from "./control-harness.js";

/** A provider that answers from a table and remembers the requests. */
function answering(
  answers: Record<string, { approved?: boolean; value?: unknown; by?: string; reason?: string }>,
) {
  const requests: Omit<SignalRequest, "signal">[] = [];
  const provider: SignalProvider = async ({ signal: _signal, ...req }) => {
    requests.push(req);
    const a = answers[req.node];
    if (!a) throw new Error(`no answer for ${req.node}`);
    return a;
  };
  return { provider, requests };
}

describe.each(BACKENDS)("gates (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("approve: an approved value passes on", async () => {
    const { provider, requests } = answering({ review: { approved: true, by: "ada" } });
    const { handle, result } = await backend.run(approveFlow, { x: 21 }, { signals: provider });
    expectSucceeded(result);
    expect(result.outputs).toBe(43);
    expect(requests).toEqual([{ execution: handle.id, node: "review", kind: "approve", value: 42 }]);
    expect(nodeOf(result, "review")).toMatchObject({
      kind: "gate",
      task: "gate:approve",
      phase: "succeeded",
    });
    const ev = handle.events.filter((e) => e.node === "review");
    expect(ev.find((e) => e.phase === "running")?.message).toBe('waiting for approval "review"');
    expect(ev.at(-1)).toMatchObject({ phase: "succeeded", outputs: 42, message: "approved by ada" });
    // The gate waits for its value: the draft ran first, publish after.
    const seq = (node: string, phase: string) =>
      handle.events.find((e) => e.node === node && e.phase === phase)!.seq;
    expect(seq("draft", "succeeded")).toBeLessThan(seq("review", "queued"));
    expect(seq("review", "succeeded")).toBeLessThan(seq("publish", "queued"));
  });

  it("approve: a rejection fails the node with TERN_E_GATE_REJECTED", async () => {
    const { provider } = answering({ review: { approved: false, by: "grace", reason: "numbers look off" } });
    const { handle, result } = await backend.run(approveFlow, { x: 1 }, { signals: provider });
    expect(result.phase).toBe("failed");
    expect(nodeOf(result, "review").error).toMatchObject({
      code: ErrorCodes.GATE_REJECTED,
      kind: "user",
      message: 'gate "review" was rejected by grace: numbers look off',
    });
    expect(result.error).toMatchObject({ code: ErrorCodes.GATE_REJECTED, node: "review" });
    expect(nodeOf(result, "publish").phase).toBe("skipped");
    expect(callsOf(handle.id, "add")).toEqual([]);
  });

  it("input: a value of the gate's type is the node's output", async () => {
    for (const value of [5, 2.5]) {
      const { provider, requests } = answering({ threshold: { value } });
      const { result } = await backend.run(inputFlow, { x: 10 }, { signals: provider });
      expectSucceeded(result);
      expect(result.outputs).toBe(10 + value);
      expect(requests[0]).toMatchObject({
        node: "threshold",
        kind: "input",
        schema: { type: "number", minimum: 0 },
      });
    }
  });

  it.each([
    ["a string", "five", /^gate "threshold" expects number, but the signal gave "five" \(/],
    ["nothing", undefined, /^gate "threshold" expects number, but the signal gave no value$/],
    [
      "a value out of bounds",
      -1,
      /^gate "threshold" expects number, but the signal gave -1 \(Too small: expected number to be >=0\)$/,
    ],
  ])("input: %s fails the node with TERN_E_INPUT_INVALID naming the gate", async (_what, value, pattern) => {
    const { provider } = answering({ threshold: { value } });
    const { handle, result } = await backend.run(inputFlow, { x: 10 }, { signals: provider });
    expect(result.phase).toBe("failed");
    const err = nodeOf(result, "threshold").error!;
    expect(err.code).toBe(ErrorCodes.INPUT_INVALID);
    expect(err.message).toMatch(/^gate "threshold" /);
    expect(err.message).toMatch(pattern);
    expect(err.details).toMatchObject({ node: "threshold" });
    expect(callsOf(handle.id, "add")).toEqual([]);
  });

  it("sleep: waits, then lets the nodes after it run", async () => {
    const { handle, result } = await backend.run(sleepFlow, { x: 4 });
    expectSucceeded(result);
    expect(result.outputs).toBe(8);
    expect(nodeOf(result, "nap")).toMatchObject({ task: "gate:sleep", phase: "succeeded" });
    expect(handle.events.find((e) => e.node === "nap" && e.phase === "running")?.message).toBe(
      "sleeping 20 ms",
    );
    const seq = (node: string, phase: string) =>
      handle.events.find((e) => e.node === node && e.phase === phase)!.seq;
    expect(seq("nap", "succeeded")).toBeLessThan(seq("after_nap", "queued"));
  });

  it("a gate that gets no signal in time fails with TERN_E_TIMEOUT, and the provider is told to stop waiting", async () => {
    let released: unknown;
    const provider: SignalProvider = (req) =>
      new Promise((_resolve, reject) => {
        req.signal.addEventListener("abort", () => {
          released = req.signal.reason ?? true;
          reject(new Error("no longer waited for"));
        });
      });
    const { result } = await backend.run(approveWithTimeout, { x: 1 }, { signals: provider });
    expect(result.phase).toBe("failed");
    expect(nodeOf(result, "review").error).toMatchObject({
      code: ErrorCodes.TIMEOUT,
      message: 'gate "review" got no signal within 50 ms',
    });
    expect(released).toBeTruthy();
  });

  it("without a signal provider a gate fails with TERN_E_SIGNAL_MISSING and says how to give one", async () => {
    const approve = await backend.run(approveFlow, { x: 1 });
    expect(approve.result.phase).toBe("failed");
    const err = nodeOf(approve.result, "review").error!;
    expect(err.code).toBe(ErrorCodes.SIGNAL_MISSING);
    expect(err.message).toBe('gate "review" is waiting for an approval, and nothing can give it');
    expect(err.hint).toBe("run again with --signal review=true (or =false to reject)");

    const input = await backend.run(inputFlow, { x: 1 });
    const ierr = nodeOf(input.result, "threshold").error!;
    expect(ierr.code).toBe(ErrorCodes.SIGNAL_MISSING);
    expect(ierr.hint).toBe("run again with --signal threshold=<value>");
  });

  it("aborting the execution stops a waiting gate", async () => {
    let asked!: () => void;
    const waiting = new Promise<void>((r) => (asked = r));
    const provider: SignalProvider = (req) => {
      asked();
      return new Promise((_resolve, reject) =>
        req.signal.addEventListener("abort", () => reject(new Error("aborted"))),
      );
    };
    const handle = backend.start(approveFlow, { x: 1 }, { signals: provider });
    await waiting;
    await handle.abort("operator said stop");
    const result = await handle.result;
    expect(result.phase).toBe("aborted");
    expect(nodeOf(result, "review").phase).toBe("aborted");
    expect(nodeOf(result, "publish").phase).toBe("skipped");
  });
});
