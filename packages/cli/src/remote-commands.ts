/**
 * The control-plane commands of `tern`: `serve`, `register`, `executions`,
 * `signal`, `launchplans`, and the `--remote` options of `run`. Each command
 * module loads only when its command runs.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { createIo } from "./io.js";

type OnExit = (code: number) => void;

function port(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535)
    throw new InvalidArgumentError("expected a port number (0-65535; 0 picks a free one)");
  return Number(v);
}

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError("expected a whole number ≥ 1");
  return Number(v);
}

const SERVER_ENV = `
The server is --server, else $TERN_SERVER, else http://127.0.0.1:8080; the token is
--token, else $TERN_TOKEN (needed when the server has tokens). Project and domain
default to default/development.`;

/** --server, --token, --project, --domain and --json. */
function remoteOptions(cmd: Command, json = true): Command {
  cmd
    .option("--server <url>", "the Tern server (default: $TERN_SERVER, else http://127.0.0.1:8080)")
    .option("--token <token>", "API token (default: $TERN_TOKEN)")
    .option("--project <name>", "project", "default")
    .option("--domain <name>", "domain: development, staging or production", "development");
  if (json) cmd.option("--json", "print the result as one JSON object");
  return cmd;
}

const SERVE_HELP = `
With no flags this is the embedded sandbox: SQLite in .tern/tern.db, blobs in
.tern/blobs, tasks in local worker processes, on 127.0.0.1:8080, no tokens.
./tern.config.ts is loaded when present (plugins, backendConfig, tokens, projects).
Binding another address than loopback needs tokens (--tokens or the config).
The banner goes to stderr; stdout carries JSON log lines. Ctrl-C stops it;
unfinished executions resume at the next start.

Examples:
  $ tern serve
  $ tern serve --port 0                               a free port (see the banner)
  $ tern serve --db postgres://tern:pw@db:5432/tern --storage s3://bucket/tern \\
      --host 0.0.0.0 --tokens tokens.json
  $ tern serve --config deploy/tern.config.ts --log-level warn
`;

const REGISTER_HELP = `
Every exported workflow, task (as a one-node workflow of its name) and launch
plan is compiled for the project and domain and uploaded with its code bundle.
Versions are derived from content unless --version is given; the same content
again is a no-op, changed content under a taken version is refused (exit 2)
with what differs.
${SERVER_ENV}

Examples:
  $ tern register examples/hello.ts
  $ tern register flows.ts --project ml --domain production --version v1.4.0
  $ tern register flows.ts --server https://tern.internal --json
`;

const EXECUTIONS_HELP = `${SERVER_ENV}

Examples:
  $ tern executions list --phase running,queued
  $ tern executions get x1b2c3d4e5
  $ tern executions logs x1b2c3d4e5 train --attempt 2
  $ tern executions terminate x1b2c3d4e5 --reason "wrong data"
  $ tern executions relaunch x1b2c3d4e5
  $ tern executions recover x1b2c3d4e5          reuse the outputs of its succeeded nodes
`;

const SIGNAL_HELP = `
Approve gates take approve|yes|true or reject|no|false; input gates take JSON
(or plain text). A gate is answered once.
${SERVER_ENV}

Examples:
  $ tern signal x1b2c3d4e5 review=approve
  $ tern signal x1b2c3d4e5 review=reject --reason "metrics regressed"
  $ tern signal x1b2c3d4e5 threshold=0.8
  $ tern signal x1b2c3d4e5 config='{"lr": 0.1}'
`;

const LAUNCHPLANS_HELP = `${SERVER_ENV}

Examples:
  $ tern launchplans list
  $ tern launchplans activate nightly              the latest version
  $ tern launchplans activate nightly --version 3f9a2c
  $ tern launchplans deactivate nightly
`;

const RUN_REMOTE_HELP = `
Remote runs:
  --remote registers the workflow and its code on a Tern server, starts the
  execution there, prints its console URL and follows it like a local run
  (same output, same --json object, same exit status). Ctrl-C terminates it on
  the server. --signal answers top-level gates as soon as the execution exists
  (otherwise answer them with \`tern signal\`); --recover <id> recovers a
  server execution. File inputs must be paths the server can read.

  $ tern run examples/hello.ts hello --name Ada --remote
  $ tern run flows.ts train --remote --server http://tern:8080 --project ml --json
  $ tern run flows.ts deploy --remote --signal review=true
`;

/** Add the control-plane commands to the `tern` program. */
export function addRemoteCommands(program: Command, onExit: OnExit, version: string): void {
  // `tern register f.ts --version v1` must reach register, not print tern's own version:
  // program options (--version, --help) count only before the command name.
  program.enablePositionalOptions();
  const run = program.commands.find((c) => c.name() === "run");
  if (run) {
    run
      .option("--remote", "run on a Tern server instead of this machine (see below)")
      .option(
        "--server <url>",
        "with --remote: the server (default: $TERN_SERVER, else http://127.0.0.1:8080)",
      )
      .option("--token <token>", "with --remote: API token (default: $TERN_TOKEN)")
      .option("--project <name>", "with --remote: project (default: default)")
      .option("--domain <name>", "with --remote: domain (default: development)")
      .addHelpText("after", RUN_REMOTE_HELP);
  }

  program
    .command("serve")
    .description("Start the Tern control plane (API, executor) on this machine.")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .addOption(new Option("--port <port>", "port to listen on (0: a free one)").argParser(port).default(8080))
    .option("--data-dir <dir>", "where the sandbox keeps its database and blobs", ".tern")
    .option("--db <url>", "sqlite (<data-dir>/tern.db), sqlite:<path> or postgres://user:pw@host:5432/db")
    .option(
      "--storage <dir|url>",
      "blob storage: a directory or s3://bucket/prefix (default: <data-dir>/blobs)",
    )
    .option("--config <file>", "server config (default: ./tern.config.ts when present)")
    .option("--tokens <file>", "JSON file of API tokens and their grants")
    .addOption(new Option("--backend <kind>", "where TypeScript tasks run").choices(["process", "inline"]))
    .addOption(new Option("--workers <n>", "worker processes of the process backend").argParser(positiveInt))
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["trace", "debug", "info", "warn", "error", "silent"])
        .default("info"),
    )
    .addHelpText("after", SERVE_HELP)
    .action(async (opts) => {
      const { serveCommand } = await import("./commands/serve.js");
      onExit(await serveCommand({ ...opts, version }, createIo(false)));
    });

  remoteOptions(
    program
      .command("register")
      .description("Register a file's workflows, tasks and launch plans (and their code) on a Tern server.")
      .argument("<file>", "the .ts or .js file that defines them")
      .option("--version <version>", "one version for everything (default: derived from content)"),
  )
    .addHelpText("after", REGISTER_HELP)
    .action(async (file: string, opts) => {
      const { registerCommand } = await import("./commands/register.js");
      const json = opts.json === true;
      onExit(await registerCommand(file, { ...opts, json }, createIo(json)));
    });

  const executions = program
    .command("executions")
    .description("List, inspect and steer executions on a Tern server.")
    .addHelpText("after", EXECUTIONS_HELP);
  remoteOptions(
    executions
      .command("list")
      .description("List executions, newest first.")
      .option(
        "--phase <phases>",
        "only these phases, comma-separated (queued,running,succeeded,failed,aborted)",
      )
      .option("--workflow <name>", "only executions of this workflow")
      .option("--after <time>", "created at or after (ISO date or epoch ms)")
      .option("--before <time>", "created before (ISO date or epoch ms)")
      .addOption(new Option("--limit <n>", "how many (at most 500)").argParser(positiveInt).default(20)),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ tern executions list\n  $ tern executions list --phase failed --workflow train --limit 50\n",
    )
    .action(async (opts) => {
      const { listExecutions } = await import("./commands/executions.js");
      const json = opts.json === true;
      onExit(await listExecutions({ ...opts, json }, createIo(json)));
    });
  remoteOptions(
    executions
      .command("get")
      .description("Show an execution and its nodes.")
      .argument("<execution>", "execution id"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ tern executions get x1b2c3d4e5\n  $ tern executions get x1b2c3d4e5 --json | jq .outputs\n",
    )
    .action(async (id: string, opts) => {
      const { getExecution } = await import("./commands/executions.js");
      const json = opts.json === true;
      onExit(await getExecution(id, { ...opts, json }, createIo(json)));
    });
  remoteOptions(
    executions
      .command("logs")
      .description("Print the log of a node's attempt (the last one by default).")
      .argument("<execution>", "execution id")
      .argument("<node>", "node id (sub/node inside subworkflows)")
      .addOption(new Option("--attempt <n>", "which attempt").argParser(positiveInt)),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ tern executions logs x1b2c3d4e5 train\n  $ tern executions logs x1b2c3d4e5 train --attempt 1\n",
    )
    .action(async (id: string, node: string, opts) => {
      const { executionLogs } = await import("./commands/executions.js");
      const json = opts.json === true;
      onExit(await executionLogs(id, node, { ...opts, json }, createIo(json)));
    });
  remoteOptions(
    executions
      .command("terminate")
      .description("Stop an execution.")
      .argument("<execution>", "execution id")
      .option("--reason <text>", "why (recorded with the execution)"),
  )
    .addHelpText("after", '\nExamples:\n  $ tern executions terminate x1b2c3d4e5 --reason "wrong inputs"\n')
    .action(async (id: string, opts) => {
      const { terminateExecution } = await import("./commands/executions.js");
      const json = opts.json === true;
      onExit(await terminateExecution(id, { ...opts, json }, createIo(json)));
    });
  for (const [how, what] of [
    ["relaunch", "Run an execution's workflow version again with the same inputs, as a new execution."],
    ["recover", "Run a failed or aborted execution again, reusing the outputs of its succeeded nodes."],
  ] as const) {
    remoteOptions(executions.command(how).description(what).argument("<execution>", "execution id"))
      .addHelpText("after", `\nExamples:\n  $ tern executions ${how} x1b2c3d4e5\n`)
      .action(async (id: string, opts) => {
        const { rerunExecution } = await import("./commands/executions.js");
        const json = opts.json === true;
        onExit(await rerunExecution(how, id, { ...opts, json }, createIo(json)));
      });
  }

  remoteOptions(
    program
      .command("signal")
      .description("Answer a gate of a running execution.")
      .argument("<execution>", "execution id")
      .argument("<gate=value>", "the gate's node id and the answer")
      .option("--reason <text>", "why (recorded with the signal)"),
  )
    .addHelpText("after", SIGNAL_HELP)
    .action(async (execution: string, assignment: string, opts) => {
      const { signalCommand } = await import("./commands/signal.js");
      const json = opts.json === true;
      onExit(await signalCommand(execution, assignment, { ...opts, json }, createIo(json)));
    });

  const lps = program
    .command("launchplans")
    .description("List, activate and deactivate launch plans on a Tern server.")
    .addHelpText("after", LAUNCHPLANS_HELP);
  remoteOptions(
    lps
      .command("list")
      .description("List launch plans (or the versions of one), newest first.")
      .argument("[name]", "only this launch plan's versions"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ tern launchplans list\n  $ tern launchplans list nightly --json\n",
    )
    .action(async (name: string | undefined, opts) => {
      const { listLaunchPlans } = await import("./commands/launchplans.js");
      const json = opts.json === true;
      onExit(await listLaunchPlans(name, { ...opts, json }, createIo(json)));
    });
  remoteOptions(
    lps
      .command("activate")
      .description("Make a version the active one (its schedule runs).")
      .argument("<name>", "launch plan name")
      .option("--version <version>", "which version (default: the latest)"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ tern launchplans activate nightly\n  $ tern launchplans activate nightly --version 3f9a2c\n",
    )
    .action(async (name: string, opts) => {
      const { activateLaunchPlan } = await import("./commands/launchplans.js");
      const json = opts.json === true;
      onExit(await activateLaunchPlan(name, { ...opts, json }, createIo(json)));
    });
  remoteOptions(
    lps
      .command("deactivate")
      .description("Deactivate a launch plan (its schedule stops).")
      .argument("<name>", "launch plan name"),
  )
    .addHelpText("after", "\nExamples:\n  $ tern launchplans deactivate nightly\n")
    .action(async (name: string, opts) => {
      const { deactivateLaunchPlan } = await import("./commands/launchplans.js");
      const json = opts.json === true;
      onExit(await deactivateLaunchPlan(name, { ...opts, json }, createIo(json)));
    });
}
