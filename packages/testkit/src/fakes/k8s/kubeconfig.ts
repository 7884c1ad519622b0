/**
 * Kubeconfigs that point a real client at the fake (PROTOCOLS §1.1): plain HTTP needs
 * `insecure-skip-tls-verify: true` as a YAML *boolean* (client-node compares with `=== true`),
 * and a user with a token only when the fake requires one.
 */
import yaml from "js-yaml";

export interface KubeconfigOptions {
  /** Bearer token to put in the user entry (defaults to the fake's token, if any). */
  token?: string;
  /** Namespace of the context (default `default`). */
  namespace?: string;
  /** Name of the cluster, user and context (default `fake`). */
  name?: string;
}

/** The object `KubeConfig.loadFromOptions` takes. */
export interface KubeConfigObject {
  clusters: { name: string; server: string; skipTLSVerify: boolean }[];
  users: { name: string; token?: string }[];
  contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  currentContext: string;
}

export function kubeConfigOptions(server: string, opts: KubeconfigOptions = {}): KubeConfigObject {
  const name = opts.name ?? "fake";
  const user: { name: string; token?: string } = { name };
  if (opts.token) user.token = opts.token;
  return {
    clusters: [{ name, server, skipTLSVerify: true }],
    users: [user],
    contexts: [{ name, cluster: name, user: name, namespace: opts.namespace ?? "default" }],
    currentContext: name,
  };
}

export function kubeconfigYaml(server: string, opts: KubeconfigOptions = {}): string {
  const o = kubeConfigOptions(server, opts);
  return yaml.dump({
    apiVersion: "v1",
    kind: "Config",
    clusters: o.clusters.map((c) => ({
      name: c.name,
      cluster: { server: c.server, "insecure-skip-tls-verify": true },
    })),
    users: o.users.map((u) => ({ name: u.name, user: u.token ? { token: u.token } : {} })),
    contexts: o.contexts.map((c) => ({
      name: c.name,
      context: { cluster: c.cluster, user: c.user, namespace: c.namespace },
    })),
    "current-context": o.currentContext,
    preferences: {},
  });
}
