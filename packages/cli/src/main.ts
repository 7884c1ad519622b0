/**
 * The `tern` program: commands, options, help and error handling. Commands are
 * imported only when they run, so `tern --help` does not load the engine.
 */
import * as fs from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { describeError, EXIT_OK, EXIT_USAGE, exitCodeFor, jsonErrorDocument } from "./errors.js";
import { createIo } from "./io.js";
import { addRemoteCommands } from "./remote-commands.js";
import { Timing } from "./timing.js";

/** The CLI's version, from its package.json. */
export function version(): string {
  try {
    return (
      JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
    ).version;
  } catch {
    return "0.0.0";
  }
}

const ROOT_EXAMPLES = `
Examples:
  $ tern run examples/hello.ts hello --name Ada     run a workflow with an input
  $ tern run flows.ts train --epochs 3 --json        machine-readable outcome on stdout
  $ tern cache list                                  what the task cache holds
  $ tern cache clear say_hello                       forget one task's cached outputs

Exit status: 0 succeeded, 1 the execution failed or was aborted, 2 usage, load,
compile or input error. Set NO_COLOR to turn colour off, TERN_DEBUG=1 to see stacks
of unexpected errors, TERN_TIMING=1 to see where start-up time goes.
`;

const RUN_EXAMPLES = `
Inputs:
  Every workflow input is a flag, in its own name or kebab-case (max_depth: --max-depth).
  Values are parsed by the input's type: numbers and integers (--epochs 3), booleans
  (--verbose, --verbose false, --no-verbose), strings, JSON for objects and arrays
  (--cfg '{"lr": 0.1}', or repeat the flag for a list: --tag a --tag b), and a local
  path for file and directory inputs (--data ./train.csv). --inputs reads a JSON object;
  flags override its keys (inputs named like run's own options, e.g. json or backend,
  can only be given there). Leave out <workflow> to list what the file defines.

Examples:
  $ tern run examples/hello.ts hello
  $ tern run examples/hello.ts hello --name Ada
  $ tern run flows.ts train --inputs inputs.json --epochs 5
  $ tern run flows.ts train --backend process --workers 4
  $ tern run flows.ts say_hello --name Ada --json | jq .outputs
  $ tern run flows.ts train --no-cache          recompute every task
  $ tern run flows.ts release --signal review=true           approve the gate "review"
  $ tern run flows.ts train --recover x1a2b3c4d5e6f7        reuse what succeeded, run the rest

Gates:
  gate.approve and gate.input wait for a signal. In a terminal the run asks for it;
  elsewhere give it with --signal <gate>=<value> (JSON values parse as JSON:
  true, 0.8, {"a":1}); a gate with no signal fails and says how to give one.

Each execution is recorded in <project>/.tern/executions/<id>/ (events.ndjson,
spec.json, inputs.json, result.json, logs/). Ctrl-C aborts the execution; press it
again to exit at once.
`;

const CACHE_EXAMPLES = `
Examples:
  $ tern cache list
  $ tern cache list --task say_hello --json
  $ tern cache clear say_hello
  $ tern cache clear --all
`;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError("expected a whole number ≥ 1");
  return Number(v);
}

/** Build the program; `onExit` receives the exit status a command decides. */
export function buildProgram(onExit: (code: number) => void, timing = new Timing()): Command {
  const program = new Command("tern")
    .description("Run typed, cached, versioned workflows written in TypeScript.")
    .version(version(), "-v, --version", "print the version")
    .helpOption("-h, --help", "show help (every command has its own: tern <command> --help)")
    .showHelpAfterError("(add --help for usage and examples)")
    .addHelpText("after", ROOT_EXAMPLES);

  program
    .command("run")
    .description("Run a workflow or task from a TypeScript or JavaScript file on this machine.")
    .argument("<file>", "the .ts or .js file that defines it (bundled on the fly, no build step)")
    .argument("[workflow]", "workflow name, task name or export name")
    .addOption(new Option("--inputs <file>", "JSON file with an object of inputs; flags override its keys"))
    .addOption(
      new Option(
        "--backend <kind>",
        "where TypeScript tasks run: inline (in this process, the default), process (pooled worker processes), or a plugin from tern.config.ts (e.g. k8s)",
      ),
    )
    .addOption(
      new Option(
        "--config <file>",
        "plugins and backend mapping (default: tern.config.ts in the project root, if any)",
      ),
    )
    .addOption(
      new Option(
        "--workers <n>",
        "worker processes of the process backend (default: number of CPUs)",
      ).argParser(positiveInt),
    )
    .option("--json", "print one JSON object with the outcome on stdout, and nothing else there")
    .option("--no-cache", "neither read nor write the task cache (.tern/cache)")
    .option(
      "--signal <gate=value>",
      "answer a gate: --signal review=true, --signal threshold=0.8 (repeatable)",
      collect,
      [],
    )
    .option(
      "--recover <execution>",
      "rerun a failed local execution: reuse its succeeded nodes, run the rest",
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText("after", RUN_EXAMPLES)
    .action(async (file: string, workflow: string | undefined, opts: RunFlags, cmd: Command) => {
      // Declared arguments come first in cmd.args; what follows are the input flags.
      let rest = cmd.args.slice(workflow === undefined ? 1 : 2);
      if (workflow?.startsWith("-")) {
        rest = cmd.args.slice(1);
        workflow = undefined;
      }
      const { runCommand } = await import("./commands/run.js");
      const json = opts.json === true;
      onExit(
        await runCommand(file, workflow, rest, { ...opts, json, version: version() }, createIo(json), timing),
      );
    });

  const cache = program
    .command("cache")
    .description("Inspect and clear the local task cache (<project>/.tern/cache).")
    .addHelpText("after", CACHE_EXAMPLES);
  cache
    .command("list")
    .description(
      "List cached task outputs: task, cache version, created, size and the execution/node that produced them.",
    )
    .option("--task <name>", "only this task's entries")
    .option("--json", "print the entries as one JSON object")
    .addHelpText("after", "\nExamples:\n  $ tern cache list\n  $ tern cache list --task say_hello --json\n")
    .action(async (opts: { task?: string; json?: boolean }) => {
      const { cacheList } = await import("./commands/cache.js");
      const json = opts.json === true;
      onExit(await cacheList({ task: opts.task, json }, createIo(json)));
    });
  cache
    .command("clear")
    .description("Remove cached outputs of one task (or all with --all); the next run recomputes them.")
    .argument("[task]", "task name")
    .option("--all", "remove every entry")
    .option("--json", "print {removed: n} as JSON")
    .addHelpText("after", "\nExamples:\n  $ tern cache clear say_hello\n  $ tern cache clear --all\n")
    .action(async (task: string | undefined, opts: { all?: boolean; json?: boolean }) => {
      const { cacheClear } = await import("./commands/cache.js");
      const json = opts.json === true;
      onExit(await cacheClear(task, { all: opts.all === true, json }, createIo(json)));
    });

  addRemoteCommands(program, onExit, version());
  return program;
}

interface RunFlags {
  inputs?: string;
  backend?: string;
  config?: string;
  workers?: number;
  json?: boolean;
  cache: boolean;
  signal?: string[];
  recover?: string;
}

/**
 * Run the CLI with `argv` (without node and script); resolves to the exit status.
 * Errors are printed here: `error[CODE]: message` + hint for Tern's errors.
 */
export async function main(argv: readonly string[], timing = new Timing()): Promise<number> {
  let code = EXIT_OK;
  const json = argv.includes("--json");
  const program = buildProgram((c) => (code = c), timing);
  program.exitOverride();
  for (const cmd of [program, ...allCommands(program)]) {
    cmd.exitOverride();
    // Commander's own usage errors get the same shape as Tern's.
    cmd.configureOutput({
      outputError: (str, write) => write(`error[TERN_E_USAGE]: ${str.replace(/^error: /, "")}`),
    });
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return EXIT_OK;
      if (json && e.code !== "commander.help") {
        const message = e.message.replace(/^error: /, "");
        await createIo(true).json(
          jsonErrorDocument({ name: "TernError", code: "TERN_E_USAGE", message, kind: "user" }),
        );
      }
      return EXIT_USAGE;
    }
    process.stderr.write(describeError(e));
    if (json) await createIo(true).json(jsonErrorDocument(e));
    return exitCodeFor(e);
  }
}

function allCommands(c: Command): Command[] {
  return c.commands.flatMap((x) => [x, ...allCommands(x)]);
}
