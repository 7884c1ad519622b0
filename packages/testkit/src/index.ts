/**
 * `@tern/testkit`: the conformance suite for Tern backend plugins, a test engine, and loopback
 * fakes of the services plugins talk to. Import everything from the package root; no deep imports.
 */

export * from "./conformance/index.js";
export * from "./engine/index.js";
export { installMpiOperator, type MpiOperatorOptions, mpiOperator } from "./fakes/k8s/controllers/mpi.js";
export * from "./fakes/k8s/index.js";
export * from "./fakes/s3/index.js";
