/**
 * The fake's REST surface driven by the real @kubernetes/client-node 2.x: CRUD, selectors,
 * pagination, Status errors, fault injection, auth and discovery.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { startFakeKubernetes } from "../src/index.js";
import { alive, harness, nodePod, type PodBody, rejection, statusOf } from "./helpers.js";

/** A pod bound to a node that does not exist: stored and served, but never run. */
function parkedPod(name: string, labels?: Record<string, string>): PodBody {
  return {
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { nodeName: "parked", containers: [{ name: "main", image: "busybox:1.36", command: ["true"] }] },
  };
}

describe("pods CRUD", () => {
  it("create fills server fields and answers 201; get returns the same object", async () => {
    const { fake, core } = await harness();
    const info = await core.createNamespacedPodWithHttpInfo({ namespace: "team-a", body: parkedPod("p1") });
    expect(info.httpStatusCode).toBe(201);
    const created = info.data;
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.namespace).toBe("team-a");
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.status?.phase).toBe("Pending");

    const got = await core.readNamespacedPod({ name: "p1", namespace: "team-a" });
    expect(got.metadata?.uid).toBe(created.metadata?.uid);
    expect(got.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);

    // The namespace came into existence with the first object in it.
    const namespaces = await core.listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toEqual(
      expect.arrayContaining(["default", "team-a"]),
    );
    expect(fake.requests({ method: "POST" })[0]).toMatchObject({
      path: "/api/v1/namespaces/team-a/pods",
      status: 201,
    });
  });

  it("generateName gets a random suffix", async () => {
    const { core } = await harness();
    const body = parkedPod("");
    delete body.metadata.name;
    body.metadata.generateName = "job-";
    const a = await core.createNamespacedPod({ namespace: "default", body });
    const b = await core.createNamespacedPod({ namespace: "default", body });
    expect(a.metadata?.name).toMatch(/^job-[a-z0-9]{5}$/);
    expect(b.metadata?.name).not.toBe(a.metadata?.name);
  });

  it("every write bumps one global resourceVersion, which list metadata carries", async () => {
    const { core } = await harness();
    const a = await core.createNamespacedPod({ namespace: "default", body: parkedPod("a") });
    const b = await core.createNamespacedPod({ namespace: "other", body: parkedPod("b") });
    expect(Number(b.metadata?.resourceVersion)).toBeGreaterThan(Number(a.metadata?.resourceVersion));
    const list = await core.listNamespacedPod({ namespace: "default" });
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(
      Number(b.metadata?.resourceVersion),
    );
  });

  it("list filters with every label selector operator", async () => {
    const { core } = await harness();
    const pods: [string, Record<string, string>][] = [
      ["a", { app: "web", tier: "front" }],
      ["b", { app: "web", tier: "back" }],
      ["c", { app: "db" }],
      ["d", {}],
    ];
    for (const [name, labels] of pods)
      await core.createNamespacedPod({ namespace: "sel", body: parkedPod(name, labels) });
    const names = async (labelSelector: string) =>
      (await core.listNamespacedPod({ namespace: "sel", labelSelector })).items
        .map((p) => p.metadata?.name)
        .sort();
    expect(await names("app=web")).toEqual(["a", "b"]);
    expect(await names("app==web,tier=back")).toEqual(["b"]);
    expect(await names("app!=web")).toEqual(["c", "d"]); // != also matches pods without the label
    expect(await names("app in (web, db)")).toEqual(["a", "b", "c"]);
    expect(await names("app notin (web)")).toEqual(["c", "d"]);
    expect(await names("tier")).toEqual(["a", "b"]);
    expect(await names("!tier")).toEqual(["c", "d"]);
    expect(await names("app=web,!tier")).toEqual([]);
    const err = await rejection(core.listNamespacedPod({ namespace: "sel", labelSelector: "app=(" }));
    expect(err.code).toBe(400);
  });

  it("paginates with limit + continue and reports remainingItemCount", async () => {
    const { fake, core } = await harness();
    for (let i = 0; i < 5; i++)
      await core.createNamespacedPod({ namespace: "page", body: parkedPod(`p${i}`) });
    const seen: string[] = [];
    let token: string | undefined;
    const remaining: (number | undefined)[] = [];
    do {
      const page = await core.listNamespacedPod({ namespace: "page", limit: 2, _continue: token });
      seen.push(...page.items.map((p) => p.metadata!.name!));
      remaining.push(page.metadata?.remainingItemCount);
      token = page.metadata?._continue;
    } while (token);
    expect(seen).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect(remaining).toEqual([3, 1, undefined]);

    // A continue token older than the retained history is 410 Expired, as on a real server.
    const first = await core.listNamespacedPod({ namespace: "page", limit: 2 });
    await core.createNamespacedPod({ namespace: "page", body: parkedPod("p5") });
    fake.expireWatchHistory();
    const err = await rejection(
      core.listNamespacedPod({ namespace: "page", limit: 2, _continue: first.metadata?._continue }),
    );
    expect(err).toBeInstanceOf(ApiException);
    expect(err.code).toBe(410);
    expect(statusOf(err)).toMatchObject({ kind: "Status", reason: "Expired", code: 410 });
  });

  it("delete of a running pod returns it with deletionTimestamp, kills the process, then removes it", async () => {
    const { fake, core } = await harness({ maxGracePeriodMs: 500 });
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("sleeper", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "sleeper", (p) => p.status?.phase === "Running");
    const [proc] = fake.processes();
    expect(proc).toMatchObject({ pod: "sleeper", container: "main" });
    expect(alive(proc.pid)).toBe(true);

    const deleted = await core.deleteNamespacedPod({
      name: "sleeper",
      namespace: "default",
      propagationPolicy: "Background",
      gracePeriodSeconds: 5,
    });
    expect(deleted.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    expect(deleted.metadata?.deletionGracePeriodSeconds).toBe(5);
    await fake.waitFor(() => !fake.pod("default", "sleeper"), { message: "pod was never removed" });
    expect(alive(proc.pid)).toBe(false);
    const err = await rejection(core.readNamespacedPod({ name: "sleeper", namespace: "default" }));
    expect(err.code).toBe(404);
    expect(statusOf(err)).toMatchObject({
      reason: "NotFound",
      message: 'pods "sleeper" not found',
      details: { name: "sleeper", kind: "pods" },
    });
    // client-node sends the delete options as query parameters.
    expect(fake.requests({ method: "DELETE" })[0].query).toMatchObject({
      propagationPolicy: "Background",
      gracePeriodSeconds: "5",
    });
  });

  it("accepts DeleteOptions in the body too (other clients send it there)", async () => {
    const { fake } = await harness();
    fake.cluster.create({ group: "", plural: "pods" }, "default", parkedPod("body-delete"));
    const res = await fetch(`${fake.url}/api/v1/namespaces/default/pods/body-delete`, {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        kind: "DeleteOptions",
        apiVersion: "v1",
        propagationPolicy: "Foreground",
        gracePeriodSeconds: 0,
      }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).metadata.deletionTimestamp).toBeTruthy();
    expect(fake.pod("default", "body-delete")).toBeUndefined();
    expect(fake.requests({ method: "DELETE" })[0].body).toMatchObject({ propagationPolicy: "Foreground" });
  });

  it("status subresource: GET, PUT and PATCH (json-patch and merge)", async () => {
    const { core } = await harness();
    await core.createNamespacedPod({ namespace: "default", body: parkedPod("st") });
    // client-node's default patch type is JSON patch.
    await core.patchNamespacedPodStatus({
      name: "st",
      namespace: "default",
      body: [{ op: "add", path: "/status/message", value: "from json-patch" }],
    });
    await core.patchNamespacedPodStatus(
      { name: "st", namespace: "default", body: { status: { reason: "FromMerge" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const st = await core.readNamespacedPodStatus({ name: "st", namespace: "default" });
    expect(st.status).toMatchObject({ phase: "Pending", message: "from json-patch", reason: "FromMerge" });
    // Changing status through the main resource is ignored (the subresource owns it).
    const replaced = await core.replaceNamespacedPod({
      name: "st",
      namespace: "default",
      body: { ...st, metadata: { ...st.metadata, labels: { x: "y" } }, status: { phase: "Succeeded" } },
    });
    expect(replaced.metadata?.labels).toEqual({ x: "y" });
    expect(replaced.status?.phase).toBe("Pending");
  });
});

describe("Status errors", () => {
  it("409 AlreadyExists on a duplicate name", async () => {
    const { core } = await harness();
    await core.createNamespacedPod({ namespace: "default", body: parkedPod("dup") });
    const err = await rejection(core.createNamespacedPod({ namespace: "default", body: parkedPod("dup") }));
    expect(err).toBeInstanceOf(ApiException);
    expect(err.code).toBe(409);
    expect(statusOf(err)).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods "dup" already exists',
      reason: "AlreadyExists",
      details: { name: "dup", kind: "pods" },
      code: 409,
    });
  });

  it("409 Conflict when an update carries a stale resourceVersion", async () => {
    const { core } = await harness();
    const v1 = await core.createNamespacedPod({ namespace: "default", body: parkedPod("cas") });
    await core.replaceNamespacedPod({
      name: "cas",
      namespace: "default",
      body: { ...v1, metadata: { ...v1.metadata, labels: { n: "1" } } },
    });
    const err = await rejection(
      core.replaceNamespacedPod({
        name: "cas",
        namespace: "default",
        body: { ...v1, metadata: { ...v1.metadata, labels: { n: "2" } } },
      }),
    );
    expect(err.code).toBe(409);
    expect(statusOf(err)).toMatchObject({ reason: "Conflict", code: 409 });
    expect(statusOf(err).message).toContain("the object has been modified");
  });

  it("422 Invalid with details.causes for a bad name, a long label value and missing containers", async () => {
    const { core } = await harness();
    const badName = await rejection(
      core.createNamespacedPod({ namespace: "default", body: parkedPod("Bad_Name") }),
    );
    expect(badName.code).toBe(422);
    const s = statusOf(badName);
    expect(s).toMatchObject({ reason: "Invalid", code: 422, details: { name: "Bad_Name", kind: "Pod" } });
    expect(s.message).toMatch(
      /^Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    );
    expect(s.details.causes).toEqual([
      expect.objectContaining({ reason: "FieldValueInvalid", field: "metadata.name" }),
    ]);

    const longLabel = await rejection(
      core.createNamespacedPod({ namespace: "default", body: parkedPod("ok", { v: "x".repeat(64) }) }),
    );
    expect(statusOf(longLabel).details.causes[0]).toMatchObject({
      field: "metadata.labels",
      message: expect.stringContaining("must be no more than 63 characters"),
    });

    const noContainers = await rejection(
      core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: "empty" }, spec: {} as PodBody["spec"] },
      }),
    );
    expect(statusOf(noContainers).details.causes).toEqual([
      { reason: "FieldValueRequired", message: "Required value", field: "spec.containers" },
    ]);

    const gpuRequestOnly = await rejection(
      core.createNamespacedPod({
        namespace: "default",
        body: {
          metadata: { name: "gpu" },
          spec: {
            containers: [{ name: "m", image: "x", resources: { requests: { "nvidia.com/gpu": "1" } } }],
          },
        },
      }),
    );
    expect(statusOf(gpuRequestOnly).details.causes[0].message).toContain(
      "Limit must be set for non overcommitable resources",
    );
  });

  it("failNext 429 surfaces as ApiException 429 with Retry-After and the Status body", async () => {
    const { fake, core } = await harness();
    fake.failNext(
      { method: "POST", path: "/api/v1/namespaces/default/pods" },
      { status: 429, retryAfterSeconds: 3, count: 2 },
    );
    for (let i = 0; i < 2; i++) {
      const err = await rejection(
        core.createNamespacedPod({ namespace: "default", body: parkedPod("throttled") }),
      );
      expect(err).toBeInstanceOf(ApiException);
      expect(err.code).toBe(429);
      expect(err.headers["retry-after"]).toBe("3");
      expect(statusOf(err)).toMatchObject({
        kind: "Status",
        reason: "TooManyRequests",
        code: 429,
        details: { retryAfterSeconds: 3 },
      });
    }
    // The rule is used up: the third attempt goes through.
    const ok = await core.createNamespacedPod({ namespace: "default", body: parkedPod("throttled") });
    expect(ok.metadata?.name).toBe("throttled");
    // Requests that were failed are recorded too.
    expect(fake.requests({ method: "POST" }).map((r) => r.status)).toEqual([429, 429, 201]);
  });

  it("failNext with a RegExp path, a custom body and 500/503 defaults", async () => {
    const { fake, core } = await harness();
    fake.failNext({ path: /\/pods\/x$/ }, { status: 500 });
    const e500 = await rejection(core.readNamespacedPod({ name: "x", namespace: "default" }));
    expect(e500.code).toBe(500);
    expect(statusOf(e500)).toMatchObject({ reason: "InternalError", code: 500 });
    fake.failNext(
      { method: "GET" },
      { status: 503, body: { kind: "Status", code: 503, reason: "ServiceUnavailable", message: "custom" } },
    );
    const e503 = await rejection(core.listNamespacedPod({ namespace: "default" }));
    expect(e503.code).toBe(503);
    expect(statusOf(e503).message).toBe("custom");
  });

  it("401 when a token is configured and the request has none or a wrong one", async () => {
    const { fake, core } = await harness({ token: "s3cret" });
    // The harness's kubeconfig carries the fake's token.
    await core.listNamespacedPod({ namespace: "default" });
    expect(fake.requests()[0].headers.authorization).toBe("Bearer s3cret");
    for (const token of [undefined, "wrong"]) {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "fake", server: fake.url, skipTLSVerify: true }],
        users: [token ? { name: "fake", token } : { name: "fake" }],
        contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
        currentContext: "fake",
      });
      const err = await rejection(kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "default" }));
      expect(err.code).toBe(401);
    }
    const raw = await fetch(`${fake.url}/api/v1/namespaces/default/pods`);
    expect(raw.status).toBe(401);
    expect(await raw.json()).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
  });

  it("down() refuses connections or answers 503, up() restores the same port", async () => {
    const { fake, core } = await harness();
    await fake.down();
    const refused = await rejection(fetch(`${fake.url}/version`));
    expect(String(refused.cause?.code ?? refused.cause)).toContain("ECONNREFUSED");
    await fake.up();
    expect((await fetch(`${fake.url}/version`)).status).toBe(200);
    await fake.down("503");
    const err = await rejection(core.listNamespacedPod({ namespace: "default" }));
    expect(err.code).toBe(503);
    await fake.up();
    expect((await core.listNamespacedPod({ namespace: "default" })).items).toEqual([]);
  });

  it("delay() adds latency to matching requests only", async () => {
    const { fake, core } = await harness();
    const handle = fake.delay({ method: "GET", path: "/api/v1/namespaces/default/pods" }, 300);
    const t0 = Date.now();
    await core.listNamespacedPod({ namespace: "default" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    handle.cancel();
    expect(fake.requests({ path: "/api/v1/namespaces/default/pods" })).toHaveLength(1);
  });
});

describe("other resources and discovery", () => {
  it("serves secrets, nodes, namespaces and /version", async () => {
    const { fake, core } = await harness({ gpuNodes: 1 });
    await core.createNamespace({ body: { metadata: { name: "made" } } });
    expect((await core.readNamespace({ name: "made" })).status?.phase).toBe("Active");
    await core.createNamespacedSecret({
      namespace: "made",
      body: { metadata: { name: "s" }, stringData: { k: "v" } },
    });
    const secret = await core.readNamespacedSecret({ name: "s", namespace: "made" });
    expect(Buffer.from(secret.data!.k, "base64").toString()).toBe("v");
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["fake-gpu-node-1", "fake-node-1"]);
    expect(nodes.items[0].status?.allocatable?.["nvidia.com/gpu"]).toBe("8");
    const version = (await (await fetch(`${fake.url}/version`)).json()) as { gitVersion: string };
    expect(version.gitVersion).toMatch(/^v1\./);
    const unknown = await fetch(`${fake.url}/api/v1/namespaces/default/widgets`);
    expect(unknown.status).toBe(404);
  });

  it("lists pods across namespaces; deleting a namespace deletes what is in it", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({ namespace: "ns-a", body: parkedPod("a1") });
    await core.createNamespacedPod({ namespace: "ns-b", body: parkedPod("b1") });
    const all = await core.listPodForAllNamespaces();
    expect(all.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual([
      "ns-a/a1",
      "ns-b/b1",
    ]);
    await core.deleteNamespace({ name: "ns-a" });
    expect(fake.pods().map((p) => p.metadata.name)).toEqual(["b1"]);
    // A pod bound to a node that does not exist has no kubelet to wait for: it goes at once.
    await core.deleteNamespacedPod({ name: "b1", namespace: "ns-b" });
    expect(fake.pods()).toEqual([]);
  });

  it("startFakeKubernetes honours a fixed port and the kubeconfig YAML loads in client-node", async () => {
    const probe = await startFakeKubernetes();
    const port = probe.port;
    await probe.close();
    const fake = await startFakeKubernetes({ port, namespace: "ns1", token: "t" });
    try {
      expect(fake.url).toBe(`http://127.0.0.1:${port}`);
      const kc = new KubeConfig();
      kc.loadFromString(fake.kubeconfig());
      expect(kc.getCurrentCluster()).toMatchObject({ server: fake.url, skipTLSVerify: true });
      expect(kc.getCurrentUser()?.token).toBe("t");
      expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe("ns1");
      const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "ns1" });
      expect(pods.items).toEqual([]);
    } finally {
      await fake.close();
    }
  });
});
