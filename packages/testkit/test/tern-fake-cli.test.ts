/**
 * The `tern-fake` command, run as a real process from the built package (the test builds it).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { alive } from "./helpers.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const bin = path.join(repo, "packages/testkit/dist/bin/tern-fake.js");
const tmp = mkdtempSync(path.join(os.tmpdir(), "tern-fake-cli-"));
const children: ChildProcess[] = [];

beforeAll(() => {
  // Build the package so the test runs the real bin (tsc -b is incremental: quick when up to date).
  // Errors elsewhere in the workspace must not hide ours, so check the output file instead of the exit code.
  try {
    execFileSync(path.join(repo, "node_modules/.bin/tsc"), ["-b", "packages/testkit"], {
      cwd: repo,
      stdio: "pipe",
    });
  } catch {
    // reported below if the bin is missing
  }
  expect(existsSync(bin), `building packages/testkit did not produce ${bin}`).toBe(true);
}, 120_000);

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Spawns tern-fake and resolves with its stdout once `until` matches it. */
function run(args: string[], until: RegExp): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tern-fake printed no ${until} within 15 s; stdout: ${out}; stderr: ${err}`)),
      15_000,
    );
    child.stdout!.on("data", () => {
      if (until.test(out)) {
        clearTimeout(timer);
        resolve({ child, out: () => out });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!until.test(out))
        reject(new Error(`tern-fake exited (${code}) early; stdout: ${out}; stderr: ${err}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once("exit", (code) => r(code)));
}

describe("tern-fake", () => {
  it("--help lists the services", async () => {
    const { child, out } = await run(["--help"], /Services:[\s\S]*kubernetes/);
    expect(await exited(child)).toBe(0);
    expect(out()).toContain("Usage: tern-fake <service> [options]");
  });

  it("kubernetes --port 0 prints connection info; a client connects; Ctrl-C stops it and removes the temp kubeconfig", async () => {
    const { child, out } = await run(["kubernetes", "--port", "0", "--gpu-nodes", "1"], /Press Ctrl-C/);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out())?.[1];
    const file = /^Kubeconfig: (.+)$/m.exec(out())?.[1];
    expect(url, out()).toBeTruthy();
    expect(file, out()).toBeTruthy();
    expect(out()).toContain(`KUBECONFIG=${file} kubectl get pods`);

    const kc = new KubeConfig();
    kc.loadFromFile(file!);
    expect(kc.getCurrentCluster()?.server).toBe(url);
    const core = kc.makeApiClient(CoreV1Api);
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["fake-gpu-node-1", "fake-node-1"]);
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "cli-pod" },
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "m", image: "x", command: [process.execPath, "-e", ""] }],
        },
      },
    });
    const start = Date.now();
    let phase: string | undefined;
    while (phase !== "Succeeded" && Date.now() - start < 10_000) {
      phase = (await core.readNamespacedPod({ name: "cli-pod", namespace: "default" })).status?.phase;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(phase, "the pod never succeeded in the CLI's fake").toBe("Succeeded");

    child.kill("SIGINT");
    expect(await exited(child)).toBe(0);
    expect(existsSync(file!), "temp kubeconfig left behind").toBe(false);
    expect(alive(child.pid!)).toBe(false);
  });

  it("kubernetes --kubeconfig writes the file there and keeps it", async () => {
    const file = path.join(tmp, "out.yaml");
    const { child } = await run(["kubernetes", "--kubeconfig", file, "--token", "abc"], /Press Ctrl-C/);
    const text = readFileSync(file, "utf8");
    expect(text).toContain("insecure-skip-tls-verify: true");
    expect(text).toContain("token: abc");
    child.kill("SIGTERM");
    expect(await exited(child)).toBe(0);
    expect(existsSync(file)).toBe(true);
  });

  it("kubernetes --operators runs the named operators' controllers; an unknown one is refused", async () => {
    const { child, out } = await run(["kubernetes", "--operators", "spark,kuberay"], /Press Ctrl-C/);
    expect(out()).toContain(
      "Operators: spark: SparkApplication (sparkoperator.k8s.io); kuberay: RayJob (ray.io)",
    );
    const file = /^Kubeconfig: (.+)$/m.exec(out())![1];
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    const custom = kc.makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({
      group: "sparkoperator.k8s.io",
      version: "v1beta2",
      namespace: "default",
      plural: "sparkapplications",
      body: {
        apiVersion: "sparkoperator.k8s.io/v1beta2",
        kind: "SparkApplication",
        metadata: { name: "cli-app" },
        spec: {
          type: "Scala",
          mode: "cluster",
          mainApplicationFile: "local:///nowhere/app.jar",
          sparkVersion: "3.5.1",
        },
      },
    });
    // The operator picked it up: it has a state (whatever the missing file makes of it).
    const start = Date.now();
    let state: string | undefined;
    while (!state && Date.now() - start < 10_000) {
      const app = (await custom.getNamespacedCustomObject({
        group: "sparkoperator.k8s.io",
        version: "v1beta2",
        namespace: "default",
        plural: "sparkapplications",
        name: "cli-app",
      })) as { status?: { applicationState?: { state?: string } } };
      state = app.status?.applicationState?.state || undefined;
      if (!state) await new Promise((r) => setTimeout(r, 50));
    }
    expect(state, "the fake spark-operator never moved the application").toBeTruthy();
    child.kill("SIGINT");
    expect(await exited(child)).toBe(0);

    const bad = spawn(process.execPath, [bin, "kubernetes", "--operators", "flink"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(bad);
    let err = "";
    bad.stderr!.on("data", (d) => (err += d));
    expect(await exited(bad)).not.toBe(0);
    expect(err).toContain('unknown operator "flink"; choose from mpi, spark, kuberay');
  });

  it("rejects an unknown service or option with exit code 2", async () => {
    const unknown = spawn(process.execPath, [bin, "postgres"], { stdio: "ignore" });
    children.push(unknown);
    expect(await exited(unknown)).toBe(2);
    const badOption = spawn(process.execPath, [bin, "kubernetes", "--nope"], { stdio: "ignore" });
    children.push(badOption);
    expect(await exited(badOption)).toBe(2);
  });
});
