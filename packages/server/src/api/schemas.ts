/**
 * JSON Schemas shared by the routes: path parameters, the error body, and the
 * records the API returns. Fastify validates requests against them and
 * serializes responses through them; `/docs` publishes them.
 */

/** Project, domain, workflow, task and launch plan names: what core's `IdentifierSchema` accepts. */
export const NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_.-]*$";
/** Execution ids (`newExecutionId()` makes `x` + base36 + hex). */
export const EXECUTION_ID_PATTERN = "^[A-Za-z0-9_-]+$";
/** Node ids, qualified with `/` inside subworkflows and dynamic nodes. */
export const NODE_ID_PATTERN = "^[A-Za-z0-9_/-]+$";

export const nameSchema = { type: "string", minLength: 1, maxLength: 200, pattern: NAME_PATTERN } as const;
export const versionSchema = { type: "string", minLength: 1, maxLength: 128 } as const;
export const executionIdSchema = {
  type: "string",
  minLength: 1,
  maxLength: 64,
  pattern: EXECUTION_ID_PATTERN,
} as const;
export const nodeIdSchema = {
  type: "string",
  minLength: 1,
  maxLength: 400,
  pattern: NODE_ID_PATTERN,
} as const;

/** Any JSON value. */
export const anyJson = {} as const;
/** Any JSON object, kept whole. */
export const anyObject = { type: "object", additionalProperties: true } as const;

export const errorBodySchema = {
  $id: "ErrorBody",
  type: "object",
  description: "Every error response: a stable code, a message, and what to do about it.",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", description: "TERN_E_* code" },
        message: { type: "string" },
        hint: { type: "string" },
        details: anyObject,
        requestId: { type: "string" },
      },
    },
  },
} as const;

const errorRef = { $ref: "ErrorBody#" } as const;

/** Error responses every route may give. */
export function errorResponses(...statuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const s of [400, 401, 403, 404, 413, 415, ...statuses]) out[s] = errorRef;
  return out;
}

export const identifierSchema = {
  type: "object",
  required: ["project", "domain", "name", "version"],
  properties: {
    project: { type: "string" },
    domain: { type: "string" },
    name: { type: "string" },
    version: { type: "string" },
  },
} as const;

export const scopeParams = {
  type: "object",
  required: ["project", "domain"],
  properties: { project: nameSchema, domain: nameSchema },
} as const;

export const errorDocumentSchema = {
  type: "object",
  properties: {
    code: { type: "string" },
    kind: { type: "string" },
    message: { type: "string" },
    hint: { type: "string" },
    node: { type: "string" },
    details: anyObject,
    stack: { type: "string" },
  },
} as const;

export const executionSchema = {
  $id: "Execution",
  type: "object",
  required: ["id", "project", "domain", "workflow", "phase", "inputs", "createdAt", "updatedAt"],
  properties: {
    id: { type: "string" },
    project: { type: "string" },
    domain: { type: "string" },
    workflow: {
      type: "object",
      required: ["name", "version"],
      properties: { name: { type: "string" }, version: { type: "string" } },
    },
    launchPlan: { type: "object", properties: { name: { type: "string" }, version: { type: "string" } } },
    parent: { type: "object", properties: { execution: { type: "string" }, node: { type: "string" } } },
    phase: { type: "string", description: "queued, running, aborting, succeeded, failed or aborted" },
    inputs: anyObject,
    outputs: anyJson,
    error: errorDocumentSchema,
    recoverFrom: { type: "string" },
    createdAt: { type: "number" },
    startedAt: { type: "number" },
    endedAt: { type: "number" },
    updatedAt: { type: "number" },
  },
} as const;

export const executionRef = { $ref: "Execution#" } as const;

export const eventSchema = {
  $id: "ExecutionEvent",
  type: "object",
  required: ["seq", "at", "execution", "phase"],
  additionalProperties: true,
  properties: {
    seq: { type: "integer" },
    at: { type: "number" },
    execution: { type: "string" },
    node: { type: "string" },
    phase: { type: "string" },
    attempt: { type: "integer" },
  },
} as const;

export const nodeSchema = {
  type: "object",
  required: ["nodeId", "phase", "attempts"],
  properties: {
    nodeId: { type: "string" },
    phase: { type: "string" },
    attempts: { type: "integer" },
    userFailures: { type: "integer" },
    systemFailures: { type: "integer" },
    cached: { type: "boolean" },
    recovered: { type: "boolean" },
    outputs: anyJson,
    error: errorDocumentSchema,
    plugin: { type: "string" },
    startedAt: { type: "number" },
    endedAt: { type: "number" },
    updatedAt: { type: "number" },
  },
} as const;

export const registryRecordSchema = {
  $id: "RegistryRecord",
  type: "object",
  required: ["kind", "id", "digest", "createdAt"],
  properties: {
    kind: { type: "string", enum: ["task", "workflow", "launch_plan"] },
    id: identifierSchema,
    digest: { type: "string" },
    createdAt: { type: "number" },
    active: { type: "boolean" },
    schedule: anyObject,
    spec: anyObject,
  },
} as const;

export const registryRecordRef = { $ref: "RegistryRecord#" } as const;

/** Every shared schema, added to fastify once. */
export const SHARED_SCHEMAS = [errorBodySchema, executionSchema, eventSchema, registryRecordSchema];
