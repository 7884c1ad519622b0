/**
 * Kubernetes resource quantities (`500m`, `2`, `1.5`, `1Gi`, `512Mi`, `1e3`): checked
 * before a pod is created, so a typo fails the task at once with a message naming the
 * field instead of as a 422 from the API server (or, worse, a pod that never fits).
 */

// The API server's grammar: a signed decimal number, then a binary suffix (Ki…Ei), a
// decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent.
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** The value of a quantity as a number (cores, bytes…), or undefined when it is not a valid quantity. */
export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === "number") return Number.isFinite(q) ? q : undefined;
  const m = QUANTITY.exec(q.trim());
  if (!m || q.trim() !== q) return undefined;
  const n = Number(m[1]);
  const suffix = m[2] ?? "";
  if (/^[eE]/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  return n * SUFFIX[suffix];
}

/** A quantity in its canonical string form (numbers are written as they are). */
export function quantityString(q: string | number): string {
  return typeof q === "number" ? String(q) : q;
}

/** True when `q` is a valid, non-negative quantity. */
export function isQuantity(q: unknown): q is string | number {
  if (typeof q !== "string" && typeof q !== "number") return false;
  const v = parseQuantity(q);
  return v !== undefined && v >= 0;
}
