/**
 * `startFakeKubernetes()`: a loopback Kubernetes API that the real `@kubernetes/client-node` 2.x
 * talks to over HTTP, with a scheduler, a kubelet that really runs containers as local processes,
 * generic custom resources with pluggable fake controllers, and a control API for tests.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Cluster } from "./cluster.js";
import { type ClusterClient, clusterClient } from "./cluster-client.js";
import { type ControllerContext, Controllers, type CustomResourceController } from "./controllers.js";
import type { ImageConfig } from "./env.js";
import { notFound } from "./errors.js";
import { type FailSpec, Faults, matches, type RequestMatch, type RuleHandle } from "./faults.js";
import {
  type KubeConfigObject,
  type KubeconfigOptions,
  kubeConfigOptions,
  kubeconfigYaml,
} from "./kubeconfig.js";
import { Kubelet, type RunningContainer } from "./kubelet.js";
import { mergePatch } from "./patch.js";
import { CONFIGMAPS, NODES, PODS, SECRETS } from "./resources.js";
import { Router } from "./router.js";
import { DEFAULT_NODE, gpuNode, nodeObject, Scheduler, upsertCondition } from "./scheduler.js";
import { type DownMode, HttpServer } from "./server.js";
import { Store } from "./store.js";
import type { FakeNodeSpec, KubeObject, Pod, PodPhase, RecordedRequest } from "./types.js";
import { type ExpiredMode, WatchHub } from "./watch.js";

export interface FakeKubernetesOptions {
  /** Port on 127.0.0.1 (default 0 = any free port). */
  port?: number;
  /** Require `Authorization: Bearer <token>` on every request (401 otherwise). */
  token?: string;
  /** Namespace of the kubeconfig context (default `default`). */
  namespace?: string;
  /** Nodes of the cluster. Default: one node (`fake-node-1`) with 64 CPUs, 256Gi and no GPUs. */
  nodes?: FakeNodeSpec[];
  /** Adds this many tainted GPU nodes (`fake-gpu-node-N`, 8 × `nvidia.com/gpu` each). */
  gpuNodes?: number;
  /** Delay before a new pod is scheduled (default 10 ms). */
  schedulingDelayMs?: number;
  /** Delay between binding and creating containers (default 10 ms). */
  containerStartDelayMs?: number;
  /** Retry period of ErrImagePull/ImagePullBackOff and config errors (default 300 ms). */
  imagePullBackoffMs?: number;
  /** First CrashLoopBackOff delay, doubling per restart (default 200 ms, capped at `maxCrashLoopBackoffMs`, default 2 s). */
  crashLoopBackoffMs?: number;
  maxCrashLoopBackoffMs?: number;
  /** Cap on the SIGTERM→SIGKILL grace period of deleted pods (default 2 s). */
  maxGracePeriodMs?: number;
  /** Idle watches get a BOOKMARK (or a newline) this often (default 15 s; client-node gives up after 30 s). */
  watchHeartbeatMs?: number;
  /** Events kept for watch resumption before older resourceVersions become 410 (default 1000). */
  historyLimit?: number;
  /** How a too-old watch resourceVersion is answered: `"event"` (200 + ERROR 410, default) or `"http"` (HTTP 410). */
  expiredWatch?: ExpiredMode;
  /** Root of the pods' scratch working directories (default: a fresh temp dir, removed on close). */
  workDir?: string;
  /** Environment variables passed from this process to every container (default PATH, HOME, TMPDIR, LANG, TZ). */
  hostEnv?: string[];
  /** Requests kept for `requests()`; the oldest are dropped beyond this (default 10 000). */
  maxRecordedRequests?: number;
}

export interface WaitOptions {
  /** Default 10 000 ms. */
  timeoutMs?: number;
  /** Polling period in addition to waking on every write (default 25 ms). */
  intervalMs?: number;
  /** Included in the timeout error. */
  message?: string | (() => string);
}

/** A running fake Kubernetes API server. */
export class FakeKubernetes {
  /** In-process access to every object (create, get, list, patch, patchStatus, delete, on). */
  readonly cluster: ClusterClient;
  readonly #store: Store;
  readonly #cluster: Cluster;
  readonly #kubelet: Kubelet;
  readonly #scheduler: Scheduler;
  readonly #controllers: Controllers;
  readonly #watches: WatchHub;
  readonly #faults = new Faults();
  readonly #server: HttpServer;
  readonly #settings: { heartbeatMs: number; expiredMode: ExpiredMode };
  readonly #requests: RecordedRequest[] = [];
  readonly #ownWorkDir: string | undefined;
  readonly #workDir: string;
  #closed: Promise<void> | undefined;

  /** @internal Use {@link startFakeKubernetes}. */
  constructor(private readonly options: FakeKubernetesOptions = {}) {
    this.#store = new Store(options.historyLimit ?? 1000);
    this.#cluster = new Cluster(this.#store);
    this.cluster = clusterClient(this.#cluster);
    this.#ownWorkDir = options.workDir ? undefined : mkdtempSync(path.join(os.tmpdir(), "tern-fake-k8s-"));
    this.#workDir = options.workDir ?? this.#ownWorkDir!;
    this.#kubelet = new Kubelet(this.#cluster, {
      startDelayMs: options.containerStartDelayMs ?? 10,
      imagePullBackoffMs: options.imagePullBackoffMs ?? 300,
      crashLoopBackoffMs: options.crashLoopBackoffMs ?? 200,
      maxCrashLoopBackoffMs: options.maxCrashLoopBackoffMs ?? 2000,
      maxGracePeriodMs: options.maxGracePeriodMs ?? 2000,
      workDir: this.#workDir,
      hostEnv: options.hostEnv ?? ["PATH", "HOME", "TMPDIR", "LANG", "TZ"],
      apiPort: () => this.port,
    });
    this.#scheduler = new Scheduler(this.#cluster, { delayMs: options.schedulingDelayMs ?? 10 });
    this.#controllers = new Controllers(this.#cluster);
    this.#settings = {
      heartbeatMs: options.watchHeartbeatMs ?? 15_000,
      expiredMode: options.expiredWatch ?? "event",
    };
    this.#watches = new WatchHub(this.#cluster, this.#settings);
    const router = new Router(this.#cluster, this.#kubelet, this.#watches, () => `127.0.0.1:${this.port}`);
    this.#server = new HttpServer({
      router,
      faults: this.#faults,
      token: options.token,
      record: (r) => {
        this.#requests.push(r);
        const max = options.maxRecordedRequests ?? 10_000;
        if (this.#requests.length > max) this.#requests.splice(0, this.#requests.length - max);
      },
    });
  }

  /** @internal */
  async start(): Promise<void> {
    this.#kubelet.start();
    this.#scheduler.start();
    const nodes = [...(this.options.nodes ?? [DEFAULT_NODE])];
    for (let i = 1; i <= (this.options.gpuNodes ?? 0); i++) nodes.push(gpuNode(`fake-gpu-node-${i}`));
    for (const n of nodes) this.addNode(n);
    await this.#server.listen(this.options.port ?? 0);
  }

  /** The port on 127.0.0.1. */
  get port(): number {
    return this.#server.port;
  }

  /** `http://127.0.0.1:PORT`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A YAML kubeconfig for the fake (`KubeConfig.loadFromString`, kubectl, `KUBECONFIG=`). */
  kubeconfig(opts: KubeconfigOptions = {}): string {
    return kubeconfigYaml(this.url, this.#kcOptions(opts));
  }

  /** The object for `KubeConfig.loadFromOptions` (cluster, user and context named `fake`). */
  kubeConfigOptions(opts: KubeconfigOptions = {}): KubeConfigObject {
    return kubeConfigOptions(this.url, this.#kcOptions(opts));
  }

  #kcOptions(opts: KubeconfigOptions): KubeconfigOptions {
    return {
      token: opts.token ?? this.options.token,
      namespace: opts.namespace ?? this.options.namespace,
      name: opts.name,
    };
  }

  /** Stops the server, kills every container process (and waits for them), removes scratch dirs. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#scheduler.stop();
      await this.#server.close();
      await this.#controllers.close();
      await this.#kubelet.shutdown();
      if (this.#ownWorkDir) rmSync(this.#ownWorkDir, { recursive: true, force: true });
    })();
    return this.#closed;
  }

  // ---------------------------------------------------------------- fault injection

  /**
   * Fails the next `spec.count` (default 1) requests matching `match` with `spec.status`. Without a
   * body the fake sends the Status the API server would (429 carries `Retry-After` and
   * `details.retryAfterSeconds`). Applied after authentication, before routing.
   */
  failNext(match: RequestMatch, spec: FailSpec): RuleHandle {
    return this.#faults.failNext(match, spec);
  }

  /** Adds `ms` of latency to matching requests (all of them, or the next `count`). */
  delay(match: RequestMatch, ms: number, count?: number): RuleHandle {
    return this.#faults.delay(match, ms, count);
  }

  /**
   * Makes the API unreachable: `"refuse"` (default) closes the listener and every connection so
   * clients get ECONNREFUSED; `"503"` keeps listening and answers every request with 503.
   * The kubelet and controllers keep running, as on a real cluster whose API server is down.
   */
  down(mode: DownMode = "refuse"): Promise<void> {
    return this.#server.down(mode);
  }

  /** Brings the API back on the same port. */
  up(): Promise<void> {
    return this.#server.up();
  }

  /** Ends every open watch stream cleanly (clients see the server close it and must re-watch). */
  closeWatches(): void {
    this.#watches.closeAll();
  }

  /** Number of watch streams open right now. */
  openWatches(): number {
    return this.#watches.openCount;
  }

  /** Drops the watch event history: resuming a watch from any older resourceVersion now gets 410. */
  expireWatchHistory(): void {
    this.#store.compact();
  }

  /** Switches how an expired watch is answered (HTTP 410, or 200 + one ERROR event). */
  setExpiredWatchMode(mode: ExpiredMode): void {
    this.#settings.expiredMode = mode;
  }

  /** Latest resourceVersion. */
  get resourceVersion(): number {
    return this.#store.resourceVersion;
  }

  // ---------------------------------------------------------------- requests

  /** Every request received so far (optionally only those matching), oldest first. */
  requests(match?: RequestMatch): RecordedRequest[] {
    return this.#requests.filter((r) => !match || matches(match, r)).map((r) => ({ ...r }));
  }

  resetRequests(): void {
    this.#requests.length = 0;
  }

  // ---------------------------------------------------------------- pods

  /** All pods (or those of one namespace), as stored. */
  pods(namespace?: string): Pod[] {
    return this.#cluster.list(PODS, namespace).items as Pod[];
  }

  /** One pod, or undefined. */
  pod(namespace: string, name: string): Pod | undefined {
    return this.#cluster.tryGet(PODS, namespace, name) as Pod | undefined;
  }

  /**
   * Sets `status.phase` (and optionally `reason`/`message`). A terminal phase (Succeeded/Failed)
   * also makes the kubelet let go of the pod: its processes are killed and it writes nothing more.
   */
  setPodPhase(
    namespace: string,
    name: string,
    phase: PodPhase,
    extra: { reason?: string; message?: string } = {},
  ): Pod {
    return this.patchPodStatus(namespace, name, { phase, ...extra });
  }

  /** JSON-merge-patches `status` (same kubelet rule as {@link setPodPhase} for terminal phases). */
  patchPodStatus(namespace: string, name: string, patch: Record<string, unknown>): Pod {
    const pod = this.#cluster.mutate(PODS, namespace, name, (p) => {
      p.status = mergePatch(p.status ?? {}, patch);
    });
    if (!pod) throw notFound(PODS, name);
    return pod as Pod;
  }

  /** Node-pressure eviction: `DisruptionTarget=True/TerminationByKubelet`, containers killed, phase Failed, reason `Evicted`. */
  evict(namespace: string, name: string, message?: string): void {
    this.#kubelet.evict(namespace, name, message);
  }

  /**
   * Scheduler preemption: `DisruptionTarget=True/PreemptionByScheduler` (MODIFIED), then a
   * graceful delete: containers get SIGTERM and the pod ends with DELETED.
   */
  preempt(namespace: string, name: string): void {
    const pod = this.#cluster.mutate(PODS, namespace, name, (p) => {
      p.status = {
        ...(p.status ?? {}),
        conditions: upsertCondition(p.status?.conditions, {
          type: "DisruptionTarget",
          status: "True",
          reason: "PreemptionByScheduler",
          message: "default-scheduler: preempting to accommodate a higher priority pod",
        }),
      };
    });
    if (!pod) throw notFound(PODS, name);
    this.#cluster.delete(PODS, namespace, name, {});
  }

  /**
   * Graceful node shutdown: `DisruptionTarget=True/TerminationByKubelet`, containers stopped,
   * phase Failed, reason `Terminated`, message "Pod was terminated in response to imminent node shutdown."
   */
  nodeShutdown(namespace: string, name: string): void {
    this.#kubelet.nodeShutdown(namespace, name);
  }

  /** Kills a running container like the OOM killer: terminated, reason `OOMKilled`, exit code 137; the restart policy then applies. */
  oomKill(namespace: string, name: string, container?: string): void {
    this.#kubelet.oomKill(namespace, name, container);
  }

  /**
   * Loses a pod: it disappears at once (DELETED with its last, non-terminal state), its processes
   * are killed and no final status is ever written — "killed externally" for a plugin.
   */
  lose(namespace: string, name: string): void {
    if (!this.#cluster.removeNow(PODS, namespace, name)) throw notFound(PODS, name);
  }

  /** Pulling `image` fails (ErrImagePull, then ImagePullBackOff) until called again with `false`. */
  markImageUnpullable(image: string, unpullable = true): void {
    this.#kubelet.markImageUnpullable(image, unpullable);
  }

  /** Gives an image an ENTRYPOINT/CMD/ENV/WORKDIR, used by containers that do not set `command`. */
  registerImage(image: string, config: ImageConfig): void {
    this.#kubelet.registerImage(image, config);
  }

  /** Container processes currently running (pid per container). */
  processes(): RunningContainer[] {
    return this.#kubelet.processes();
  }

  /** Stores (or replaces) a Secret; `data` values are plain strings (the fake base64-encodes them). */
  createSecret(namespace: string, name: string, data: Record<string, string>): KubeObject {
    return this.#upsert(SECRETS, namespace, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name },
      stringData: data,
      type: "Opaque",
    });
  }

  /** Stores (or replaces) a ConfigMap (`configMapKeyRef` reads it). */
  createConfigMap(namespace: string, name: string, data: Record<string, string>): KubeObject {
    return this.#upsert(CONFIGMAPS, namespace, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name },
      data,
    });
  }

  #upsert(res: typeof SECRETS, namespace: string, obj: KubeObject): KubeObject {
    if (this.#cluster.tryGet(res, namespace, obj.metadata.name!)) {
      this.#cluster.removeNow(res, namespace, obj.metadata.name!);
    }
    return this.#cluster.create(res, namespace, obj);
  }

  // ---------------------------------------------------------------- nodes

  /** Adds a node; pending pods are scheduled again at once. */
  addNode(spec: FakeNodeSpec): KubeObject {
    return this.#cluster.create(NODES, undefined, nodeObject(spec));
  }

  /** Adds a tainted GPU node with `gpus` × `nvidia.com/gpu` and the GPU product label. */
  addGpuNode(name: string, gpus = 8, product?: string): KubeObject {
    return this.addNode(gpuNode(name, gpus, product));
  }

  /** Removes a node (pods already bound to it keep running). */
  removeNode(name: string): void {
    this.#cluster.removeNow(NODES, undefined, name);
  }

  nodes(): KubeObject[] {
    return this.#cluster.list(NODES).items;
  }

  // ---------------------------------------------------------------- custom resources

  /**
   * Registers a fake operator for `plural.group` (e.g. `sparkapplications`, `sparkoperator.k8s.io`):
   * its hooks run after creates, updates and deletes of those objects. See {@link CustomResourceController}.
   */
  registerController(
    group: string,
    plural: string,
    controller: CustomResourceController,
  ): { unregister(): void } {
    return this.#controllers.register(group, plural, controller);
  }

  // ---------------------------------------------------------------- waiting

  /**
   * Resolves with the first truthy value of `predicate` (which may be async), re-evaluated after
   * every write to the cluster and every `intervalMs`. Rejects after `timeoutMs` with `message`
   * in the error, or as soon as the predicate throws.
   */
  waitFor<T>(
    predicate: () => T | undefined | null | false | Promise<T | undefined | null | false>,
    opts: WaitOptions = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let inFlight = false;
      const check = async () => {
        if (settled || inFlight) return;
        inFlight = true;
        try {
          const value = await predicate();
          if (value && !settled) {
            finish();
            resolve(value);
          }
        } catch (err) {
          if (!settled) {
            finish();
            reject(err);
          }
        } finally {
          inFlight = false;
        }
      };
      const unsubscribe = this.#store.subscribe(() => queueMicrotask(() => void check()));
      const interval = setInterval(() => void check(), opts.intervalMs ?? 25);
      const timer = setTimeout(() => {
        finish();
        const msg = typeof opts.message === "function" ? opts.message() : opts.message;
        reject(new Error(`waitFor timed out after ${timeoutMs} ms${msg ? `: ${msg}` : ""}`));
      }, timeoutMs);
      const finish = () => {
        settled = true;
        unsubscribe();
        clearInterval(interval);
        clearTimeout(timer);
      };
      void check();
    });
  }

  /** Waits until the pod satisfies `predicate`; the timeout error shows the pod's last status. */
  waitForPod(
    namespace: string,
    name: string,
    predicate: (pod: Pod) => boolean,
    opts: WaitOptions = {},
  ): Promise<Pod> {
    return this.waitFor(
      () => {
        const pod = this.pod(namespace, name);
        return pod && predicate(pod) ? pod : undefined;
      },
      {
        ...opts,
        message: () =>
          `${typeof opts.message === "function" ? opts.message() : (opts.message ?? `pod ${namespace}/${name}`)}; ` +
          `last status: ${JSON.stringify(this.pod(namespace, name)?.status ?? "(pod not found)")}`,
      },
    );
  }
}

/** Starts a fake Kubernetes API on 127.0.0.1 (see {@link FakeKubernetesOptions}). */
export async function startFakeKubernetes(opts: FakeKubernetesOptions = {}): Promise<FakeKubernetes> {
  const fake = new FakeKubernetes(opts);
  try {
    await fake.start();
  } catch (err) {
    await fake.close();
    throw err;
  }
  return fake;
}

export type { ControllerContext, CustomResourceController };
