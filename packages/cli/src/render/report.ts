/**
 * What `tern run` prints when an execution ends: the summary line and outputs,
 * the failure report (failing node, code, message, hint, the user's own stack
 * frames, the tail of the node's log), and the `--json` document.
 */
import * as path from "node:path";
import type { ExecutionResult } from "@tern/core";
import { boundedJson, formatDuration, type Palette, phaseGlyph, phaseStyle } from "./format.js";

/** Log lines shown under a failure. */
export const LOG_TAIL_LINES = 20;

/** The one `--json` object: stable keys, nulls rather than missing keys. */
export function jsonReport(r: ExecutionResult): Record<string, unknown> {
  return {
    execution: r.id,
    phase: r.phase,
    outputs: r.phase === "succeeded" ? (r.outputs ?? null) : null,
    error: r.error
      ? { kind: r.error.kind, message: r.error.message, node: r.error.node ?? null, code: r.error.code }
      : null,
    // Dynamic children and subworkflow nodes are listed with their parent in the id
    // (`sweep/train-2`); a map is one node with its items as counts plus failures.
    nodes: r.nodes.map((n) => ({
      id: n.id,
      task: n.task,
      phase: n.phase,
      attempts: n.attempts,
      cached: n.cached,
      durationMs: n.durationMs,
      ...(n.recovered ? { recovered: true } : {}),
      ...(n.items
        ? {
            items: {
              total: n.items.total,
              succeeded: n.items.succeeded,
              failed: n.items.failed,
              cached: n.items.cached,
              failures: (n.items.failures ?? []).map((f) => ({
                index: f.index,
                code: f.error.code,
                message: f.error.message,
              })),
            },
          }
        : {}),
    })),
  };
}

/** What the summary needs beyond the result. */
export interface SummaryContext {
  workflow: string;
  /** Where the execution's records are, relative to the cwd. */
  recordsDir?: string;
}

/** The closing summary: phase, workflow, execution id, total time, node counts, outputs. */
export function summary(r: ExecutionResult, ctx: SummaryContext, p: Palette): string {
  const phase = phaseStyle(r.phase, p)(`${phaseGlyph(r.phase)} ${r.phase}`);
  const counts = new Map<string, number>();
  for (const n of r.nodes) {
    const k = n.cached ? "cached" : n.recovered ? "recovered" : n.phase;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const nodes = `${r.nodes.length} node${r.nodes.length === 1 ? "" : "s"}${counts.size ? `: ${[...counts].map(([k, c]) => `${c} ${k}`).join(", ")}` : ""}`;
  const lines = [
    `${phase} ${p.bold(ctx.workflow)}  execution ${r.id}  in ${formatDuration(r.endedAt - r.startedAt)}  (${nodes})`,
  ];
  if (r.phase === "succeeded") {
    const out = boundedJson(r.outputs ?? null);
    lines.push(
      out.text.includes("\n")
        ? `${p.dim("outputs:")}\n${indent(out.text, "  ")}`
        : `${p.dim("outputs:")} ${out.text}`,
    );
    if (out.truncated)
      lines.push(
        p.dim(
          `  … outputs truncated; all of them are in ${ctx.recordsDir ?? ".tern/executions"}/result.json`,
        ),
      );
  }
  if (ctx.recordsDir) lines.push(p.dim(`records: ${ctx.recordsDir}`));
  return `${lines.join("\n")}\n`;
}

/** What the failure report needs beyond the result. */
export interface FailureContext {
  /** Lines of the failing node's log (its last attempt). */
  log: readonly string[];
  /** The log file written for it, if any. */
  logFile?: string;
  projectRoot: string;
  cwd: string;
}

/** The failure report for stderr. Tern's own errors never show a stack; user exceptions show only the user's frames. */
export function failureReport(r: ExecutionResult, ctx: FailureContext, p: Palette): string {
  const err = r.error;
  if (!err) return "";
  const lines = [p.red(`error[${err.code}]: ${err.message}`)];
  const node = err.node ? r.nodes.find((n) => n.id === err.node) : undefined;
  if (node) {
    lines.push(
      `  node: ${node.id} (task ${node.task})${node.attempts > 1 ? `, attempt ${node.attempts}` : ""}${err.kind === "system" ? ", system error" : ""}`,
    );
  }
  if (err.hint) lines.push(`  hint: ${err.hint}`);
  const frames = userFrames(err.stack, ctx.projectRoot, ctx.cwd);
  if (frames.length) {
    lines.push("  stack (your code):");
    for (const f of frames) lines.push(`    ${f}`);
  }
  if (node) {
    const tail = ctx.log.slice(-LOG_TAIL_LINES);
    if (tail.length) {
      const more =
        ctx.log.length > tail.length
          ? `last ${tail.length} of ${ctx.log.length} lines`
          : `${tail.length} line${tail.length === 1 ? "" : "s"}`;
      lines.push(`  log of ${node.id}${node.attempts > 1 ? ` (attempt ${node.attempts})` : ""}, ${more}:`);
      for (const l of tail) lines.push(`    ${p.dim("│")} ${l}`);
    } else {
      lines.push(p.dim(`  (node ${node.id} logged nothing)`));
    }
    if (ctx.logFile) lines.push(p.dim(`  full log: ${ctx.logFile}`));
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Stack frames that point into the user's project (not node_modules, not Tern,
 * not Node's internals), with paths relative to the cwd.
 */
export function userFrames(stack: string | undefined, projectRoot: string, cwd: string, max = 8): string[] {
  if (!stack) return [];
  const out: string[] = [];
  for (const raw of stack.split("\n")) {
    const line = raw.trim();
    if (!line.startsWith("at ")) continue;
    const m = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?$/.exec(line);
    if (!m) continue;
    const file = m[1].replace(/^file:\/\//, "");
    if (!file.startsWith(projectRoot + path.sep) || file.includes(`${path.sep}node_modules${path.sep}`))
      continue;
    if (file.includes(`${path.sep}.tern${path.sep}`)) continue;
    const fn = /^at (?:async )?(.+?) \(/.exec(line)?.[1];
    out.push(`at ${fn ? `${fn} ` : ""}${path.relative(cwd, file)}:${m[2]}:${m[3]}`);
    if (out.length >= max) break;
  }
  return out;
}

function indent(text: string, by: string): string {
  return text
    .split("\n")
    .map((l) => by + l)
    .join("\n");
}
