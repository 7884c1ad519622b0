/**
 * `spark` against the fake cluster with the fake spark-operator: the SparkApplication it
 * sends, the application's lifecycle, user and system failures, abort, re-attach, logs,
 * and refusal of bad tasks before anything is sent.
 */
import { type TaskStatus, TernError } from "@tern/core";
import { ANNOTATIONS } from "@tern/plugin-k8s";
import { type FakeKubernetes, type KubeObject, makeTaskContext, type TestTaskContext } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { SPARK_APPLICATIONS, type SparkPlugin, type SparkState } from "../src/index.js";
import { APP, ownPlugin, sharedPlugin, sparkCluster, sparkTask, tempDir } from "./helpers.js";

/** Drives a plugin like the engine until a terminal phase. */
async function drive(p: SparkPlugin, ctx: TestTaskContext, state: SparkState): Promise<TaskStatus> {
  for (;;) {
    const s = await p.check(ctx, state);
    if (s.phase === "succeeded" || s.phase === "failed" || s.phase === "aborted") return s;
    await ctx.waitForNotify(200);
  }
}

const apps = (fake: FakeKubernetes): KubeObject[] => fake.cluster.list(SPARK_APPLICATIONS, "default");
const readOutputs = async (ctx: TestTaskContext) =>
  JSON.parse(Buffer.from(await ctx.blobs.get(ctx.blobs.uri(`${ctx.outputPrefix}/outputs.json`))).toString());

const COUNT = sparkTask("word_count", ["count", "{{.inputs.minLength}}"], {
  inputs: { lines: z.array(z.string()), minLength: z.number() },
  output: z.object({ words: z.number(), top: z.string(), app: z.string(), partitions: z.string() }),
  custom: {
    sparkConf: { "spark.sql.shuffle.partitions": 8, "spark.eventLog.enabled": false },
    hadoopConf: { "fs.s3a.endpoint": "http://127.0.0.1:9000" },
    driver: { cores: 1, coreLimit: "1200m", memory: "512m", env: { MODE: "test" }, labels: { team: "data" } },
    executor: { instances: 2, cores: 2, memory: "1g", memoryOverhead: "256m" },
    deps: { jars: ["local:///opt/jars/extra.jar"], packages: ["org.apache.spark:spark-avro_2.12:3.5.1"] },
  },
});
const LINES = ["the quick brown fox", "jumps over the lazy dog", "the end"];

describe("spark plugin", () => {
  it("sends a v1beta2 SparkApplication and succeeds with the driver's typed output", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const states: string[] = [];
    fake.cluster.on(SPARK_APPLICATIONS, (_t, app) => {
      const s = app.status?.applicationState?.state;
      if (s && states.at(-1) !== s) states.push(s);
    });
    const ctx = makeTaskContext(COUNT, { lines: LINES, minLength: 3 }, { workDir: tempDir() });
    const state = await plugin.launch(ctx);
    try {
      expect(state).toEqual({
        cluster: "fake",
        namespace: "default",
        application: `${ctx.execution.id}-n0-1`,
        uid: expect.any(String),
      });
      const sent = fake.requests({
        method: "POST",
        path: "/apis/sparkoperator.k8s.io/v1beta2/namespaces/default/sparkapplications",
      })[0].body as any;
      expect(sent).toMatchObject({
        apiVersion: "sparkoperator.k8s.io/v1beta2",
        kind: "SparkApplication",
        metadata: {
          name: state.application,
          labels: { "app.kubernetes.io/managed-by": "tern", "tern.dev/plugin": "spark" },
        },
        spec: {
          type: "Scala",
          mode: "cluster",
          image: "apache/spark:3.5.1",
          mainApplicationFile: APP,
          arguments: ["count", "3"],
          sparkVersion: "3.5.1",
          restartPolicy: { type: "Never" },
          sparkConf: { "spark.sql.shuffle.partitions": "8", "spark.eventLog.enabled": "false" },
          hadoopConf: { "fs.s3a.endpoint": "http://127.0.0.1:9000" },
          driver: { cores: 1, coreLimit: "1200m", memory: "512m", serviceAccount: "spark" },
          executor: { instances: 2, cores: 2, memory: "1g", memoryOverhead: "256m" },
          deps: {
            jars: ["local:///opt/jars/extra.jar"],
            packages: ["org.apache.spark:spark-avro_2.12:3.5.1"],
          },
        },
      });
      expect(sent.metadata.annotations[ANNOTATIONS.attemptId]).toBe(ctx.attempt.id);
      expect(sent.spec.driver.labels).toMatchObject({ team: "data", "tern.dev/execution": ctx.execution.id });
      for (const role of ["driver", "executor"]) {
        const env = sent.spec[role].env as { name: string; value?: string }[];
        expect(env).toContainEqual({ name: "TERN_ATTEMPT_ID", value: ctx.attempt.id });
        expect(env.find((e) => e.name === "TERN_OUTPUTS_URI")?.value).toBe(
          ctx.blobs.uri(`${ctx.outputPrefix}/outputs.json`),
        );
      }
      expect(sent.spec.driver.env).toContainEqual({ name: "MODE", value: "test" });
      expect(sent.spec.executor.env).not.toContainEqual({ name: "MODE", value: "test" });

      const status = await drive(plugin, ctx, state);
      expect(status.phase, JSON.stringify(status)).toBe("succeeded");
      expect(await readOutputs(ctx)).toEqual({
        words: 11,
        top: "the",
        app: state.application,
        partitions: "8",
      });
      expect(states).toEqual(["SUBMITTED", "RUNNING", "SUCCEEDING", "COMPLETED"]);
      const driver = fake.pod("default", `${state.application}-driver`)!;
      expect(driver.metadata.labels).toMatchObject({
        "spark-role": "driver",
        "spark-app-name": state.application,
      });
      const app = apps(fake)[0];
      expect(app.status).toMatchObject({
        driverInfo: { podName: `${state.application}-driver` },
        sparkApplicationId: expect.stringMatching(/^spark-[0-9a-f]{32}$/),
        executorState: {
          [`${state.application}-exec-1`]: "COMPLETED",
          [`${state.application}-exec-2`]: "COMPLETED",
        },
      });
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
    await fake.waitFor(() => apps(fake).length === 0 && fake.pods("default").length === 0, {
      message: "application and its pods deleted by finalize",
    });
  });

  it("a driver that exits non-zero fails the task as a user error with the operator's message", async () => {
    const fake = await sparkCluster();
    const plugin = await ownPlugin(fake);
    const ctx = makeTaskContext(sparkTask("spark_fail", ["fail", "7"]), {}, { workDir: tempDir() });
    const state = await plugin.launch(ctx);
    try {
      const status = await drive(plugin, ctx, state);
      expect(status.phase).toBe("failed");
      expect(status.error).toMatchObject({ kind: "user", code: "TERN_E_TASK_FAILED" });
      // The operator's message, then the end of the driver's log (what it said before exiting).
      expect(status.error?.message).toBe(
        `task "spark_fail" failed: Spark application fake/default/${state.application} failed (driver container failed with ExitCode: 7, Reason: Error); driver log ends with:\nbad record at line 3`,
      );
      expect(status.error?.details).toMatchObject({ logTail: ["bad record at line 3"] });
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("prefers the error document the application wrote over the exit code", async () => {
    const fake = await sparkCluster();
    const plugin = await ownPlugin(fake);
    const ctx = makeTaskContext(
      sparkTask("spark_doc", ["error-doc", "orders.parquet"]),
      {},
      { workDir: tempDir() },
    );
    const state = await plugin.launch(ctx);
    try {
      const status = await drive(plugin, ctx, state);
      expect(status.phase).toBe("failed");
      expect(status.error).toMatchObject({ kind: "user", message: "schema mismatch in orders.parquet" });
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("a main file missing from the image fails the driver (user); a failed submission is a system error", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const missingLocal = sparkTask("spark_missing_local", ["count"], {
      custom: { mainApplicationFile: "local:///opt/app/does-not-exist.mjs" },
    });
    const missingFile = sparkTask("spark_missing_file", ["count"], {
      custom: { mainApplicationFile: "file:///tmp/tern-no-such-dir/app.mjs" },
    });
    const a = makeTaskContext(missingLocal, {}, { workDir: tempDir() });
    const b = makeTaskContext(missingFile, {}, { workDir: tempDir() });
    const [sa, sb] = await Promise.all([plugin.launch(a), plugin.launch(b)]);
    try {
      const [ra, rb] = await Promise.all([drive(plugin, a, sa), drive(plugin, b, sb)]);
      expect(ra.error).toMatchObject({ kind: "user" });
      expect(ra.error?.message).toContain("driver container failed with ExitCode: 1");
      expect(rb.error).toMatchObject({ kind: "system", code: "TERN_E_SYSTEM" });
      expect(rb.error?.message).toContain("File file:/tmp/tern-no-such-dir/app.mjs does not exist");
      const failed = apps(fake).find((x) => x.metadata.name === sb.application)!;
      expect(failed.status).toMatchObject({
        applicationState: { state: "FAILED" },
        executionAttempts: 0,
        submissionAttempts: 1,
      });
    } finally {
      await plugin.finalize(a, sa);
      await plugin.finalize(b, sb);
      await plugin.close();
    }
  });

  it("an evicted driver is a system error; a preempted one is reported as preempted", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const run = async (name: string, induce: (pod: string) => void) => {
      const ctx = makeTaskContext(
        sparkTask(name, ["forever"]),
        {},
        { workDir: tempDir(), interruptible: true },
      );
      const state = await plugin.launch(ctx);
      try {
        const pod = `${state.application}-driver`;
        await fake.waitFor(() => fake.processes().some((p) => p.pod === pod), { message: "driver running" });
        induce(pod);
        return await drive(plugin, ctx, state);
      } finally {
        await plugin.finalize(ctx, state);
      }
    };
    const evicted = await run("spark_evicted", (pod) => fake.evict("default", pod));
    expect(evicted.error).toMatchObject({ kind: "system" });
    expect(evicted.error?.message).toContain("Evicted");
    const preempted = await run("spark_preempted", (pod) => fake.preempt("default", pod));
    expect(preempted.preempted, JSON.stringify(preempted)).toBe(true);
    expect(preempted.error?.kind).toBe("system");
    await plugin.close();
  });

  it("an application deleted behind Tern's back is lost (system); API trouble at launch is a system error", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const ctx = makeTaskContext(sparkTask("spark_lost", ["forever"]), {}, { workDir: tempDir() });
    const state = await plugin.launch(ctx);
    await fake.waitFor(() => fake.processes().some((p) => p.pod === `${state.application}-driver`));
    fake.cluster.delete(SPARK_APPLICATIONS, "default", state.application);
    const lost = await drive(plugin, ctx, state);
    expect(lost.error).toMatchObject({ kind: "system" });
    expect(lost.error?.message).toContain("was deleted before it finished (lost)");
    await plugin.finalize(ctx, state);

    fake.failNext({ method: "POST", path: /sparkapplications$/ }, { status: 503, count: 10 });
    const ctx2 = makeTaskContext(sparkTask("spark_api_down", ["double", "1"]), {}, { workDir: tempDir() });
    const err = await plugin.launch(ctx2).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(TernError);
    expect(err).toMatchObject({ code: "TERN_E_SYSTEM", kind: "system" });
    expect(err.message).toContain('could not create the SparkApplication of task "spark_api_down"');
    expect(
      apps(fake).filter((a) => a.metadata.annotations?.[ANNOTATIONS.attemptId] === ctx2.attempt.id),
    ).toEqual([]);
    await plugin.close();
  });

  it("abort deletes the application; its driver and executors go with it", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const ctx = makeTaskContext(
      sparkTask("spark_long", ["forever"], { custom: { executor: { instances: 2 } } }),
      {},
      { workDir: tempDir() },
    );
    const state = await plugin.launch(ctx);
    try {
      await fake.waitFor(
        () =>
          fake.pods("default").filter((p) => p.metadata.labels?.["spark-role"] === "executor").length === 2,
        {
          message: "driver and two executors",
        },
      );
      await plugin.abort(ctx, state);
      await plugin.abort(ctx, state);
      expect(fake.requests({ method: "DELETE", path: /sparkapplications\// }).length).toBeGreaterThanOrEqual(
        1,
      );
      await fake.waitFor(() => fake.pods("default").length === 0 && fake.processes().length === 0, {
        message: "pods gone",
      });
      expect(apps(fake)).toEqual([]);
      expect((await drive(plugin, ctx, state)).phase).toBe("aborted");
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("a new plugin instance re-attaches from the persisted state, even to a finished application", async () => {
    const fake = await sparkCluster();
    const first = await ownPlugin(fake, { keepApplications: true });
    const spec = sparkTask("spark_reattach", ["double", "{{.inputs.x}}"], {
      inputs: { x: z.number() },
      output: z.object({ y: z.number() }),
    });
    const ctx = makeTaskContext(spec, { x: 5 }, { workDir: tempDir() });
    const persisted = JSON.parse(JSON.stringify(await first.launch(ctx))) as SparkState;
    await first.close();
    await fake.waitFor(() => apps(fake)[0]?.status?.applicationState?.state === "COMPLETED");
    const second = await ownPlugin(fake, { keepApplications: true });
    const ctx2 = makeTaskContext(
      spec,
      { x: 5 },
      { workDir: ctx.workDir, blobs: ctx.blobs, attemptId: ctx.attempt.id, executionId: ctx.execution.id },
    );
    expect((await drive(second, ctx2, persisted)).phase).toBe("succeeded");
    expect(await readOutputs(ctx2)).toEqual({ y: 10 });
    await second.finalize(ctx2, persisted);
    expect(apps(fake)).toHaveLength(1); // kept
    expect(fake.requests({ method: "POST", path: /sparkapplications$/ })).toHaveLength(1);
    await second.close();
  });

  it("logs() follows the driver's log", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const ctx = makeTaskContext(sparkTask("spark_logs", ["log"]), {}, { workDir: tempDir() });
    const state = await plugin.launch(ctx);
    try {
      const lines: string[] = [];
      for await (const l of plugin.logs(ctx, state)) lines.push(l);
      // stdout and stderr are separate pipes: lines keep their order within each, not across them.
      expect(lines.filter((l) => l !== "stage 1: shuffling on stderr")).toEqual([
        "stage 0: reading input",
        "stage 2: done",
      ]);
      expect(lines).toContain("stage 1: shuffling on stderr");
      expect(lines).toHaveLength(3);
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("refuses a bad task before anything is sent", async () => {
    const fake = await sparkCluster();
    const plugin = await sharedPlugin(fake);
    const bad = sparkTask("spark_bad", ["{{.inputs.nope}}"], { inputs: { x: z.number() } });
    expect(() => plugin.validate(bad)).toThrow(
      'task "spark_bad": custom.arguments refers to {{.inputs.nope}}, which is not an input of the task',
    );
    await expect(plugin.launch(makeTaskContext(bad, { x: 1 }))).rejects.toMatchObject({
      code: "TERN_E_SPEC_INVALID",
      details: { task: "spark_bad", field: "custom.arguments" },
    });
    const noFile = sparkTask("spark_nofile", [], { custom: { mainApplicationFile: "" } });
    await expect(plugin.launch(makeTaskContext(noFile, {}))).rejects.toThrow(
      'task "spark_nofile": custom.mainApplicationFile is missing',
    );
    expect(fake.requests({ method: "POST" })).toEqual([]);
    await plugin.close();
  });
});
