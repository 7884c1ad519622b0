/** `tern-fake ray`: the fake Ray dashboard (Jobs REST API); entrypoints run as local processes. */
import { startFakeRay } from "../fakes/ray/index.js";
import { type FakeService, int } from "./services.js";

export const rayService: FakeService = {
  name: "ray",
  summary: "Ray dashboard Jobs API (entrypoints run as local processes, logs, stop)",
  usage: [
    "--port N             port on 127.0.0.1 (default 0 = any free port; Ray's own is 8265)",
    "--token TOKEN        require this bearer token",
    "--pending-ms N       how long a new job stays PENDING (default 10)",
  ],
  options: {
    port: { type: "string" },
    token: { type: "string" },
    "pending-ms": { type: "string" },
  },
  async start(values) {
    const fake = await startFakeRay({
      port: int(values.port, "port", 0),
      token: values.token as string | undefined,
      pendingMs: int(values["pending-ms"], "pending-ms", 10),
    });
    return {
      describe: () =>
        [
          `Fake Ray dashboard listening on ${fake.url}`,
          "Connect with:",
          `  curl ${fake.url}/api/jobs/ -H 'content-type: application/json' -d '{"entrypoint":"echo hello"}'`,
          `  RAY_ADDRESS=${fake.url} ray job submit -- echo hello`,
          `  ray({ address: ${JSON.stringify(fake.url)} })   // @tern/plugin-ray in tern.config.ts`,
        ].join("\n"),
      close: () => fake.close(),
    };
  },
};
