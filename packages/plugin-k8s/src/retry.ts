/**
 * Retrying API calls: client-node has no retries and ignores `Retry-After`
 * (PROTOCOLS §1.1), so `launch`, `abort` and `finalize` retry 429, 5xx and unreachable
 * servers here, with exponential backoff and the server's `Retry-After` when it sends one.
 */
import { K8sApiError, toApiError } from "./api.js";
import type { ApiRetryOptions } from "./options.js";

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

/**
 * Runs `fn` until it succeeds, fails with a non-transient error, or `attempts` are spent.
 * The last error is rethrown as a {@link K8sApiError}.
 */
export async function withRetry<T>(
  what: string,
  fn: () => Promise<T>,
  policy: Required<ApiRetryOptions>,
  opts: {
    signal?: AbortSignal;
    onRetry?: (err: K8sApiError, delayMs: number) => void;
    /** Checked before each retry: true stops retrying (e.g. the cluster was found unhealthy meanwhile). */
    giveUp?: () => boolean;
  } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const err = e instanceof K8sApiError ? e : toApiError(e, what);
      if (!err.transient || attempt >= policy.attempts || opts.signal?.aborted || opts.giveUp?.()) throw err;
      const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      const delay = Math.min(
        policy.maxMs,
        Math.max(err.retryAfterMs ?? 0, backoff * (0.8 + 0.4 * Math.random())),
      );
      opts.onRetry?.(err, delay);
      await sleep(delay, opts.signal);
    }
  }
}
