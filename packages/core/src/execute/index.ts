/**
 * @tern/core/execute — running one task attempt: what `tern-execute`, worker
 * processes and plugins that run TypeScript bodies share.
 * @module
 */
export {
  type ExecuteEnv,
  type ExecuteRequest,
  type ExecuteResult,
  executeTask,
  materialize,
  offload,
} from "./run-task.js";
