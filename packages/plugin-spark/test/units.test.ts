/**
 * The parts that need no cluster: checks of a spark task's `custom`, the options, the
 * application-state table, Spark memory strings, and how spark() finds its clusters.
 */
import { createEngine, type Json, TernError } from "@tern/core";
import k8s from "@tern/plugin-k8s";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import spark, {
  parseSparkMemory,
  resolveSparkOptions,
  sparkApplicationStatus,
  sparkConfig,
} from "../src/index.js";
import { APP, clusterOf, k8sOptions, sparkCluster, sparkTask, tempDir } from "./helpers.js";

const OPTS = resolveSparkOptions({ defaultImage: "apache/spark:3.5.1" });
const withCustom = (custom: Record<string, Json>, extra: Record<string, unknown> = {}) =>
  sparkTask("etl", ["{{.inputs.day}}"], { inputs: { day: z.string() }, custom, extra });

function specFailure(custom: Record<string, Json>, extra: Record<string, unknown> = {}): TernError {
  try {
    sparkConfig(withCustom(custom, extra), OPTS);
  } catch (e) {
    expect(e).toBeInstanceOf(TernError);
    expect((e as TernError).code).toBe("TERN_E_SPEC_INVALID");
    expect((e as TernError).details.task).toBe("etl");
    return e as TernError;
  }
  throw new Error("expected a TERN_E_SPEC_INVALID error");
}

describe("sparkConfig", () => {
  it("fills in defaults and writes Spark properties as strings", () => {
    const cfg = sparkConfig(
      withCustom({ sparkConf: { "spark.sql.shuffle.partitions": 4, "spark.speculation": true } }),
      OPTS,
    );
    expect(cfg).toMatchObject({
      type: "Scala",
      mainApplicationFile: APP,
      image: "apache/spark:3.5.1",
      sparkVersion: "3.5.1",
      sparkConf: { "spark.sql.shuffle.partitions": "4", "spark.speculation": "true" },
      driver: { cores: 1, memory: "512m" },
      executor: { cores: 1, memory: "512m", instances: 1 },
    });
  });

  it("infers the application type from the main file", () => {
    const typeOf = (f: string) =>
      sparkConfig(withCustom({ type: null as unknown as Json, mainApplicationFile: f }), OPTS).type;
    expect(typeOf("local:///opt/app/etl.py")).toBe("Python");
    expect(typeOf("s3a://bucket/jobs/etl.jar")).toBe("Scala");
    expect(typeOf("local:///opt/app/report.R")).toBe("R");
  });

  const cases: [string, Record<string, Json>, string, string | RegExp][] = [
    [
      "missing main file",
      { mainApplicationFile: null as unknown as Json },
      "custom.mainApplicationFile",
      "is missing",
    ],
    [
      "relative main file",
      { mainApplicationFile: "main.py" },
      "custom.mainApplicationFile",
      "is not a URI or absolute path",
    ],
    ["unknown type", { type: "Go" }, "custom.type", '"Go" is not a Spark application type'],
    [
      "no type to infer",
      { type: null as unknown as Json, mainApplicationFile: "local:///opt/app/run.sh" },
      "custom.type",
      "cannot be told",
    ],
    [
      "mainClass on Python",
      { type: "Python", mainClass: "x.Y" },
      "custom.mainClass",
      "is set but the application is Python",
    ],
    [
      "zero cores",
      { driver: { cores: 0 } },
      "custom.driver.cores",
      "must be a whole number of cores ≥ 1, not 0",
    ],
    ["fractional cores", { executor: { cores: 1.5 } }, "custom.executor.cores", "not 1.5"],
    [
      "Kubernetes memory",
      { driver: { memory: "512Mi" } },
      "custom.driver.memory",
      '"512Mi" is not a positive size',
    ],
    [
      "bad memory",
      { executor: { memory: "lots" } },
      "custom.executor.memory",
      '"lots" is not a positive size',
    ],
    ["zero memory", { executor: { memory: "0g" } }, "custom.executor.memory", "is not a positive size"],
    [
      "bad coreLimit",
      { driver: { coreLimit: "fast" } },
      "custom.driver.coreLimit",
      '"fast" is not a positive CPU quantity',
    ],
    [
      "no executors",
      { executor: { instances: 0 } },
      "custom.executor.instances",
      "must be a whole number ≥ 1, not 0",
    ],
    ["unknown driver field", { driver: { gpus: 1 } }, "custom.driver.gpus", "is not a known field"],
    [
      "unknown field",
      { restartPolicy: { type: "OnFailure" } },
      "custom.restartPolicy",
      "is not a field of a spark task",
    ],
    [
      "nested sparkConf",
      { sparkConf: { "spark.sql": { shuffle: 1 } } },
      'custom.sparkConf["spark.sql"]',
      "must be a string, number or boolean, not an object",
    ],
    ["null sparkConf value", { sparkConf: { "spark.x": null } }, 'custom.sparkConf["spark.x"]', "not null"],
    [
      "non-Spark key",
      { sparkConf: { "executor.memory": "1g" } },
      'custom.sparkConf["executor.memory"]',
      "is not a Spark property",
    ],
    [
      "Hadoop key in sparkConf",
      { sparkConf: { "spark.hadoop.fs.s3a.endpoint": "x" } },
      'custom.sparkConf["spark.hadoop.fs.s3a.endpoint"]',
      "is a Hadoop property",
    ],
    [
      "non-numeric instances",
      { sparkConf: { "spark.executor.instances": "two" } },
      'custom.sparkConf["spark.executor.instances"]',
      'must be a whole number, not "two"',
    ],
    [
      "non-boolean flag",
      { sparkConf: { "spark.dynamicAllocation.enabled": "yes" } },
      'custom.sparkConf["spark.dynamicAllocation.enabled"]',
      'must be true or false, not "yes"',
    ],
    [
      "bad size property",
      { sparkConf: { "spark.executor.memory": "1GiB" } },
      'custom.sparkConf["spark.executor.memory"]',
      '"1GiB" is not a Spark size',
    ],
    [
      "sparkConf not an object",
      { sparkConf: ["spark.x=1"] },
      "custom.sparkConf",
      "must be an object of properties, not a list",
    ],
    ["arguments not strings", { arguments: [1, 2] }, "custom.arguments", "must be a list of strings"],
    [
      "bad package",
      { deps: { packages: ["spark-avro"] } },
      "custom.deps.packages",
      '"spark-avro" is not a Maven coordinate',
    ],
    [
      "unknown deps list",
      { deps: { wheels: ["x"] } },
      "custom.deps.wheels",
      "is not a known dependency list",
    ],
    [
      "bad env name",
      { executor: { env: { "1BAD": "x" } } },
      "custom.executor.env.1BAD",
      "is not a valid environment variable name",
    ],
    [
      "unknown input in main file",
      { mainApplicationFile: "local:///opt/{{.inputs.app}}.py" },
      "custom.mainApplicationFile",
      "{{.inputs.app}}",
    ],
    [
      "unknown input in sparkConf",
      { sparkConf: { "spark.app.tag": "{{.inputs.tag}}" } },
      "custom.sparkConf",
      "{{.inputs.tag}}",
    ],
  ];
  it.each(cases)("refuses %s, naming the field", (_what, custom, field, message) => {
    const e = specFailure(custom);
    expect(e.details.field).toBe(field);
    expect(e.message).toContain(`task "etl": ${field}`);
    if (typeof message === "string") expect(e.message).toContain(message);
    else expect(e.message).toMatch(message);
    expect(e.hint, "every refusal says what to do").toBeTruthy();
  });

  it("suggests Spark's unit for a Kubernetes-style memory", () => {
    expect(specFailure({ driver: { memory: "2Gi" } }).hint).toContain('"2g"');
  });

  it("refuses task-level resources, which Spark tasks do not use", () => {
    const e = specFailure({}, { resources: { limits: { cpu: "2" } } });
    expect(e.details.field).toBe("resources");
    expect(e.hint).toContain("custom.driver");
  });

  it("needs an image from the task or the options", () => {
    expect(() => sparkConfig(withCustom({}), resolveSparkOptions({}))).toThrow(
      'task "etl": image is not set and the spark plugin has no defaultImage',
    );
    expect(sparkConfig(withCustom({}, { image: "acme/etl:1" }), resolveSparkOptions({})).image).toBe(
      "acme/etl:1",
    );
  });

  it("merges the options' sparkConf under the task's", () => {
    const opts = resolveSparkOptions({
      defaultImage: "x",
      sparkConf: { "spark.eventLog.enabled": "true", "spark.sql.shuffle.partitions": "200" },
    });
    expect(
      sparkConfig(withCustom({ sparkConf: { "spark.sql.shuffle.partitions": 8 } }), opts).sparkConf,
    ).toEqual({
      "spark.eventLog.enabled": "true",
      "spark.sql.shuffle.partitions": "8",
    });
  });
});

describe("parseSparkMemory", () => {
  it("reads JVM sizes; a bare number is MiB", () => {
    expect(parseSparkMemory("512m")).toBe(512 * 2 ** 20);
    expect(parseSparkMemory("2g")).toBe(2 * 2 ** 30);
    expect(parseSparkMemory("2GB")).toBe(2 * 2 ** 30);
    expect(parseSparkMemory("4096k")).toBe(4096 * 2 ** 10);
    expect(parseSparkMemory("1024")).toBe(1024 * 2 ** 20);
    for (const bad of ["512Mi", "1.5g", "", "-1g", "g", 512]) expect(parseSparkMemory(bad)).toBeUndefined();
  });
});

describe("sparkApplicationStatus", () => {
  const app = (state: string | undefined, extra: Record<string, unknown> = {}) => ({
    metadata: { name: "a" },
    status: state === undefined ? undefined : { applicationState: { state, ...extra }, executionAttempts: 1 },
  });
  it.each([
    [undefined, "initializing"],
    ["", "initializing"],
    ["SUBMITTED", "initializing"],
    ["PENDING_RERUN", "initializing"],
    ["INVALIDATING", "initializing"],
    ["RUNNING", "running"],
    ["SUCCEEDING", "running"],
    ["FAILING", "running"],
    ["UNKNOWN", "running"],
    ["COMPLETED", "succeeded"],
  ])("%s → %s", (state, phase) => {
    expect(sparkApplicationStatus(app(state), "c/ns/a", "t").phase).toBe(phase);
  });

  it("FAILED after the driver ran is the task's fault; before, or with the driver lost, the platform's", () => {
    const user = sparkApplicationStatus(
      app("FAILED", { errorMessage: "driver container failed with ExitCode: 1, Reason: Error" }),
      "c/ns/a",
      "t",
    );
    expect(user.error).toMatchObject({ kind: "user", code: "TERN_E_TASK_FAILED" });
    expect(user.driverFailed).toBe(true);
    const lost = sparkApplicationStatus(
      app("FAILED", { errorMessage: "driver pod not found" }),
      "c/ns/a",
      "t",
    );
    expect(lost.error?.kind).toBe("system");
    const unsubmitted = sparkApplicationStatus(
      {
        metadata: { name: "a" },
        status: {
          applicationState: { state: "FAILED", errorMessage: "failed to submit" },
          executionAttempts: 0,
        },
      },
      "c/ns/a",
      "t",
    );
    expect(unsubmitted.error?.kind).toBe("system");
    const submission = sparkApplicationStatus(
      app("SUBMISSION_FAILED", { errorMessage: "spark-submit: boom" }),
      "c/ns/a",
      "t",
    );
    expect(submission.error).toMatchObject({ kind: "system", code: "TERN_E_SYSTEM" });
    expect(submission.message).toContain("spark-submit: boom");
  });
});

describe("spark() options and clusters", () => {
  it("checks its options at once", () => {
    expect(() => spark({ sparkConf: { "spark.x": 1 as unknown as string } })).toThrow(
      'sparkConf["spark.x"] must be a string',
    );
    expect(() => spark({ clusters: [] })).toThrow(/@tern\/plugin-spark: no clusters configured/);
    expect(() => spark({ routing: { byProject: {} } })).toThrow("no clusters are given");
    expect(() => spark({ keepApplications: "yes" as never })).toThrow(/keepApplications/);
  });

  it("fails engine start-up when neither spark() nor a k8s() names a cluster", async () => {
    const err = await createEngine({
      workDir: tempDir(),
      catalog: false,
      plugins: [spark({ defaultImage: "x" })],
    }).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(TernError);
    expect(err).toMatchObject({ code: "TERN_E_CONFIG" });
    expect(err.message).toContain("no Kubernetes cluster to run Spark applications on");
    expect(err.hint).toContain("k8s({ clusters");
  });

  it("shares the cluster pool of k8s(), whichever comes first in plugins", async () => {
    const fake = await sparkCluster();
    for (const order of ["spark-first", "k8s-first"]) {
      const plugins =
        order === "spark-first"
          ? [spark({ defaultImage: "x" }), k8s(k8sOptions([clusterOf(fake)]))]
          : [k8s(k8sOptions([clusterOf(fake)])), spark({ defaultImage: "x" })];
      const local = await createEngine({
        workDir: tempDir(),
        catalog: false,
        plugins,
        backendConfig: { defaultForTaskTypes: { node: "inline" } },
      });
      try {
        const sparkPlugin = local.registry.forType("spark") as unknown as { clusters: unknown };
        const podPlugin = local.registry.get("k8s-pod") as unknown as { clusters: unknown };
        expect(sparkPlugin.clusters).toBe(podPlugin.clusters);
      } finally {
        await local.close();
      }
    }
  });
});
