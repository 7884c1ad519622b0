/**
 * The fake spark-operator, driven through the real client-node over the fake's socket:
 * submission, the driver pod and its process, executors, the state sequence and status
 * fields, failures (driver exit, missing files, lost driver), restart policy, deletion,
 * and a test taking an application over.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type FakeKubernetes, installSparkOperator, type KubeObject } from "../src/index.js";
import { type Harness, harness } from "./helpers.js";

const SPARK = { group: "sparkoperator.k8s.io", version: "v1beta2", plural: "sparkapplications" };
const dir = mkdtempSync(path.join(os.tmpdir(), "tern-spark-operator-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, body);
  return file;
}

const DRIVER = script(
  "driver.mjs",
  `import { readFileSync } from "node:fs";
const conf = readFileSync(process.env.SPARK_CONF_DIR + "/spark.properties", "utf8");
console.log("args " + JSON.stringify(process.argv.slice(2)));
console.log("app " + process.env.SPARK_APPLICATION_ID + " env " + process.env.MODE);
for (const line of conf.split("\\n").filter((l) => /partitions|hadoop|executor.instances|app.name/.test(l))) console.log(line);
await new Promise((r) => setTimeout(r, 200));`,
);
const FAIL = script("fail.mjs", `console.error("boom"); process.exit(4);`);
const FOREVER = script("forever.mjs", "setInterval(() => {}, 1000);");

function app(name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: "sparkoperator.k8s.io/v1beta2",
    kind: "SparkApplication",
    metadata: { name },
    spec: {
      type: "Scala",
      mode: "cluster",
      image: "apache/spark:3.5.1",
      sparkVersion: "3.5.1",
      restartPolicy: { type: "Never" },
      driver: { cores: 1, memory: "512m" },
      executor: { instances: 1, cores: 1, memory: "512m" },
      ...spec,
    },
  };
}

async function setUp(): Promise<Harness & { states: Map<string, string[]> }> {
  const h = await harness({ schedulingDelayMs: 2, containerStartDelayMs: 2, maxGracePeriodMs: 300 });
  installSparkOperator(h.fake, { pollMs: 10 });
  const states = new Map<string, string[]>();
  h.fake.cluster.on(SPARK, (_t, obj) => {
    const s = obj.status?.applicationState?.state;
    const seen = states.get(obj.metadata.name!) ?? [];
    if (s !== undefined && seen.at(-1) !== s) seen.push(s);
    states.set(obj.metadata.name!, seen);
  });
  return { ...h, states };
}

const create = (h: Harness, body: KubeObject) =>
  h.custom.createNamespacedCustomObject({ ...SPARK, namespace: "default", body });
const get = async (h: Harness, name: string) =>
  (await h.custom.getNamespacedCustomObject({ ...SPARK, namespace: "default", name })) as KubeObject;
const until = (fake: FakeKubernetes, name: string, states: string[]) =>
  fake.waitFor(
    () => {
      const a = fake.cluster.get(SPARK, "default", name);
      return a && states.includes(a.status?.applicationState?.state) ? a : undefined;
    },
    { message: `${name} to reach ${states.join(" or ")}` },
  );

describe("fake spark-operator", () => {
  it("submits, runs the main file as the driver, starts executors, and completes", async () => {
    const h = await setUp();
    await create(
      h,
      app("wc", {
        mainApplicationFile: `local://${DRIVER}`,
        arguments: ["--min", "3"],
        sparkConf: { "spark.sql.shuffle.partitions": "8" },
        hadoopConf: { "fs.s3a.endpoint": "http://127.0.0.1:9000" },
        driver: {
          cores: 1,
          coreLimit: "1200m",
          memory: "512m",
          env: [{ name: "MODE", value: "test" }],
          labels: { team: "data" },
        },
        executor: { instances: 2, cores: 1, memory: "1g" },
      }),
    );
    await h.fake.waitFor(
      () => h.fake.pods("default").filter((p) => p.metadata.name!.startsWith("wc-exec-")).length === 2,
      {
        message: "two executors while the driver runs",
      },
    );
    const done = await until(h.fake, "wc", ["COMPLETED"]);
    expect(h.states.get("wc")).toEqual(["SUBMITTED", "RUNNING", "SUCCEEDING", "COMPLETED"]);
    const read = await get(h, "wc");
    expect(read.status).toEqual(done.status);
    expect(read.status).toMatchObject({
      applicationState: { state: "COMPLETED" },
      driverInfo: { podName: "wc-driver" },
      sparkApplicationId: expect.stringMatching(/^spark-[0-9a-f]{32}$/),
      submissionID: expect.stringMatching(/^[0-9a-f-]{36}$/),
      submissionAttempts: 1,
      executionAttempts: 1,
      lastSubmissionAttemptTime: expect.stringMatching(/Z$/),
      terminationTime: expect.stringMatching(/Z$/),
      executorState: { "wc-exec-1": "COMPLETED", "wc-exec-2": "COMPLETED" },
    });
    expect(read.status.applicationState.errorMessage).toBeUndefined();

    const driver = await h.core.readNamespacedPod({ name: "wc-driver", namespace: "default" });
    expect(driver.metadata?.labels).toMatchObject({
      "spark-role": "driver",
      "spark-app-name": "wc",
      "spark-app-selector": read.status.sparkApplicationId,
      team: "data",
    });
    expect(driver.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "SparkApplication", name: "wc" });
    const c = driver.spec!.containers[0];
    expect(c.name).toBe("spark-kubernetes-driver");
    expect(c.command).toEqual([process.execPath, DRIVER, "--min", "3"]);
    expect(c.resources).toEqual({
      requests: { cpu: "1", memory: "896Mi" },
      limits: { cpu: "1200m", memory: "896Mi" },
    });
    const log = await h.core.readNamespacedPodLog({ name: "wc-driver", namespace: "default" });
    expect(log.split("\n")).toEqual(
      expect.arrayContaining([
        'args ["--min","3"]',
        `app ${read.status.sparkApplicationId} env test`,
        "spark.app.name=wc",
        "spark.executor.instances=2",
        "spark.sql.shuffle.partitions=8",
        "spark.hadoop.fs.s3a.endpoint=http\\://127.0.0.1\\:9000",
      ]),
    );
    // The executors were removed when the driver ended; the driver pod stays until the application goes.
    expect(h.fake.pods("default").map((p) => p.metadata.name)).toEqual(["wc-driver"]);
  });

  it("a driver that exits non-zero fails the application with the exit code", async () => {
    const h = await setUp();
    await create(h, app("bad", { mainApplicationFile: `local://${FAIL}` }));
    const a = await until(h.fake, "bad", ["FAILED"]);
    // RUNNING shows only if the operator looks while the short-lived driver runs.
    expect(h.states.get("bad")![0]).toBe("SUBMITTED");
    expect(h.states.get("bad")!.slice(-2)).toEqual(["FAILING", "FAILED"]);
    expect(a.status.applicationState).toEqual({
      state: "FAILED",
      errorMessage: "driver container failed with ExitCode: 4, Reason: Error",
    });
  });

  it("a missing local:// file fails the driver; a missing file:// or an unfetchable URI fails the submission", async () => {
    const h = await setUp();
    await create(h, app("nolocal", { mainApplicationFile: "local:///opt/tern/missing.mjs" }));
    await create(h, app("nofile", { mainApplicationFile: `file://${dir}/missing.mjs` }));
    await create(h, app("remote", { mainApplicationFile: "s3a://bucket/app.py" }));
    const local = await until(h.fake, "nolocal", ["FAILED"]);
    expect(local.status.applicationState.errorMessage).toBe(
      "driver container failed with ExitCode: 1, Reason: Error",
    );
    expect(local.status.executionAttempts).toBe(1);
    const file = await until(h.fake, "nofile", ["FAILED"]);
    expect(h.states.get("nofile")).toEqual(["SUBMISSION_FAILED", "FAILED"]);
    expect(file.status).toMatchObject({
      applicationState: {
        state: "FAILED",
        errorMessage: `failed to submit spark application: spark-submit: File file:${dir}/missing.mjs does not exist`,
      },
      submissionAttempts: 1,
      executionAttempts: 0,
    });
    expect(h.fake.pod("default", "nofile-driver")).toBeUndefined();
    const remote = await until(h.fake, "remote", ["FAILED"]);
    expect(remote.status.applicationState.errorMessage).toContain("cannot fetch s3a://bucket/app.py");
  });

  it("picks the runner by extension: python3 for .py, java -cp for a jar with its main class", async () => {
    const h = await setUp();
    const py = script("job.py", "print('hi')\n");
    await create(h, app("py", { type: "Python", mainApplicationFile: `local://${py}`, arguments: ["a"] }));
    await create(
      h,
      app("jar", { mainApplicationFile: `local://${dir}/job.jar`, mainClass: "org.acme.Main" }),
    );
    await create(h, app("nojarclass", { mainApplicationFile: `local://${dir}/job.jar` }));
    const pyPod = await h.fake.waitForPod("default", "py-driver", () => true);
    expect(pyPod.spec.containers[0].command).toEqual(["python3", py, "a"]);
    const jarPod = await h.fake.waitForPod("default", "jar-driver", () => true);
    expect(jarPod.spec.containers[0].command).toEqual(["java", "-cp", `${dir}/job.jar`, "org.acme.Main"]);
    const noClass = await until(h.fake, "nojarclass", ["FAILED"]);
    expect(noClass.status.applicationState.errorMessage).toContain("no main class set in JAR");
    for (const n of ["py", "jar"]) await until(h.fake, n, ["COMPLETED", "FAILED"]);
  });

  it("restartPolicy OnFailure re-runs the driver within onFailureRetries", async () => {
    const h = await setUp();
    await create(
      h,
      app("retry", {
        mainApplicationFile: `local://${FAIL}`,
        restartPolicy: { type: "OnFailure", onFailureRetries: 1 },
      }),
    );
    const a = await until(h.fake, "retry", ["FAILED"]);
    expect(h.states.get("retry")).toContain("PENDING_RERUN");
    expect(a.status).toMatchObject({ executionAttempts: 2, submissionAttempts: 2 });
  });

  it('a deleted driver pod fails the application as "driver pod not found"', async () => {
    const h = await setUp();
    await create(h, app("lost", { mainApplicationFile: `local://${FOREVER}` }));
    await until(h.fake, "lost", ["RUNNING"]);
    h.fake.lose("default", "lost-driver");
    const a = await until(h.fake, "lost", ["FAILED"]);
    expect(a.status.applicationState.errorMessage).toBe("driver pod not found");
    expect(h.states.get("lost")!.slice(-2)).toEqual(["FAILING", "FAILED"]);
  });

  it("deleting the application removes its driver and executors and stops their processes", async () => {
    const h = await setUp();
    await create(h, app("gone", { mainApplicationFile: `local://${FOREVER}`, executor: { instances: 2 } }));
    await until(h.fake, "gone", ["RUNNING"]);
    await h.fake.waitFor(() => h.fake.processes().length === 3, {
      message: "driver and two executors running",
    });
    await h.custom.deleteNamespacedCustomObject({ ...SPARK, namespace: "default", name: "gone" });
    await h.fake.waitFor(() => h.fake.pods("default").length === 0 && h.fake.processes().length === 0, {
      message: "pods and processes gone",
    });
  });

  it("lets a test take an application over by setting its state", async () => {
    const h = await setUp();
    await create(h, app("scripted", { mainApplicationFile: `local://${FOREVER}` }));
    await until(h.fake, "scripted", ["RUNNING"]);
    h.fake.cluster.patchStatus(SPARK, "default", "scripted", {
      applicationState: { state: "FAILED", errorMessage: "injected by the test" },
    });
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(h, "scripted")).status.applicationState).toEqual({
      state: "FAILED",
      errorMessage: "injected by the test",
    });
  });
});
