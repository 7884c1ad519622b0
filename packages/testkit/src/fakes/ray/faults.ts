/**
 * Fault injection of the fake Ray dashboard, after the shared conventions (PROTOCOLS §7):
 * fail the next N matching requests with a status and a plain-text body (Ray's errors are
 * text, not JSON), or add latency to matching requests.
 */

/** The Jobs API routes the fake serves. */
export type RayRoute = "version" | "submit" | "list" | "get" | "logs" | "stop" | "delete" | "unknown";

/** Which requests a rule applies to. Every given field must match. */
export interface RayRequestMatch {
  route?: RayRoute;
  /** HTTP method, case-insensitive. */
  method?: string;
  /** A string matches the exact path (no query); a RegExp is tested against the path. */
  path?: string | RegExp;
  /** Only requests about this submission id. */
  submissionId?: string;
}

export interface RayFailSpec {
  /** HTTP status, e.g. 500, 503, 404. */
  status: number;
  /** Plain-text body. @default a short text such as the dashboard sends for that status */
  body?: string;
  headers?: Record<string, string>;
  /** How many matching requests fail. @default 1 */
  count?: number;
}

/** Withdraws a rule early. */
export interface RayRuleHandle {
  cancel(): void;
}

/** What a rule is matched against. */
export interface RayMatchTarget {
  route: RayRoute;
  method: string;
  path: string;
  submissionId?: string;
}

export function matchesRay(m: RayRequestMatch, r: RayMatchTarget): boolean {
  if (m.route && m.route !== r.route) return false;
  if (m.method && m.method.toUpperCase() !== r.method.toUpperCase()) return false;
  if (m.path !== undefined && (typeof m.path === "string" ? m.path !== r.path : !m.path.test(r.path)))
    return false;
  if (m.submissionId !== undefined && m.submissionId !== r.submissionId) return false;
  return true;
}

interface Rule<T> {
  match: RayRequestMatch;
  value: T;
  remaining: number;
}

/** Counted rules; `take` consumes one use of the first that matches. */
export class RayRules<T> {
  private rules: Rule<T>[] = [];

  add(match: RayRequestMatch, value: T, count: number): RayRuleHandle {
    const rule: Rule<T> = { match, value, remaining: count };
    this.rules.push(rule);
    return {
      cancel: () => {
        this.rules = this.rules.filter((r) => r !== rule);
      },
    };
  }

  take(target: RayMatchTarget): T | undefined {
    const rule = this.rules.find((r) => r.remaining > 0 && matchesRay(r.match, target));
    if (!rule) return undefined;
    if (--rule.remaining <= 0) this.rules = this.rules.filter((r) => r !== rule);
    return rule.value;
  }

  /** Every matching rule's value, each use consumed (delays add up). */
  takeAll(target: RayMatchTarget): T[] {
    const out: T[] = [];
    for (const rule of [...this.rules]) {
      if (rule.remaining <= 0 || !matchesRay(rule.match, target)) continue;
      out.push(rule.value);
      if (--rule.remaining <= 0) this.rules = this.rules.filter((r) => r !== rule);
    }
    return out;
  }
}

/** The text the dashboard (aiohttp) sends for a status when nothing more specific applies. */
export function defaultErrorText(status: number): string {
  if (status === 404) return "404: Not Found";
  if (status === 503) return "503: Service Unavailable";
  if (status === 500)
    return 'Traceback (most recent call last):\n  File "job_head.py", line 1, in submit_job\nRuntimeError: injected failure (fake Ray dashboard)';
  if (status === 429) return "429: Too Many Requests";
  return `${status}: injected failure`;
}
