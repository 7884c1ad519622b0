/**
 * Bad task configs and options fail before anything is submitted, with a TERN_E_SPEC_INVALID
 * (or TERN_E_CONFIG) error that names the task and the field and says what to write.
 */
import type { Json } from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import ray, { checkRayTask, rayJobName, submissionId } from "../src/index.js";
import { fakeRay, jobsOptions, rayEngine, rayTask, specOf } from "./helpers.js";

const specWith = (custom: Record<string, Json>, opts: Parameters<typeof rayTask>[2] = {}) =>
  specOf(rayTask("bad_task", custom, { inputs: { n: z.number() }, ...opts }));
const errorOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string; hint?: string; details: Record<string, unknown> };
  }
  throw new Error("expected an error");
};

describe("checkRayTask", () => {
  const cases: {
    name: string;
    custom: Record<string, Json>;
    field: string;
    message: RegExp;
    hint?: RegExp;
    type?: string;
  }[] = [
    {
      name: "missing entrypoint",
      custom: { runtimeEnv: {} },
      field: "custom.entrypoint",
      message: /is missing/,
    },
    {
      name: "empty entrypoint",
      custom: { entrypoint: "  " },
      field: "custom.entrypoint",
      message: /is missing/,
    },
    {
      name: "entrypoint naming an unknown input",
      custom: { entrypoint: "python main.py {{.inputs.count}}" },
      field: "custom.entrypoint",
      message: /\{\{\.inputs\.count\}\}, which is not an input/,
      hint: /inputs are: n/,
    },
    {
      name: "unknown runtime_env key, with a suggestion",
      custom: { entrypoint: "true", runtimeEnv: { workingDir: "s3://b/code.zip" } },
      field: "custom.runtimeEnv.workingDir",
      message: /is not a Ray runtime_env key/,
      hint: /did you mean "working_dir"/,
    },
    {
      name: "unknown runtime_env key without a near match",
      custom: { entrypoint: "true", runtimeEnv: { docker: "x" } },
      field: "custom.runtimeEnv.docker",
      message: /is not a Ray runtime_env key/,
      hint: /known keys: working_dir, py_modules/,
    },
    {
      name: "unknown runtime_env config key",
      custom: { entrypoint: "true", runtimeEnv: { config: { setup_timeout: 10 } } },
      field: "custom.runtimeEnv.config.setup_timeout",
      message: /runtime_env config key/,
      hint: /setup_timeout_seconds/,
    },
    {
      name: "pip and conda together",
      custom: { entrypoint: "true", runtimeEnv: { pip: ["a"], conda: "env" } },
      field: "custom.runtimeEnv",
      message: /pip and conda/,
    },
    {
      name: "a non-string env var",
      custom: { entrypoint: "true", runtimeEnv: { env_vars: { N: 3 } } },
      field: "custom.runtimeEnv.env_vars.N",
      message: /must be a string/,
      hint: /"3"/,
    },
    {
      name: "an env var Tern sets",
      custom: { entrypoint: "true", runtimeEnv: { env_vars: { TERN_OUTPUTS_PATH: "/x" } } },
      field: "custom.runtimeEnv.env_vars.TERN_OUTPUTS_PATH",
      message: /set by Tern/,
    },
    {
      name: "negative CPUs",
      custom: { entrypoint: "true", numCpus: -1 },
      field: "custom.numCpus",
      message: /number ≥ 0/,
    },
    {
      name: "GPUs as a string",
      custom: { entrypoint: "true", numGpus: "1" },
      field: "custom.numGpus",
      message: /number ≥ 0/,
    },
    {
      name: "memory that is no quantity",
      custom: { entrypoint: "true", memory: "1GB" },
      field: "custom.memory",
      message: /not a memory size/,
    },
    {
      name: "fractional bytes",
      custom: { entrypoint: "true", memory: "100m" },
      field: "custom.memory",
      message: /whole number of bytes/,
    },
    {
      name: "CPU as a custom resource",
      custom: { entrypoint: "true", resources: { CPU: 2 } },
      field: "custom.resources.CPU",
      message: /cannot be given as a custom resource/,
      hint: /numCpus/,
    },
    {
      name: "a misspelt setting",
      custom: { entrypoint: "true", runtime_env: {} },
      field: "custom.runtime_env",
      message: /is not a Ray task setting/,
      hint: /did you mean "runtimeEnv"/,
    },
    {
      name: "a KubeRay cluster on a Jobs API task",
      custom: { entrypoint: "true", cluster: { workers: [] } },
      field: "custom.cluster",
      message: /is for KubeRay tasks/,
    },
    {
      name: "a worker group without replicas",
      type: "kuberay",
      custom: { entrypoint: "true", cluster: { workers: [{ cpu: 1 }] } },
      field: "custom.cluster.workers[0].replicas",
      message: /is missing/,
    },
    {
      name: "replicas outside min/max",
      type: "kuberay",
      custom: { entrypoint: "true", cluster: { workers: [{ replicas: 5, maxReplicas: 2 }] } },
      field: "custom.cluster.workers[0].replicas",
      message: /between minReplicas and maxReplicas/,
    },
    {
      name: "a worker memory that is no quantity",
      type: "kuberay",
      custom: { entrypoint: "true", cluster: { workers: [{ replicas: 1, memory: "lots" }] } },
      field: "custom.cluster.workers[0].memory",
      message: /not a Kubernetes quantity/,
    },
    {
      name: "fractional worker GPUs",
      type: "kuberay",
      custom: { entrypoint: "true", cluster: { head: { gpu: 0.5 } } },
      field: "custom.cluster.head.gpu",
      message: /whole number/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const type = c.type ?? "ray";
      const e = errorOf(() =>
        checkRayTask(specWith(c.custom, { type }), type === "ray" ? "jobs" : "kuberay"),
      );
      expect(e.code).toBe("TERN_E_SPEC_INVALID");
      expect(e.message).toContain(`task "bad_task": ${c.field} `);
      expect(e.message).toMatch(c.message);
      expect(e.details).toMatchObject({ task: "bad_task", field: c.field });
      if (c.hint) expect(e.hint).toMatch(c.hint);
    });
  }

  it("takes CPUs, GPUs and memory from the task's resources when custom gives none", () => {
    const spec = specOf(
      rayTask(
        "sized",
        { entrypoint: "true" },
        { extra: { resources: { requests: { cpu: "1500m", memory: "2Gi" }, gpu: 1 } } },
      ),
    );
    expect(checkRayTask(spec, "jobs")).toMatchObject({ numCpus: 1.5, numGpus: 1, memoryBytes: 2 * 2 ** 30 });
  });

  it("rejects invalid task resources by their field", () => {
    const spec = specOf(
      rayTask(
        "sized_badly",
        { entrypoint: "true" },
        { extra: { resources: { requests: { memory: "2 GB" } } } },
      ),
    );
    expect(errorOf(() => checkRayTask(spec, "jobs")).message).toContain("resources.requests.memory");
  });
});

describe("before anything is submitted", () => {
  it("the engine refuses a bad task and the dashboard sees no submit", async () => {
    const fake = await fakeRay();
    const te = await rayEngine(jobsOptions(fake));
    const result = await te
      .run(rayTask("bad_env", { entrypoint: "true", runtimeEnv: { pip_packages: ["x"] } }))
      .catch((e) => ({ phase: "thrown", error: e }));
    expect(result.error).toMatchObject({ code: "TERN_E_SPEC_INVALID" });
    expect(String(result.error?.message)).toContain("custom.runtimeEnv.pip_packages");
    expect(fake.requests({ route: "submit" })).toHaveLength(0);
  });
});

describe("options", () => {
  it("needs an address or kuberay", () => {
    expect(() => ray({})).toThrow(/neither address nor kuberay/);
  });
  it("refuses an address that is no URL, and task types shared by both plugins", () => {
    expect(() => ray({ address: "ray-head:8265" })).toThrow(/not a URL|http/);
    expect(() =>
      ray({
        address: "http://x:8265",
        kuberay: { clusters: [{ name: "a", kubeconfig: "k", namespace: "n" }], taskTypes: ["ray"] },
      }),
    ).toThrow(/given to both ray-job/);
  });
});

describe("names", () => {
  it("submission ids and RayJob names are deterministic, distinct and valid", () => {
    const a = "c1234-train/dyn-1";
    expect(submissionId(a)).toBe(submissionId(a));
    expect(submissionId(a)).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(submissionId(a)).not.toBe(submissionId("c1234-train-dyn-1"));
    expect(submissionId("c1-n0-1")).toBe("tern-c1-n0-1");
    const long = `c${"x".repeat(80)}-node-1`;
    expect(rayJobName(long).length).toBeLessThanOrEqual(37);
    expect(rayJobName(long)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(rayJobName(long)).not.toBe(rayJobName(`${long}2`));
  });
});
