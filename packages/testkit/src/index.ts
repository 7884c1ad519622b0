/**
 * `@tern/testkit`: loopback fakes of the services Tern's backend plugins talk to (and, later, the
 * plugin conformance suite). Import everything from the package root; there are no deep imports.
 */
export * from "./fakes/k8s/index.js";
export * from "./fakes/s3/index.js";
