import * as fs from "node:fs";
import * as path from "node:path";
import { type FakeKubernetes, startFakeKubernetes } from "@tern/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProject, removeProject, repoRoot, tern, ternJson } from "./helpers.js";

/**
 * `tern run --backend k8s` with the plugin loaded from tern.config.ts, like any
 * third-party plugin: the TypeScript task runs as a pod on the Kubernetes fake,
 * whose kubelet really runs tern-execute.
 */
let project: string;
let fake: FakeKubernetes;

beforeAll(async () => {
  fake = await startFakeKubernetes();
  project = makeProject();
  fs.symlinkSync(
    path.join(repoRoot, "packages/plugin-k8s"),
    path.join(project, "node_modules/@tern/plugin-k8s"),
    "dir",
  );
  const ternExecute = path.join(repoRoot, "packages/core/dist/bin/tern-execute.js");
  fs.writeFileSync(
    path.join(project, "tern.config.ts"),
    `import k8s from "@tern/plugin-k8s";
export default {
  plugins: [k8s({
    clusters: [{ name: "fake", kubeconfig: ${JSON.stringify(fake.kubeconfig())}, namespace: "default" }],
    nodeCommand: [${JSON.stringify(process.execPath)}, ${JSON.stringify(ternExecute)}],
    defaultImage: "tern-tasks:test",
  })],
};
`,
  );
});

afterAll(async () => {
  removeProject(project);
  await fake.close();
});

describe("tern run --backend k8s", () => {
  it("runs the task as a pod and returns its typed output", async () => {
    const r = await ternJson(project, [
      "run",
      "flows.ts",
      "hello",
      "--name",
      "Pod",
      "--backend",
      "k8s",
      "--no-cache",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.outputs).toBe("Hello, Pod!");
    const created = fake.requests().filter((q) => q.method === "POST" && q.path.endsWith("/pods"));
    expect(created.length).toBe(1);
  });

  it("without --backend, TypeScript tasks have two candidates and the run says how to choose", async () => {
    const r = await tern(project, ["run", "flows.ts", "hello"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("TERN_E_PLUGIN_AMBIGUOUS");
    expect(r.stderr).toMatch(/defaultForTaskTypes/);
  });

  it("an unknown backend names the ones there are", async () => {
    const r = await tern(project, ["run", "flows.ts", "hello", "--backend", "ray"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown backend "ray"/);
    expect(r.stderr).toMatch(/k8s-pod/);
  });
});
