/**
 * The durable executor: leases, resumption from the event log, ordered appends.
 * @module
 */
export { bundleKey, materializeBundles } from "./bundles.js";
export { EventLog, type EventLogOptions } from "./event-log.js";
export { Executor, type ExecutorOptions, type LaunchRequest } from "./executor.js";
export { checkInputs } from "./inputs.js";
export { type ExecutorLogger, silentLogger } from "./logger.js";
export { NodeProjection } from "./projection.js";
export { type Replayed, replay } from "./replay.js";
export { type ExecutorActivity, logKey, readAllEvents, type StoredSpec } from "./run.js";
export { EventWriter } from "./writer.js";
