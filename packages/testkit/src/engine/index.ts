/**
 * Test engine and task contexts for plugin tests: {@link startTestEngine}, {@link makeTaskContext}.
 * @module
 */
export { makeTaskContext, type TaskContextOverrides, type TestTaskContext, testId } from "./task-context.js";
export {
  asTernPlugin,
  resolveBackendPlugin,
  resolveBackendPlugins,
  startTestEngine,
  type TestEngine,
  type TestEngineOptions,
} from "./test-engine.js";
