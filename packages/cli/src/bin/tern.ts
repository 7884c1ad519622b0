#!/usr/bin/env node
/**
 * The `tern` executable. Kept tiny: everything else loads on demand.
 */
import { drain, ignoreBrokenPipes } from "../io.js";
import { main } from "../main.js";

ignoreBrokenPipes();

const code = await main(process.argv.slice(2));
// Exit explicitly once output is flushed: a leftover handle in user code or a
// backend must not keep a finished run alive.
await drain();
process.exit(code);
