/**
 * Fault injection for the fake S3, following the shared conventions
 * (PROTOCOLS §7): fail the next N matching requests, delay them, or cut a
 * response body short.
 */

/** The S3 operations the fake recognises. */
export type S3Operation =
  | "ListBuckets"
  | "CreateBucket"
  | "HeadBucket"
  | "DeleteBucket"
  | "ListObjectsV2"
  | "PutObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "DeleteObjects"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "Unsupported";

/** Which requests a rule applies to: an operation name, or fields that must all match. */
export type S3RequestMatch =
  | S3Operation
  | "*"
  | { op?: S3Operation; method?: string; bucket?: string; key?: string | RegExp };

export interface S3FailSpec {
  /** HTTP status. */
  status: number;
  /** S3 error code in the XML body. @default by status: 503 SlowDown, 500 InternalError, 404 NoSuchKey, 403 AccessDenied, else InvalidRequest */
  code?: string;
  message?: string;
  headers?: Record<string, string>;
  /** How many matching requests fail. @default 1 */
  count?: number;
}

export interface RuleHandle {
  cancel(): void;
}

export interface MatchTarget {
  op: S3Operation;
  method: string;
  bucket?: string;
  key?: string;
}

export function matches(m: S3RequestMatch, r: MatchTarget): boolean {
  if (m === "*") return true;
  if (typeof m === "string") return m === r.op;
  if (m.op && m.op !== r.op) return false;
  if (m.method && m.method.toUpperCase() !== r.method) return false;
  if (m.bucket !== undefined && m.bucket !== r.bucket) return false;
  if (m.key !== undefined) {
    if (r.key === undefined) return false;
    if (typeof m.key === "string" ? m.key !== r.key : !m.key.test(r.key)) return false;
  }
  return true;
}

interface Rule<T> {
  match: S3RequestMatch;
  value: T;
  remaining: number;
}

/** A list of counted rules; `take` consumes one use of the first rule that matches. */
export class RuleList<T> {
  private rules: Rule<T>[] = [];

  add(match: S3RequestMatch, value: T, count: number): RuleHandle {
    const rule: Rule<T> = { match, value, remaining: count };
    this.rules.push(rule);
    return {
      cancel: () => {
        this.rules = this.rules.filter((r) => r !== rule);
      },
    };
  }

  take(target: MatchTarget): T | undefined {
    const rule = this.rules.find((r) => r.remaining > 0 && matches(r.match, target));
    if (!rule) return undefined;
    rule.remaining--;
    if (rule.remaining <= 0) this.rules = this.rules.filter((r) => r !== rule);
    return rule.value;
  }

  clear(): void {
    this.rules = [];
  }
}

export function defaultCode(status: number): string {
  if (status === 503) return "SlowDown";
  if (status === 500) return "InternalError";
  if (status === 404) return "NoSuchKey";
  if (status === 403) return "AccessDenied";
  return "InvalidRequest";
}
