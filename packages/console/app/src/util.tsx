/** Shared bits of the pages: data loading, phase badges, times, errors. */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.js";
import { phaseStyle } from "./phases.js";

export interface Loaded<T> {
  data?: T;
  error?: unknown;
  loading: boolean;
  reload(): void;
}

/** Run `fn` when `deps` change (and every `pollMs` if given); keeps the last data while reloading. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], pollMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const gen = useRef(0);
  const run = useCallback(() => {
    const mine = ++gen.current;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => mine === gen.current && setState({ data, loading: false }),
      (error) => mine === gen.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, deps);
  useEffect(() => {
    run();
    if (!pollMs) return;
    const t = setInterval(() => {
      if (document.visibilityState !== "hidden") run();
    }, pollMs);
    return () => clearInterval(t);
  }, [run, pollMs]);
  return { ...state, reload: run };
}

export function PhaseBadge({ phase, small }: { phase: string | undefined; small?: boolean }) {
  const s = phaseStyle(phase);
  return (
    <span
      class={`phase${small ? " small" : ""}`}
      style={{ background: s.color, color: s.ink }}
      data-phase={phase ?? "not-ready"}
    >
      <span aria-hidden="true">{s.glyph}</span> {s.label}
    </span>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <div class="errorbox" role="alert">
      <strong>{e instanceof ApiError ? e.code : "Error"}</strong>: {e.message ?? String(error)}
      {e instanceof ApiError && e.hint && <div class="small">{e.hint}</div>}
    </div>
  );
}

export const fmtTime = (ms?: number) => (ms ? new Date(ms).toLocaleString() : "—");

export function fmtDuration(ms?: number): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function Json({ value }: { value: unknown }) {
  if (value === undefined) return <span class="muted">—</span>;
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function Section({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="section">
      <h3>{title}</h3>
      {children}
    </section>
  );
}

export const scopePath = (p: string, d: string) =>
  `/projects/${encodeURIComponent(p)}/domains/${encodeURIComponent(d)}`;
