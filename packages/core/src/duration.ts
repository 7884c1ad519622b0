import { ErrorCodes, TernError } from "./errors.js";

/** A duration: milliseconds, or text such as "500ms", "30s", "10m", "1h30m", "2d". */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d"}${string}`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(d: Duration | string, what = "duration"): number {
  if (typeof d === "number") {
    if (!Number.isFinite(d) || d < 0) throw badDuration(d, what);
    return d;
  }
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(d); m; m = re.exec(d)) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== d.length) throw badDuration(d, what);
  return Math.round(total);
}

function badDuration(d: unknown, what: string): TernError {
  return new TernError(ErrorCodes.DEFINITION, `invalid ${what}: ${JSON.stringify(d)}`, {
    hint: 'give milliseconds or text like "500ms", "30s", "10m", "1h30m"',
  });
}
