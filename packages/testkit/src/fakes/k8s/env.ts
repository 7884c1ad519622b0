/**
 * What the kubelet resolves before it can create a container: the command line (image
 * ENTRYPOINT/CMD rules), the environment (`value`, `$(VAR)` expansion, `secretKeyRef`,
 * `configMapKeyRef`, `fieldRef`) and the working directory. A failure here is a *waiting* reason
 * (`CreateContainerConfigError`, `CreateContainerError`), not a crash: the kubelet keeps retrying.
 */
import { existsSync, statSync } from "node:fs";
import type { Cluster } from "./cluster.js";
import { CONFIGMAPS, SECRETS } from "./resources.js";
import type { Container, KubeObject, Pod } from "./types.js";

/** What a fake image runs when a container does not give `command` (its ENTRYPOINT/CMD/ENV). */
export interface ImageConfig {
  /** ENTRYPOINT. */
  command?: string[];
  /** CMD. */
  args?: string[];
  env?: Record<string, string>;
  workingDir?: string;
}

export interface ResolvedContainer {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

/** A reason the container cannot be created yet (a `state.waiting`). */
export interface Blocker {
  reason: "CreateContainerConfigError" | "CreateContainerError";
  message: string;
}

export interface ResolveContext {
  cluster: Cluster;
  pod: Pod;
  container: Container;
  image: ImageConfig | undefined;
  /** Variables every container gets (PATH, KUBERNETES_SERVICE_HOST…). */
  baseEnv: Record<string, string>;
  /** Used when neither the container nor the image sets a working directory. */
  defaultCwd: string;
}

/** Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` escapes a `$`. */
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    return name !== undefined && Object.hasOwn(env, name) ? env[name] : match;
  });
}

function fieldRef(pod: Pod, path: string): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return pod.metadata[m[1] as "labels" | "annotations"]?.[m[2]];
  const known: Record<string, string | undefined> = {
    "metadata.name": pod.metadata.name,
    "metadata.namespace": pod.metadata.namespace,
    "metadata.uid": pod.metadata.uid,
    "spec.nodeName": pod.spec.nodeName,
    "spec.serviceAccountName": (pod.spec.serviceAccountName as string | undefined) ?? "default",
    "status.hostIP": "127.0.0.1",
    "status.podIP": "127.0.0.1",
  };
  return known[path];
}

function keyRef(
  ctx: ResolveContext,
  kind: "Secret" | "ConfigMap",
  ref: { name: string; key: string; optional?: boolean },
): string | undefined | Blocker {
  const ns = ctx.pod.metadata.namespace!;
  const obj: KubeObject | undefined = ctx.cluster.tryGet(
    kind === "Secret" ? SECRETS : CONFIGMAPS,
    ns,
    ref.name,
  );
  if (!obj) {
    if (ref.optional) return undefined;
    return {
      reason: "CreateContainerConfigError",
      message: `${kind === "Secret" ? "secret" : "configmap"} "${ref.name}" not found`,
    };
  }
  const data = (obj.data ?? {}) as Record<string, string>;
  if (!Object.hasOwn(data, ref.key)) {
    if (ref.optional) return undefined;
    return {
      reason: "CreateContainerConfigError",
      message: `couldn't find key ${ref.key} in ${kind} ${ns}/${ref.name}`,
    };
  }
  return kind === "Secret" ? Buffer.from(data[ref.key], "base64").toString("utf8") : data[ref.key];
}

/** Resolves everything a container needs to start, or the reason it cannot. */
export function resolveContainer(ctx: ResolveContext): ResolvedContainer | Blocker {
  const c = ctx.container;
  const env: Record<string, string> = { ...ctx.baseEnv, ...(ctx.image?.env ?? {}) };
  for (const v of c.env ?? []) {
    if (v.valueFrom?.secretKeyRef || v.valueFrom?.configMapKeyRef) {
      const got = v.valueFrom.secretKeyRef
        ? keyRef(ctx, "Secret", v.valueFrom.secretKeyRef)
        : keyRef(ctx, "ConfigMap", v.valueFrom.configMapKeyRef!);
      if (typeof got === "object") return got;
      if (got !== undefined) env[v.name] = got;
    } else if (v.valueFrom?.fieldRef) {
      env[v.name] = fieldRef(ctx.pod, v.valueFrom.fieldRef.fieldPath) ?? "";
    } else {
      env[v.name] = expand(v.value ?? "", env);
    }
  }

  // Kubernetes rules: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD.
  const argv = c.command
    ? [...c.command, ...(c.args ?? [])]
    : [...(ctx.image?.command ?? []), ...(c.args ?? ctx.image?.args ?? [])];
  if (argv.length === 0) {
    return {
      reason: "CreateContainerError",
      message:
        `failed to generate container spec: no command specified (image "${c.image}" is unknown to the fake: ` +
        "give the container a command, or register the image's entrypoint with registerImage())",
    };
  }

  const cwd = c.workingDir ?? ctx.image?.workingDir ?? ctx.defaultCwd;
  if (!existsSync(cwd) || !statSync(cwd).isDirectory()) {
    return {
      reason: "CreateContainerError",
      message: `workingDir "${cwd}" does not exist on this machine (the fake runs containers as local processes)`,
    };
  }
  return { argv: argv.map((a) => expand(a, env)), env, cwd };
}
