/**
 * Small text helpers shared by the renderers: phase glyphs, ANSI styles,
 * durations, width-aware truncation and bounded pretty JSON.
 */

/** An ANSI style applied to a piece of text; identity when colour is off. */
export type Style = (text: string) => string;

/** The few styles the CLI uses. */
export interface Palette {
  green: Style;
  red: Style;
  yellow: Style;
  cyan: Style;
  dim: Style;
  bold: Style;
}

const plain: Style = (s) => s;
const sgr =
  (open: number, close: number): Style =>
  (s) =>
    `\x1b[${open}m${s}\x1b[${close}m`;

/**
 * Colours for a stream. Colour only decorates: every phase is also spelled out,
 * so output stays readable with `NO_COLOR`, in logs and for colour-blind users.
 */
export function palette(enabled: boolean): Palette {
  if (!enabled) return { green: plain, red: plain, yellow: plain, cyan: plain, dim: plain, bold: plain };
  return {
    green: sgr(32, 39),
    red: sgr(31, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
    dim: sgr(2, 22),
    bold: sgr(1, 22),
  };
}

/** Whether to colour a stream: a TTY, unless `NO_COLOR` is set (or `FORCE_COLOR` asks for it). */
export function colorEnabled(stream: { isTTY?: boolean }): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true;
}

const GLYPHS: Record<string, string> = {
  "not-ready": "·",
  queued: "○",
  "waiting-for-resources": "…",
  initializing: "◌",
  running: "●",
  retrying: "↻",
  succeeded: "✓",
  failed: "✗",
  skipped: "–",
  aborted: "■",
};

/** The glyph shown before a phase's name. */
export function phaseGlyph(phase: string): string {
  return GLYPHS[phase] ?? "?";
}

/** The colour of a phase. */
export function phaseStyle(phase: string, p: Palette): Style {
  switch (phase) {
    case "succeeded":
      return p.green;
    case "failed":
      return p.red;
    case "aborted":
    case "retrying":
      return p.yellow;
    case "running":
    case "initializing":
      return p.cyan;
    default:
      return p.dim;
  }
}

/** `850ms`, `1.24s`, `2m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** `12 B`, `3.4 KiB`, `1.2 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Cut `text` to `width` characters, marking the cut with `…`. */
export function truncate(text: string, width: number): string {
  if (width <= 0) return "";
  if (text.length <= width) return text;
  return width === 1 ? "…" : `${text.slice(0, width - 1)}…`;
}

/** Pad to a width (never cutting). */
export function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** Result of {@link boundedJson}. */
export interface BoundedJson {
  text: string;
  /** True when lines or characters were left out. */
  truncated: boolean;
}

/**
 * Pretty JSON of a value, bounded so that a huge output cannot flood the
 * terminal: at most `maxLines` lines and `maxChars` characters.
 */
export function boundedJson(value: unknown, maxLines = 40, maxChars = 4000): BoundedJson {
  const full = JSON.stringify(value === undefined ? null : value, null, 2) ?? "null";
  let lines = full.split("\n");
  let truncated = false;
  if (lines.length > maxLines) {
    lines = lines.slice(0, maxLines);
    truncated = true;
  }
  let text = lines.join("\n");
  if (text.length > maxChars) {
    text = text.slice(0, maxChars);
    truncated = true;
  }
  return { text, truncated };
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest candidate to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}
