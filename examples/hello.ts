/**
 * The smallest Tern program: one cached task inside a typed workflow.
 *
 *   pnpm tern run examples/hello.ts hello --name Ada
 */
import { task, workflow } from "@tern/core";
import { z } from "zod";

export const sayHello = task(
  {
    name: "say_hello",
    inputs: { name: z.string() },
    output: z.string(),
    cache: true,
    retries: 2,
    timeout: "1m",
  },
  async ({ name }, ctx) => {
    ctx.logger.info(`greeting ${name}`);
    return `Hello, ${name}!`;
  },
);

export const hello = workflow(
  { name: "hello", inputs: { name: z.string().default("world") }, output: z.string() },
  ({ name }) => sayHello({ name }),
);
