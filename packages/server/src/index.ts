/**
 * @tern/server — the Tern control plane: durable store, blob storage, and (to come)
 * the fastify admin API, executor and scheduler.
 * @module
 */
export * from "./store/index.js";
export * from "./blob/index.js";
