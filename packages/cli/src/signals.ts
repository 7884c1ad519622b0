/**
 * Gates in local runs: `--signal <gate>=<value>` answers them up front; in an
 * interactive terminal the run asks; otherwise a gate without a signal fails
 * with a message saying how to give one.
 */
import { createInterface } from "node:readline/promises";
import type { SignalAnswer, SignalProvider, SignalRequest } from "@tern/core";
import type { Core } from "./load.js";

/** `name=value` pairs: values are JSON when they parse as JSON (true, 3, {"a":1}), else strings. */
export function parseSignalFlags(core: Core, pairs: readonly string[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    if (i <= 0) {
      throw new core.TernError(
        core.ErrorCodes.USAGE,
        `--signal ${JSON.stringify(pair)} is not <gate>=<value>`,
        {
          hint: "e.g. --signal review=true, --signal threshold=0.8",
        },
      );
    }
    out.set(pair.slice(0, i), parseValue(pair.slice(i + 1)));
  }
  return out;
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const YES = new Set([true, "true", "yes", "y", "approve", "approved", "ok"]);
const NO = new Set([false, "false", "no", "n", "reject", "rejected"]);

/** The answer a signal value gives an approve gate, or undefined when it says neither. */
function approval(v: unknown): SignalAnswer | undefined {
  const k = typeof v === "string" ? v.toLowerCase() : v;
  if (YES.has(k as never)) return { approved: true, by: "cli" };
  if (NO.has(k as never)) return { approved: false, by: "cli" };
  return undefined;
}

/** A gate's name as `--signal` names it: the node id without its parents (`dyn/review` → `review`). */
function gateName(node: string): string {
  return node.slice(node.lastIndexOf("/") + 1);
}

export interface PromptHooks {
  /** The terminal to ask on, when there is one. */
  interactive: boolean;
  pause(): void;
  resume(): void;
}

export function signalProvider(core: Core, given: Map<string, unknown>, hooks: PromptHooks): SignalProvider {
  // Prompts one at a time, in the order gates open.
  let queue: Promise<unknown> = Promise.resolve();
  return async (req: SignalRequest) => {
    const name = given.has(req.node) ? req.node : gateName(req.node);
    if (given.has(name)) {
      const v = given.get(name);
      if (req.kind === "input") return { value: v, by: "cli" };
      const a = approval(v);
      if (a) return a;
      throw new core.TernError(
        core.ErrorCodes.INPUT_INVALID,
        `--signal ${name}=${JSON.stringify(v)} neither approves nor rejects gate "${req.node}"`,
        {
          hint: `use --signal ${name}=true to approve or =false to reject`,
        },
      );
    }
    if (!hooks.interactive) {
      throw new core.TernError(
        core.ErrorCodes.SIGNAL_MISSING,
        `gate "${req.node}" is waiting for ${req.kind === "approve" ? "an approval" : "a value"}`,
        {
          hint:
            req.kind === "approve"
              ? `run again with --signal ${name}=true (or =false to reject)`
              : `run again with --signal ${name}=<value>`,
          details: { node: req.node },
        },
      );
    }
    const ask = queue.then(() => prompt(core, req, name, hooks));
    queue = ask.catch(() => undefined);
    return ask;
  };
}

async function prompt(
  core: Core,
  req: SignalRequest,
  name: string,
  hooks: PromptHooks,
): Promise<SignalAnswer> {
  hooks.pause();
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const onAbort = () => rl.close();
  req.signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (req.kind === "approve") {
        const preview = JSON.stringify(req.value);
        const answer = await rl.question(
          `gate ${name}: approve ${preview && preview.length > 200 ? `${preview.slice(0, 197)}...` : preview}? [y/n] `,
        );
        const a = approval(answer.trim());
        if (a) return { ...a, by: "terminal" };
        process.stderr.write("  answer y (approve) or n (reject)\n");
      } else {
        const type = core.describeSchema(req.schema as never);
        const answer = await rl.question(`gate ${name} (${type}): `);
        const value = parseValue(answer.trim());
        const problem = core.validateValue(value, req.schema);
        if (!problem) return { value, by: "terminal" };
        process.stderr.write(
          `  ${problem.path ? `${problem.path} ` : ""}${problem.message}; expected ${type}\n`,
        );
      }
    }
  } finally {
    req.signal.removeEventListener("abort", onAbort);
    rl.close();
    hooks.resume();
  }
}
