/** Small helpers shared by the fake's modules. */
import { randomBytes } from "node:crypto";

/** RFC 3339 with second precision, as `creationTimestamp` and container times are written. */
export function rfc3339(date: Date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** RFC 3339 with nanoseconds, as the kubelet prefixes log lines with `timestamps=true`. */
export function rfc3339Nano(date: Date): string {
  return `${date.toISOString().slice(0, 23)}000000Z`;
}

// The API server's generateName alphabet: no vowels (no accidental words) and no look-alike characters.
const ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/** A 5-character `generateName` suffix. */
export function randomSuffix(length = 5): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** A fake container runtime id. */
export function containerId(): string {
  return `containerd://${randomBytes(32).toString("hex")}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function isTerminalPhase(phase: string | undefined): boolean {
  return phase === "Succeeded" || phase === "Failed";
}

/** JSON with object keys sorted: compares objects regardless of key order (clients reorder fields). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}
