/**
 * @tern/core — typed, cached, versioned workflows for TypeScript.
 *
 * @example
 * import { task, workflow, run } from "@tern/core";
 * import { z } from "zod";
 *
 * const sayHello = task(
 *   { name: "say_hello", inputs: { name: z.string() }, output: z.string(), cache: true },
 *   async ({ name }) => `Hello, ${name}!`,
 * );
 * export const hello = workflow(
 *   { name: "hello", inputs: { name: z.string().default("world") }, output: z.string() },
 *   ({ name }) => sayHello({ name }),
 * );
 * const result = await run(hello, { name: "Ada" }); // result.outputs === "Hello, Ada!"
 *
 * @module
 */
// tsyringe needs the Reflect polyfill before it loads: keep this import first.
import "reflect-metadata";

export { attemptId } from "./attempt.js";
export { InlineBackend, TASK_RESOLVER, type TaskResolver } from "./backends/inline.js";
export { type BlobStore, digestPath, LocalBlobStore, putContent } from "./blob.js";
export { type Bundle, bundleEntry, bundlePath, findProjectRoot, importBundle } from "./bundle.js";
export {
  type CacheProducer,
  type Catalog,
  type CatalogEntry,
  type CatalogFilter,
  cacheKey,
  DiskCatalog,
  type DiskCatalogOptions,
  MemoryCatalog,
  stripLocal,
} from "./catalog.js";
export {
  type CodeVersionOptions,
  clearCodeVersionCache,
  codeVersion,
  prepareCodeVersions,
} from "./code-version.js";
export {
  type Compiled,
  type CompileOptions,
  compile,
  compileDynamic,
  compileLaunchPlan,
  DEFAULT_DOMAIN,
  DEFAULT_PROJECT,
  interfaceOf,
  launchPlanSpec,
  literalSchema,
  nodeDependencies,
} from "./compile.js";
export {
  and,
  type BranchBuilder,
  type Condition,
  cron,
  type DynamicBody,
  dynamic,
  type ExecutionInfo,
  eq,
  every,
  executionInfo,
  type FailureInfo,
  failureInfo,
  type GateOptions,
  gate,
  gt,
  gte,
  isDynamic,
  isFalse,
  isNotNull,
  isNull,
  isTrue,
  type LaunchPlanDef,
  type LaunchPlanOptions,
  launchPlan,
  lt,
  lte,
  type MapInputs,
  type MapOptions,
  map,
  ne,
  not,
  or,
  type Resolved,
  when,
} from "./control.js";
export {
  type AnyTask,
  type AnyWorkflow,
  after,
  type BackoffOptions,
  type Bindable,
  type CacheOptions,
  type CallInputs,
  type CallSite,
  definedTasks,
  definitionKind,
  type Handle,
  isTaskDef,
  isWorkflowDef,
  type NodeOptions,
  type Promised,
  type RetryOptions,
  type Shape,
  type TaskBody,
  type TaskCtx,
  type TaskDef,
  type TaskInputs,
  type TaskOptions,
  task,
  type WorkflowBody,
  type WorkflowDef,
  type WorkflowInputs,
  type WorkflowOptions,
  workflow,
} from "./dsl.js";
export { type Duration, parseDuration } from "./duration.js";
export {
  backoffDelay,
  Engine,
  type EngineOptions,
  type ExecutionEvent,
  type ExecutionHandle,
  type ExecutionPhase,
  type ExecutionResult,
  type MapItems,
  type NodePhase,
  type NodeSummary,
  newExecutionId,
  type ResumedNode,
  type SignalAnswer,
  type SignalProvider,
  type SignalRequest,
  type StartOptions,
} from "./engine.js";
export {
  type ErrorCode,
  ErrorCodes,
  type ErrorDocument,
  type ErrorKind,
  errorFromDocument,
  isTernError,
  TernError,
  toErrorDocument,
} from "./errors.js";
export { jobEnv, renderJobTemplate, unknownTemplateInputs } from "./job-template.js";
export { canonicalJson, type Json, type JsonObject } from "./json.js";
export {
  BACKEND_CONFIG,
  BACKEND_PLUGIN,
  type BackendConfig,
  type BackendLimits,
  type BackendPlugin,
  BackendRegistry,
  CONTRACT_VERSION,
  checkContractVersion,
  definePlugin,
  type LogLink,
  type TaskContext,
  type TaskLogger,
  type TaskPhase,
  type TaskStatus,
  type TernPlugin,
} from "./plugin.js";
export { createEngine, DefinitionIndex, type LocalEngine, type LocalEngineOptions, run } from "./runtime.js";
export * from "./spec.js";
export {
  createContainer,
  createToken,
  type DependencyContainer,
  inject,
  injectable,
  isProvided,
  provide,
  resolve,
  resolveAll,
  type Token,
} from "./tokens.js";
export { checkAssignable, describeSchema, type Incompatibility, type JsonSchema } from "./typecheck.js";
export {
  dataframe,
  dir,
  file,
  isTernRef,
  readDataFrame,
  type TernDataFrame,
  type TernDir,
  type TernFile,
  t,
  toJsonSchema,
} from "./types.js";
export { type ValueProblem, validateValue } from "./validate-value.js";
