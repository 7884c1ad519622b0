#!/usr/bin/env node
/**
 * `tern-fake <service> [options]`: runs one of the testkit's loopback fakes until Ctrl-C, for
 * trying a plugin by hand or pointing kubectl at it.
 */
import { parseArgs } from "node:util";
import { SERVICES } from "../cli/services.js";

function help(): string {
  const width = Math.max(...SERVICES.map((s) => s.name.length));
  return [
    "Usage: tern-fake <service> [options]",
    "",
    "Starts a loopback fake of an external service on 127.0.0.1 and runs until Ctrl-C.",
    "",
    "Services:",
    ...SERVICES.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    "",
    "Run `tern-fake <service> --help` for the service's options.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return name ? 0 : 2;
  }
  const service = SERVICES.find((s) => s.name === name);
  if (!service) {
    console.error(`tern-fake: unknown service "${name}"\n\n${help()}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { ...service.options, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (err) {
    console.error(`tern-fake ${name}: ${(err as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log(
      [
        `Usage: tern-fake ${name} [options]`,
        "",
        service.summary,
        "",
        "Options:",
        ...service.usage.map((u) => `  ${u}`),
      ].join("\n"),
    );
    return 0;
  }
  // Install the handlers before announcing readiness: a signal that arrives before Node has a
  // listener kills the process outright, skipping cleanup.
  const stop = new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  const running = await service.start(values);
  console.log(running.describe());
  console.log("Press Ctrl-C to stop.");
  await stop;
  await running.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`tern-fake: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  },
);
