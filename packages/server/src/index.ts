/**
 * @tern/server — the Tern control plane: durable store, blob storage, the
 * executor, and the fastify admin API (`startServer`).
 * @module
 */

export { type BuildAppOptions, buildApp, DEFAULT_BODY_LIMIT } from "./api/app.js";
export { assembleCompiled, CompiledWorkflows, compiledKey } from "./api/compiled.js";
export type { ApiContext, RouteAuth } from "./api/context.js";
export { ApiErrorCodes, type ErrorBody, statusForCode, toErrorResponse } from "./api/errors.js";
export * from "./auth/index.js";
export * from "./blob/index.js";
export { checkServerConfig, loadServerConfig, type ServerConfig } from "./config.js";
export * from "./executor/index.js";
export { Metrics, type MetricsOptions } from "./metrics.js";
export * from "./scheduler/index.js";
export {
  type ControlPlane,
  createControlPlane,
  createLogger,
  isLoopback,
  type LoggerOptions,
  REDACTED_LOG_PATHS,
  type RunningServer,
  type ServeOptions,
  startServer,
} from "./serve.js";
export * from "./store/index.js";
