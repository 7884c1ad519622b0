/**
 * Fault injection shared conventions (PROTOCOLS §7): fail the next N matching requests with a
 * given status, or add latency to matching requests.
 */
import type { RecordedRequest } from "./types.js";

/** Which requests a rule applies to. Every given field must match. */
export interface RequestMatch {
  /** HTTP method, case-insensitive. */
  method?: string;
  /** A string matches the exact path (no query); a RegExp is tested against the path. */
  path?: string | RegExp;
  /** `true` only watch requests (`watch=true`), `false` only non-watch requests. */
  watch?: boolean;
}

export interface FailSpec {
  status: number;
  /** Response body; objects are sent as JSON. Defaults to the Status the API server would send. */
  body?: unknown;
  headers?: Record<string, string>;
  /** How many matching requests to fail (default 1). */
  count?: number;
  /** For 429/503 without a body: the Retry-After seconds advertised (default 1). */
  retryAfterSeconds?: number;
}

interface FailRule {
  match: RequestMatch;
  spec: FailSpec;
  remaining: number;
}

interface DelayRule {
  match: RequestMatch;
  ms: number;
  remaining: number;
}

/** A handle to withdraw a rule early. */
export interface RuleHandle {
  cancel(): void;
}

export function matches(
  match: RequestMatch,
  req: Pick<RecordedRequest, "method" | "path" | "query">,
): boolean {
  if (match.method && match.method.toUpperCase() !== req.method.toUpperCase()) return false;
  if (match.path !== undefined) {
    if (typeof match.path === "string" ? match.path !== req.path : !match.path.test(req.path)) return false;
  }
  if (match.watch !== undefined && (req.query.watch === "true" || req.query.watch === "1") !== match.watch)
    return false;
  return true;
}

function removeItem<T>(list: T[], item: T): void {
  const idx = list.indexOf(item);
  if (idx >= 0) list.splice(idx, 1);
}

export class Faults {
  #failures: FailRule[] = [];
  #delays: DelayRule[] = [];

  failNext(match: RequestMatch, spec: FailSpec): RuleHandle {
    const rule: FailRule = { match, spec, remaining: spec.count ?? 1 };
    this.#failures.push(rule);
    return { cancel: () => removeItem(this.#failures, rule) };
  }

  delay(match: RequestMatch, ms: number, count = Number.POSITIVE_INFINITY): RuleHandle {
    const rule: DelayRule = { match, ms, remaining: count };
    this.#delays.push(rule);
    return { cancel: () => removeItem(this.#delays, rule) };
  }

  clear(): void {
    this.#failures = [];
    this.#delays = [];
  }

  /** Consumes and returns the first failure rule matching this request, if any. */
  takeFailure(req: Pick<RecordedRequest, "method" | "path" | "query">): FailSpec | undefined {
    const rule = this.#failures.find((r) => r.remaining > 0 && matches(r.match, req));
    if (!rule) return undefined;
    if (--rule.remaining <= 0) removeItem(this.#failures, rule);
    return rule.spec;
  }

  /** Total latency to add to this request (all matching delay rules add up). */
  takeDelay(req: Pick<RecordedRequest, "method" | "path" | "query">): number {
    let total = 0;
    for (const rule of [...this.#delays]) {
      if (rule.remaining <= 0 || !matches(rule.match, req)) continue;
      total += rule.ms;
      if (--rule.remaining <= 0) removeItem(this.#delays, rule);
    }
    return total;
  }
}
