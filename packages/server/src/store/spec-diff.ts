/**
 * What changed between two versions of a spec, as JSON paths a person can read
 * in a conflict message (`interface.inputs.name.schema`, `metadata.retries.user`).
 */

export interface SpecDiffOptions {
  /** Paths stop descending at this many segments. @default 4 */
  maxDepth?: number;
  /** At most this many paths are listed. @default 10 */
  maxPaths?: number;
}

export interface SpecDiff {
  /** Changed, added or removed paths, in document order (the stored one's first). */
  paths: string[];
  /** Paths left out because of `maxPaths`. */
  more: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => sameJson(a[k], b[k]));
  }
  return false;
}

function join(prefix: string, key: string | number): string {
  if (typeof key === "number") return `${prefix}[${key}]`;
  const safe = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return prefix ? `${prefix}.${safe}` : safe;
}

/**
 * The paths where `before` and `after` differ. Objects and arrays are entered
 * up to `maxDepth` segments; below that a whole subtree counts as one change.
 */
export function diffSpecs(before: unknown, after: unknown, opts: SpecDiffOptions = {}): SpecDiff {
  const maxDepth = opts.maxDepth ?? 4;
  const maxPaths = opts.maxPaths ?? 10;
  const paths: string[] = [];
  const walk = (a: unknown, b: unknown, at: string, depth: number): void => {
    if (sameJson(a, b)) return;
    if (depth < maxDepth && isObject(a) && isObject(b)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
      for (const k of keys) walk(a[k], b[k], join(at, k), depth + 1);
      return;
    }
    if (depth < maxDepth && Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
      for (let i = 0; i < a.length; i++) walk(a[i], b[i], join(at, i), depth + 1);
      return;
    }
    paths.push(at || "(root)");
  };
  walk(before, after, "", 0);
  return { paths: paths.slice(0, maxPaths), more: Math.max(0, paths.length - maxPaths) };
}

/** `a.b, c.d and 3 more`. */
export function describeDiff(diff: SpecDiff): string {
  return diff.paths.join(", ") + (diff.more ? ` and ${diff.more} more` : "");
}
