/**
 * Retrying external calls with exponential backoff and jitter: `launch`, `abort` and
 * `finalize` retry what `transient` says may pass (unreachable, 429, 5xx); anything else is
 * thrown at once.
 */
import type { RetryOptions } from "./options.js";

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Runs `fn` until it succeeds, throws something not `transient`, or `attempts` are spent. */
export async function withRetry<T>(
  fn: () => Promise<T>,
  transient: (e: unknown) => boolean,
  policy: Required<RetryOptions>,
  opts: { signal?: AbortSignal; onRetry?: (e: unknown, delayMs: number) => void } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!transient(e) || attempt >= policy.attempts || opts.signal?.aborted) throw e;
      const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      const delay = backoff * (0.8 + 0.4 * Math.random());
      opts.onRetry?.(e, delay);
      await sleep(delay, opts.signal);
    }
  }
}
