/**
 * Phase colours from the Okabe-Ito palette (distinguishable with the common
 * forms of colour blindness), always shown with a text label and a glyph, so
 * colour is never the only signal.
 */
export interface PhaseStyle {
  label: string;
  color: string;
  /** Text colour on `color`. */
  ink: string;
  glyph: string;
}

const OKABE_ITO = {
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  bluishGreen: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  reddishPurple: "#CC79A7",
  grey: "#999999",
} as const;

const STYLES: Record<string, PhaseStyle> = {
  "not-ready": { label: "not ready", color: "#E6E6E6", ink: "#222", glyph: "○" },
  queued: { label: "queued", color: OKABE_ITO.skyBlue, ink: "#000", glyph: "…" },
  "waiting-for-resources": { label: "waiting", color: OKABE_ITO.skyBlue, ink: "#000", glyph: "…" },
  initializing: { label: "initializing", color: OKABE_ITO.skyBlue, ink: "#000", glyph: "…" },
  running: { label: "running", color: OKABE_ITO.blue, ink: "#fff", glyph: "▶" },
  retrying: { label: "retrying", color: OKABE_ITO.orange, ink: "#000", glyph: "↻" },
  succeeded: { label: "succeeded", color: OKABE_ITO.bluishGreen, ink: "#fff", glyph: "✓" },
  failed: { label: "failed", color: OKABE_ITO.vermillion, ink: "#fff", glyph: "✗" },
  skipped: { label: "skipped", color: OKABE_ITO.grey, ink: "#000", glyph: "⤼" },
  aborting: { label: "aborting", color: OKABE_ITO.reddishPurple, ink: "#000", glyph: "■" },
  aborted: { label: "aborted", color: OKABE_ITO.reddishPurple, ink: "#000", glyph: "■" },
  waiting: { label: "waiting for input", color: OKABE_ITO.yellow, ink: "#000", glyph: "?" },
};

export function phaseStyle(phase: string | undefined): PhaseStyle {
  return (
    STYLES[phase ?? "not-ready"] ?? { label: phase ?? "unknown", color: "#ccc", ink: "#000", glyph: "·" }
  );
}

export const TERMINAL = new Set(["succeeded", "failed", "aborted", "skipped"]);
export const EXECUTION_PHASES = ["queued", "running", "aborting", "succeeded", "failed", "aborted"];
