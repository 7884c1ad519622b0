/**
 * Shared set-up for the fake Kubernetes tests: a fake, a real client-node KubeConfig pointed at it,
 * and teardown that proves no container process outlived the fake.
 */
import { readFileSync } from "node:fs";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1ObjectMeta,
  type V1Pod,
  type V1PodSpec,
} from "@kubernetes/client-node";
import { afterEach, expect } from "vitest";
import { type FakeKubernetes, type FakeKubernetesOptions, startFakeKubernetes } from "../src/index.js";

export interface Harness {
  fake: FakeKubernetes;
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

const open: FakeKubernetes[] = [];

/** Starts a fake plus real clients; closed (and checked for leaked processes) after each test. */
export async function harness(opts: FakeKubernetesOptions = {}): Promise<Harness> {
  const fake = await startFakeKubernetes(opts);
  open.push(fake);
  const kc = new KubeConfig();
  kc.loadFromOptions(fake.kubeConfigOptions());
  return { fake, kc, core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

/**
 * True while a process with this pid is alive. A zombie counts as dead: an orphaned grandchild
 * is reparented to PID 1, which in some sandboxes never reaps it.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

afterEach(async () => {
  while (open.length > 0) {
    const fake = open.pop()!;
    const pids = fake.processes().map((p) => p.pid);
    await fake.close();
    expect(fake.processes(), "the kubelet still tracks processes after close()").toEqual([]);
    for (const pid of pids) expect(alive(pid), `container process ${pid} survived close()`).toBe(false);
  }
});

/** A pod body as client-node types it, with metadata and spec present (tests edit them). */
export type PodBody = V1Pod & { metadata: V1ObjectMeta; spec: V1PodSpec };

/** A pod running `node -e <script>`. */
export function nodePod(
  name: string,
  script: string,
  extra: Partial<V1PodSpec> = {},
  labels?: Record<string, string>,
): PodBody {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: {
      restartPolicy: "Never",
      containers: [{ name: "main", image: "node:20-slim", command: [process.execPath, "-e", script] }],
      ...extra,
    },
  };
}

/** Parses the Status body client-node puts (as raw text) on an ApiException. */
export function statusOf(err: unknown): any {
  const body = (err as { body?: unknown }).body;
  return typeof body === "string" ? JSON.parse(body) : body;
}

/** Awaits a promise expected to reject, returning the error. */
export async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Collects watch events until `until` returns true (or fails after `timeoutMs`). */
export function collect<T>(
  events: T[],
  until: (events: T[]) => boolean,
  timeoutMs = 10_000,
  what = "watch events",
): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (until(events)) return resolve(events);
      if (Date.now() - started > timeoutMs) {
        return reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(events).slice(0, 2000)}`,
          ),
        );
      }
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** The current log of a pod's only container over plain HTTP ("" while it cannot be read yet). */
export async function logText(fake: FakeKubernetes, namespace: string, name: string): Promise<string> {
  const res = await fetch(`${fake.url}/api/v1/namespaces/${namespace}/pods/${name}/log`);
  return res.ok ? res.text() : "";
}
