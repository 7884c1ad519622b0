/**
 * The simulated kubelet: real processes, real logs through client-node's Log, exit codes, env and
 * secrets, waiting reasons, restarts, deadlines, termination, and the disruption controls.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { Log, Watch } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import type { Pod } from "../src/index.js";
import { alive, collect, harness, logText, nodePod, rejection } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "tern-kubelet-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const main = (pod: Pod | undefined) => pod?.status?.containerStatuses?.[0];
const waitingReason = (pod: Pod | undefined) => {
  const s = main(pod)?.state;
  return s && "waiting" in s ? s.waiting.reason : undefined;
};
const waitingMessage = (pod: Pod | undefined) => {
  const s = main(pod)?.state;
  return s && "waiting" in s ? s.waiting.message : undefined;
};
const terminated = (pod: Pod | undefined): any => {
  const s = main(pod)?.state;
  return s && "terminated" in s ? s.terminated : undefined;
};
const condition = (pod: Pod | undefined, type: string) =>
  pod?.status?.conditions?.find((c) => c.type === type);

/** Reads a whole (possibly followed) log through client-node. */
async function readLog(
  kc: any,
  name: string,
  opts: Record<string, unknown> = {},
  onData?: (text: string) => void,
): Promise<string> {
  const out = new PassThrough();
  let text = "";
  const ended = new Promise<void>((r) => out.on("end", () => r()));
  out.on("data", (d) => {
    text += d;
    onData?.(text);
  });
  await new Log(kc).log("default", name, "main", out, opts);
  await ended;
  return text;
}

describe("containers run as real processes", () => {
  it("Log.log with follow streams output as it is produced and ends when the container exits", async () => {
    const { fake, kc, core } = await harness();
    const gate = path.join(tmp, "gate-follow");
    // The container cannot print its second line before the test has seen the first one,
    // which proves lines are streamed, not delivered at exit.
    const script = `
      const fs = require("node:fs");
      console.log("first line");
      const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(gate)})) { clearInterval(t); console.log("second line"); console.error("to stderr"); } }, 20);`;
    await core.createNamespacedPod({ namespace: "default", body: nodePod("logger", script) });
    await fake.waitForPod("default", "logger", (p) => p.status?.phase === "Running");
    const text = await readLog(kc, "logger", { follow: true }, (soFar) => {
      if (soFar.includes("first line")) void writeFile(gate, "go");
    });
    expect(text).toBe("first line\nsecond line\nto stderr\n");
    const pod = await fake.waitForPod("default", "logger", (p) => p.status?.phase === "Succeeded");
    expect(terminated(pod)).toMatchObject({ exitCode: 0, reason: "Completed" });

    // tailLines, timestamps and limitBytes on the finished container.
    expect(await readLog(kc, "logger", { tailLines: 1 })).toBe("to stderr\n");
    const stamped = await readLog(kc, "logger", { timestamps: true });
    expect(stamped.split("\n")[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z first line$/);
    expect(await readLog(kc, "logger", { limitBytes: 5 })).toBe("first");
    const req = fake.requests({ path: "/api/v1/namespaces/default/pods/logger/log" })[0];
    expect(req.query).toMatchObject({ container: "main", follow: "true" });
  });

  it("a non-zero exit fails the pod with the exit code (restartPolicy Never)", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("crash", "console.error('boom'); process.exit(3)"),
    });
    const pod = await fake.waitForPod("default", "crash", (p) => p.status?.phase === "Failed");
    expect(terminated(pod)).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(terminated(pod).startedAt).toBeTruthy();
    expect(terminated(pod).finishedAt).toBeTruthy();
    expect(main(pod)?.restartCount).toBe(0);
    expect(condition(pod, "Ready")).toMatchObject({ status: "False" });
  });

  it("env values, $(VAR) expansion, secretKeyRef, configMapKeyRef, fieldRef and workingDir reach the process", async () => {
    const { fake, kc, core } = await harness();
    fake.createSecret("default", "db", { password: "hunter2" });
    fake.createConfigMap("default", "cfg", { mode: "fast" });
    const pod = nodePod("envy", "console.log(JSON.stringify({ env: process.env, cwd: process.cwd() }))", {});
    pod.spec.containers[0].workingDir = tmp;
    pod.spec.containers[0].env = [
      { name: "GREETING", value: "hello" },
      { name: "MESSAGE", value: "$(GREETING) world" },
      { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
      { name: "MODE", valueFrom: { configMapKeyRef: { name: "cfg", key: "mode" } } },
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "OPTIONAL", valueFrom: { secretKeyRef: { name: "absent", key: "x", optional: true } } },
    ];
    await core.createNamespacedPod({ namespace: "default", body: pod });
    await fake.waitForPod("default", "envy", (p) => p.status?.phase === "Succeeded");
    const { env, cwd } = JSON.parse(await readLog(kc, "envy"));
    expect(env).toMatchObject({
      GREETING: "hello",
      MESSAGE: "hello world",
      PASSWORD: "hunter2",
      MODE: "fast",
      POD_NAME: "envy",
      HOSTNAME: "envy",
    });
    expect(env.KUBERNETES_SERVICE_PORT).toBe(String(fake.port));
    expect(env).not.toHaveProperty("OPTIONAL");
    // Containers do not inherit the host environment beyond PATH & co.
    expect(env).not.toHaveProperty("VITEST");
    expect(cwd).toBe(tmp);
  });

  it("a missing secret is CreateContainerConfigError with no process, until the secret appears", async () => {
    const { fake, core } = await harness();
    const pod = nodePod("needs-secret", "console.log(process.env.TOKEN)");
    pod.spec.containers[0].env = [
      { name: "TOKEN", valueFrom: { secretKeyRef: { name: "api", key: "token" } } },
    ];
    await core.createNamespacedPod({ namespace: "default", body: pod });
    const waiting = await fake.waitForPod(
      "default",
      "needs-secret",
      (p) => waitingReason(p) === "CreateContainerConfigError",
    );
    expect(main(waiting)?.state).toEqual({
      waiting: { reason: "CreateContainerConfigError", message: 'secret "api" not found' },
    });
    expect(waiting.status?.phase).toBe("Pending");
    expect(fake.processes()).toEqual([]);

    fake.createSecret("default", "api", { other: "x" });
    const wrongKey = await fake.waitForPod("default", "needs-secret", (p) =>
      String(waitingMessage(p)).includes("couldn't find key"),
    );
    expect(waitingMessage(wrongKey)).toBe("couldn't find key token in Secret default/api");

    fake.createSecret("default", "api", { token: "t0k3n" });
    await fake.waitForPod("default", "needs-secret", (p) => p.status?.phase === "Succeeded");
  });

  it("an unpullable image gives ErrImagePull then ImagePullBackOff, and no process", async () => {
    const { fake, core } = await harness({ imagePullBackoffMs: 100 });
    fake.markImageUnpullable("ghcr.io/acme/missing:1.0");
    const pod = nodePod("bad-image", "console.log('ran')");
    pod.spec.containers[0].image = "ghcr.io/acme/missing:1.0";
    await core.createNamespacedPod({ namespace: "default", body: pod });
    const pull = await fake.waitForPod("default", "bad-image", (p) => waitingReason(p) === "ErrImagePull");
    expect(waitingMessage(pull)).toContain('failed to pull and unpack image "ghcr.io/acme/missing:1.0"');
    const backoff = await fake.waitForPod(
      "default",
      "bad-image",
      (p) => waitingReason(p) === "ImagePullBackOff",
    );
    expect(waitingMessage(backoff)).toBe('Back-off pulling image "ghcr.io/acme/missing:1.0"');
    expect(backoff.status?.phase).toBe("Pending");
    expect(fake.processes()).toEqual([]);
    fake.markImageUnpullable("ghcr.io/acme/missing:1.0", false);
    await fake.waitForPod("default", "bad-image", (p) => p.status?.phase === "Succeeded");
  });

  it("restartPolicy OnFailure restarts with restartCount++ and CrashLoopBackOff in between", async () => {
    const { fake, kc, core } = await harness({ crashLoopBackoffMs: 50 });
    const dir = mkdtempSync(path.join(tmp, "restarts-"));
    // Each attempt leaves a marker; the third attempt succeeds.
    const script = `
      const fs = require("node:fs");
      const n = fs.readdirSync(".").length + 1;
      fs.writeFileSync("attempt-" + n, "");
      console.log("attempt " + n);
      process.exit(n < 3 ? 1 : 0);`;
    const pod = nodePod("flaky", script, { restartPolicy: "OnFailure" });
    pod.spec.containers[0].workingDir = dir;
    const events: any[] = [];
    const watch = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      {},
      (_t, o) => events.push(o),
      () => {},
    );
    await core.createNamespacedPod({ namespace: "default", body: pod });
    const done = await fake.waitForPod("default", "flaky", (p) => p.status?.phase === "Succeeded");
    await collect(events, (e) => e.some((o) => o.status?.phase === "Succeeded"));
    watch.abort();
    expect(main(done)?.restartCount).toBe(2);
    expect(main(done)?.lastState).toMatchObject({ terminated: { exitCode: 1, reason: "Error" } });
    const reasons = events
      .map((o) => o.status?.containerStatuses?.[0]?.state?.waiting?.reason)
      .filter(Boolean);
    expect(reasons).toContain("CrashLoopBackOff");
    // While restarting, the pod stays Running; it never looks Failed.
    expect(events.some((o) => o.status?.phase === "Failed")).toBe(false);
    expect(await readLog(kc, "flaky")).toBe("attempt 3\n");
    expect(await readLog(kc, "flaky", { previous: true })).toBe("attempt 2\n");
  });

  it("init containers run first, in order, and share the working directory with the main container", async () => {
    const { fake, kc, core } = await harness();
    const dir = mkdtempSync(path.join(tmp, "init-"));
    const pod = nodePod("with-init", "console.log(require('node:fs').readFileSync('seed', 'utf8'))");
    pod.spec.containers[0].workingDir = dir;
    pod.spec.initContainers = [
      {
        name: "seed",
        image: "busybox",
        workingDir: dir,
        command: [process.execPath, "-e", "require('node:fs').writeFileSync('seed', 'seeded')"],
      },
    ];
    await core.createNamespacedPod({ namespace: "default", body: pod });
    const done = await fake.waitForPod("default", "with-init", (p) => p.status?.phase === "Succeeded");
    expect(done.status?.initContainerStatuses?.[0].state).toMatchObject({
      terminated: { exitCode: 0, reason: "Completed" },
    });
    expect(condition(done, "Initialized")?.status).toBe("True");
    expect(await readLog(kc, "with-init")).toBe("seeded\n");
  });

  it("an executable that does not exist is StartError with exit code 128", async () => {
    const { fake, core } = await harness();
    const pod = nodePod("nocmd", "");
    pod.spec.containers[0].command = ["/definitely/not/here"];
    await core.createNamespacedPod({ namespace: "default", body: pod });
    const failed = await fake.waitForPod("default", "nocmd", (p) => p.status?.phase === "Failed");
    expect(terminated(failed)).toMatchObject({ exitCode: 128, reason: "StartError" });
  });

  it("an image without a command uses the registered entrypoint, else CreateContainerError", async () => {
    const { fake, kc, core } = await harness();
    fake.registerImage("acme/hello:1", {
      command: [process.execPath, "-e"],
      args: ["console.log('from image', process.argv.length)"],
    });
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "img" },
        spec: { restartPolicy: "Never", containers: [{ name: "main", image: "acme/hello:1" }] },
      },
    });
    await fake.waitForPod("default", "img", (p) => p.status?.phase === "Succeeded");
    expect(await readLog(kc, "img")).toBe("from image 1\n");
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "unknown-img" },
        spec: { containers: [{ name: "main", image: "acme/unknown:1" }] },
      },
    });
    const stuck = await fake.waitForPod(
      "default",
      "unknown-img",
      (p) => waitingReason(p) === "CreateContainerError",
    );
    expect(waitingMessage(stuck)).toContain("no command specified");
  });

  it("logs of a container that has not started are a 400 (client-node gives no body for it)", async () => {
    const { fake, kc, core } = await harness();
    fake.markImageUnpullable("nope:1");
    const pod = nodePod("waiting", "");
    pod.spec.containers[0].image = "nope:1";
    await core.createNamespacedPod({ namespace: "default", body: pod });
    await fake.waitForPod("default", "waiting", (p) => waitingReason(p) === "ErrImagePull");
    const err = await rejection(new Log(kc).log("default", "waiting", "main", new PassThrough()));
    expect(err.code).toBe(400);
    const raw = await fetch(`${fake.url}/api/v1/namespaces/default/pods/waiting/log?container=main`);
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as any).message).toMatch(
      /^container "main" in pod "waiting" is waiting to start: (ErrImagePull|ImagePullBackOff)$/,
    );
  });
});

describe("termination", () => {
  it("activeDeadlineSeconds kills the pod: Failed, reason DeadlineExceeded", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("slow", "setInterval(() => {}, 1000)", { activeDeadlineSeconds: 1 }),
    });
    await fake.waitForPod("default", "slow", (p) => p.status?.phase === "Running");
    const [proc] = fake.processes();
    const pod = await fake.waitForPod("default", "slow", (p) => p.status?.phase === "Failed");
    expect(pod.status).toMatchObject({
      reason: "DeadlineExceeded",
      message: "Pod was active on the node longer than the specified deadline",
    });
    expect(terminated(pod).exitCode).toBe(143); // SIGTERM
    expect(alive(proc.pid)).toBe(false);
  });

  it("deleting a pod sends SIGTERM, then SIGKILL after the (capped) grace period", async () => {
    const { fake, kc, core } = await harness({ maxGracePeriodMs: 300 });
    const events: any[] = [];
    const watch = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      {},
      (t, o) => events.push({ t, o }),
      () => {},
    );
    const graceful =
      "process.on('SIGTERM', () => process.exit(0)); console.log('ready'); setInterval(() => {}, 1000)";
    const stubborn = "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)";
    await core.createNamespacedPod({ namespace: "default", body: nodePod("graceful", graceful) });
    await core.createNamespacedPod({ namespace: "default", body: nodePod("stubborn", stubborn) });
    // Delete only once both have installed their SIGTERM handlers (they say so on stdout).
    for (const name of ["graceful", "stubborn"]) {
      await fake.waitFor(async () => (await logText(fake, "default", name)) === "ready\n", {
        message: `${name} never became ready`,
      });
    }
    await core.deleteNamespacedPod({ name: "graceful", namespace: "default" });
    await core.deleteNamespacedPod({ name: "stubborn", namespace: "default" });
    await collect(
      events,
      (e) => e.filter((x) => x.t === "DELETED").length === 2,
      10_000,
      "both DELETED events",
    );
    watch.abort();
    const last = (name: string) => events.filter((e) => e.o.metadata.name === name && e.t === "DELETED")[0].o;
    expect(last("graceful").status.containerStatuses[0].state.terminated).toMatchObject({ exitCode: 0 });
    expect(last("stubborn").status.containerStatuses[0].state.terminated).toMatchObject({
      exitCode: 137,
      reason: "Error",
    });
    expect(last("stubborn").status.phase).toBe("Failed");
    expect(fake.processes()).toEqual([]);
  });

  it("evict: DisruptionTarget TerminationByKubelet, process killed, phase Failed, reason Evicted", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("victim", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "victim", (p) => p.status?.phase === "Running");
    const [proc] = fake.processes();
    fake.evict("default", "victim");
    const pod = await fake.waitForPod("default", "victim", (p) => p.status?.phase === "Failed");
    expect(pod.status?.reason).toBe("Evicted");
    expect(pod.status?.message).toContain("The node was low on resource: memory.");
    expect(condition(pod, "DisruptionTarget")).toMatchObject({
      status: "True",
      reason: "TerminationByKubelet",
    });
    expect(alive(proc.pid)).toBe(false);
    // Evicted pods stay around (until garbage-collected on a real cluster).
    expect((await core.readNamespacedPod({ name: "victim", namespace: "default" })).status?.reason).toBe(
      "Evicted",
    );
  });

  it("preempt: MODIFIED with DisruptionTarget PreemptionByScheduler, then DELETED", async () => {
    const { fake, kc, core } = await harness();
    const events: any[] = [];
    const watch = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      {},
      (t, o) => events.push({ t, o }),
      () => {},
    );
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("low-prio", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "low-prio", (p) => p.status?.phase === "Running");
    fake.preempt("default", "low-prio");
    await collect(events, (e) => e.some((x) => x.t === "DELETED"), 10_000, "DELETED");
    watch.abort();
    const firstWithCondition = events.findIndex((e) =>
      e.o.status?.conditions?.some((c: any) => c.type === "DisruptionTarget"),
    );
    expect(firstWithCondition).toBeGreaterThan(0);
    expect(events[firstWithCondition].t).toBe("MODIFIED");
    expect(
      events[firstWithCondition].o.status.conditions.find((c: any) => c.type === "DisruptionTarget"),
    ).toMatchObject({
      status: "True",
      reason: "PreemptionByScheduler",
    });
    expect(events.at(-1).t).toBe("DELETED");
    expect(fake.processes()).toEqual([]);
  });

  it("oomKill: terminated reason OOMKilled, exit code 137, pod Failed", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("hungry", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "hungry", (p) => p.status?.phase === "Running");
    fake.oomKill("default", "hungry");
    const pod = await fake.waitForPod("default", "hungry", (p) => p.status?.phase === "Failed");
    expect(terminated(pod)).toMatchObject({ exitCode: 137, reason: "OOMKilled" });
    expect(() => fake.oomKill("default", "hungry")).toThrow(/no running container/);
  });

  it("nodeShutdown: phase Failed, reason Terminated, the node-shutdown message", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("on-node", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "on-node", (p) => p.status?.phase === "Running");
    fake.nodeShutdown("default", "on-node");
    const pod = await fake.waitForPod("default", "on-node", (p) => p.status?.phase === "Failed");
    expect(pod.status).toMatchObject({
      reason: "Terminated",
      message: "Pod was terminated in response to imminent node shutdown.",
    });
    expect(condition(pod, "DisruptionTarget")).toMatchObject({
      status: "True",
      reason: "TerminationByKubelet",
    });
  });

  it("lose: DELETED while still Running, process killed, no final status", async () => {
    const { fake, kc, core } = await harness();
    const events: any[] = [];
    const watch = await new Watch(kc).watch(
      "/api/v1/namespaces/default/pods",
      {},
      (t, o) => events.push({ t, o }),
      () => {},
    );
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("lost", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "lost", (p) => p.status?.phase === "Running");
    const [proc] = fake.processes();
    fake.lose("default", "lost");
    await collect(events, (e) => e.some((x) => x.t === "DELETED"), 10_000, "DELETED");
    watch.abort();
    expect(events.at(-1).o.status.phase).toBe("Running");
    await fake.waitFor(() => !alive(proc.pid), { message: "lost pod's process still alive" });
    expect(events.filter((e) => e.o.status?.phase === "Failed" || e.o.status?.phase === "Succeeded")).toEqual(
      [],
    );
  });

  it("setPodPhase to a terminal phase makes the kubelet let go of the pod", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("scripted", "setInterval(() => {}, 1000)"),
    });
    await fake.waitForPod("default", "scripted", (p) => p.status?.phase === "Running");
    const [proc] = fake.processes();
    fake.setPodPhase("default", "scripted", "Failed", { reason: "Scripted", message: "set by the test" });
    await fake.waitFor(() => !alive(proc.pid), { message: "process still alive" });
    const pod = await core.readNamespacedPod({ name: "scripted", namespace: "default" });
    expect(pod.status).toMatchObject({ phase: "Failed", reason: "Scripted", message: "set by the test" });
    fake.patchPodStatus("default", "scripted", { conditions: [{ type: "Custom", status: "True" }] });
    expect(fake.pod("default", "scripted")?.status?.conditions).toEqual([{ type: "Custom", status: "True" }]);
  });

  it("close() kills every running container and its children", async () => {
    const { fake, core } = await harness();
    // A shell that starts a grandchild: the whole process group must die.
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "tree" },
        spec: {
          containers: [
            { name: "main", image: "busybox", command: ["sh", "-c", "sleep 300 & echo $!; wait"] },
          ],
        },
      },
    });
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("idle", "setInterval(() => {}, 1000)"),
    });
    await fake.waitFor(() => fake.processes().length === 2, { message: "both containers running" });
    let grandchild = 0;
    await fake.waitFor(
      async () => {
        grandchild = Number((await logText(fake, "default", "tree")).trim());
        return grandchild > 0;
      },
      { message: "the shell never printed its child's pid" },
    );
    const pids = [...fake.processes().map((p) => p.pid), grandchild];
    expect(alive(grandchild)).toBe(true);
    await fake.close();
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(fake.processes()).toEqual([]);
  });
});
