/**
 * @tern/cli — the `tern` command, and the pieces it is made of for tools that
 * embed it.
 *
 * @example
 * import { main } from "@tern/cli";
 * process.exitCode = await main(["run", "examples/hello.ts", "hello", "--json"]);
 *
 * @module
 */

export {
  describeError,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  exitCodeFor,
  formatCodedError,
  isCodedError,
  UsageError,
} from "./errors.js";
export {
  type DeclaredInput,
  describeInputs,
  flagName,
  type InputContext,
  InputError,
  matchInput,
  parseInputFlags,
  type RefMakers,
  readInputsFile,
} from "./inputs.js";
export { executionDir, Journal, type JournalHeader, type JournalOptions } from "./journal.js";
export {
  type Core,
  type Definitions,
  describeDefinitions,
  listDefinitions,
  loadTarget,
  type Target,
} from "./load.js";
export { buildProgram, main, version } from "./main.js";
export { jsonReport, userFrames } from "./render/report.js";
