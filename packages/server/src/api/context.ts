/**
 * What the routes share: the store, the executor, blob storage, the
 * authorizer, metrics, and a few tunables. One per server.
 */
import type { BlobStore } from "@tern/core";
import type { Authorizer } from "../auth/authorize.js";
import type { Principal, Role } from "../auth/tokens.js";
import type { Executor } from "../executor/executor.js";
import type { Metrics } from "../metrics.js";
import type { Store } from "../store/store.js";
import type { CompiledWorkflows } from "./compiled.js";
import type { Scopes } from "./scopes.js";

export interface ApiContext {
  store: Store;
  executor: Executor;
  blobs: BlobStore;
  auth: Authorizer;
  metrics: Metrics;
  compiled: CompiledWorkflows;
  scopes: Scopes;
  /** False when requests may name server-local files as inputs (the loopback sandbox). */
  remoteInputsOnly: boolean;
  /** Open watch streams and waiting create requests (`Prefer: wait`), ended when the server closes. */
  streams: Set<() => void>;
  /** Comment lines sent on idle watch streams, in ms. @default 15000 */
  heartbeatMs: number;
  /**
   * How often a watch stream checks the store for events written elsewhere, and a waiting
   * create request for the end of an execution driven elsewhere, in ms. @default 1000
   */
  watchPollMs: number;
  /** Largest `POST /register` body, in bytes. */
  registerBodyLimit: number;
}

/**
 * What a route needs: a role, checked against the `:project`/`:domain` path
 * parameters (`scope: "path"`), against any grant (`"any"`), or by the
 * handler itself from the body (`"handler"`).
 */
export interface RouteAuth {
  role: Role;
  scope: "path" | "any" | "handler";
}

declare module "fastify" {
  interface FastifyRequest {
    /** Who the request runs as (set for every route that declares `config.auth`). */
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The role the route needs; routes without one are public (health, docs). */
    auth?: RouteAuth;
  }
}
