/**
 * A loopback fake of the Ray dashboard's Jobs REST API (PROTOCOLS §2): entrypoints really run
 * as local processes. See {@link startFakeRay}.
 *
 * @example
 * import { startFakeRay } from "@tern/testkit";
 * const ray = await startFakeRay();
 * await fetch(`${ray.url}/api/jobs/`, { method: "POST", body: JSON.stringify({ entrypoint: "echo hi" }) });
 * await ray.close();
 *
 * @module
 */
export type { RayFailSpec, RayRequestMatch, RayRoute, RayRuleHandle } from "./faults.js";
export {
  FakeRay,
  type FakeRayOptions,
  type RayDownMode,
  type RayJobDetails,
  type RayJobStatus,
  type RayRecordedRequest,
  type RayWaitOptions,
  startFakeRay,
} from "./server.js";
