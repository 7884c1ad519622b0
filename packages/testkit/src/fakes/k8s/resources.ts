/**
 * Which resources the fake serves: a fixed set of core/v1 resources plus *any* custom resource
 * (`/apis/{group}/{version}/…`), so SparkApplication, RayJob and MPIJob all work without a CRD.
 */
import type { ResourceType } from "./types.js";

/** core/v1 resources the fake serves. Anything else under `/api/v1` is a 404. */
export const CORE_RESOURCES: Record<string, ResourceType> = {
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
  configmaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  events: { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true },
  namespaces: { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
};

export const PODS = CORE_RESOURCES.pods;
export const SECRETS = CORE_RESOURCES.secrets;
export const CONFIGMAPS = CORE_RESOURCES.configmaps;
export const NAMESPACES = CORE_RESOURCES.namespaces;
export const NODES = CORE_RESOURCES.nodes;

/** Remembers custom resource kinds so Status messages, BOOKMARKs and discovery name them properly. */
export class ResourceRegistry {
  readonly #custom = new Map<string, ResourceType>();

  /** The descriptor for a custom resource, created on first use. */
  custom(group: string, version: string, plural: string, namespaced = true): ResourceType {
    const key = `${group}/${plural}`;
    let res = this.#custom.get(key);
    if (!res) {
      res = { group, version, plural, kind: guessKind(plural), namespaced };
      this.#custom.set(key, res);
    }
    // The same plural may be served at several versions; answer with the one asked for.
    return res.version === version && res.namespaced === namespaced ? res : { ...res, version, namespaced };
  }

  /** Records the real kind (`SparkApplication`) once a client has sent an object of that resource. */
  learnKind(group: string, plural: string, kind: string | undefined): void {
    const res = this.#custom.get(`${group}/${plural}`);
    if (res && kind) res.kind = kind;
  }

  /** All custom resources seen so far (for discovery). */
  customResources(): ResourceType[] {
    return [...this.#custom.values()];
  }
}

/** `sparkapplications` → `Sparkapplication`: only a fallback until a real object teaches the kind. */
function guessKind(plural: string): string {
  const singular = plural.endsWith("ies")
    ? `${plural.slice(0, -3)}y`
    : plural.endsWith("s")
      ? plural.slice(0, -1)
      : plural;
  return singular.charAt(0).toUpperCase() + singular.slice(1);
}

export function apiVersionOf(res: ResourceType): string {
  return res.group ? `${res.group}/${res.version}` : res.version;
}
