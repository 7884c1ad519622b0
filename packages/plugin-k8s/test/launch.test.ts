/**
 * Launch idempotency across plugin instances (409 → adopt), name conflicts, `keepPods`,
 * and following a pod from persisted state when it changed while nobody watched.
 */
import { makeTaskContext, resolveBackendPlugin } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import k8s, { type K8sOptions, type PodPlugin, type PodState } from "../src/index.js";
import {
  clusterOf,
  fakeCluster,
  nodeScriptTask,
  specOf,
  tempDir,
  testOptions,
  writeOutput,
} from "./helpers.js";

async function pluginFor(
  fake: Awaited<ReturnType<typeof fakeCluster>>,
  extra: Partial<K8sOptions> = {},
): Promise<PodPlugin> {
  return resolveBackendPlugin<PodPlugin>(k8s(testOptions([clusterOf(fake)], extra)), "k8s-pod");
}

async function drive(p: PodPlugin, ctx: ReturnType<typeof makeTaskContext>, s: PodState) {
  for (;;) {
    const st = await p.check(ctx, s);
    if (st.phase === "succeeded" || st.phase === "failed" || st.phase === "aborted") return st;
    await ctx.waitForNotify(200);
  }
}

const ok = specOf(
  nodeScriptTask("launch_ok", `setTimeout(() => { ${writeOutput("1")} }, 200)`, { output: z.number() }),
);
const bad = specOf(nodeScriptTask("launch_bad", "process.exit(5)"));

describe("launch", () => {
  it("a second instance launching the same attempt meets the first pod (409) and adopts it", async () => {
    const fake = await fakeCluster();
    const [a, b] = [await pluginFor(fake), await pluginFor(fake)];
    const workDir = tempDir();
    const ctx = makeTaskContext(ok, {}, { workDir });
    const sa = await a.launch(ctx);
    const sb = await b.launch(makeTaskContext(ok, {}, { workDir, executionId: ctx.execution.id }));
    expect(sb).toEqual(sa);
    const posts = fake.requests({ method: "POST", path: /\/pods$/ });
    expect(posts.map((r) => r.status)).toEqual([201, 409]);
    expect(fake.requests({ method: "GET", path: `/api/v1/namespaces/default/pods/${sa.pod}` })).toHaveLength(
      1,
    );
    expect(fake.pods("default")).toHaveLength(1);
    expect((await drive(b, ctx, sb)).phase).toBe("succeeded");
    await b.finalize(ctx, sb);
    await a.close();
    await b.close();
  });

  it("a pod under the attempt's name that was made for something else is a conflict, not adopted", async () => {
    const fake = await fakeCluster();
    const p = await pluginFor(fake);
    const ctx = makeTaskContext(ok, {}, { workDir: tempDir() });
    fake.cluster.create({ group: "", plural: "pods" }, "default", {
      metadata: { name: ctx.attempt.id, labels: { app: "other" } },
      spec: { containers: [{ name: "main", image: "x", command: ["sleep", "60"] }] },
    });
    await expect(p.launch(ctx)).rejects.toMatchObject({
      code: "TERN_E_CONFLICT",
      message: expect.stringContaining(`a pod named "${ctx.attempt.id}" already exists`),
    });
    await p.close();
  });

  it('keepPods: "failed" keeps failed pods for inspection and deletes succeeded ones', async () => {
    const fake = await fakeCluster();
    const p = await pluginFor(fake, { keepPods: "failed" });
    const workDir = tempDir();
    const runs: [ReturnType<typeof makeTaskContext>, PodState][] = [];
    for (const spec of [ok, bad]) {
      const ctx = makeTaskContext(spec, {}, { workDir });
      const s = await p.launch(ctx);
      await drive(p, ctx, s);
      await p.finalize(ctx, s);
      runs.push([ctx, s]);
    }
    await fake.waitFor(() => !fake.pod("default", runs[0][1].pod), { message: "succeeded pod deleted" });
    expect(fake.pod("default", runs[1][1].pod)?.status?.phase).toBe("Failed");
    await p.close();
  });

  it("a restarted plugin follows a pod that finished and one that vanished while nobody watched", async () => {
    const fake = await fakeCluster();
    const a = await pluginFor(fake);
    const workDir = tempDir();
    const done = makeTaskContext(ok, {}, { workDir });
    const gone = makeTaskContext(
      specOf(nodeScriptTask("launch_gone", "setInterval(() => {}, 1000)")),
      {},
      { workDir },
    );
    const sDone = await a.launch(done);
    const sGone = await a.launch(gone);
    await a.close();
    await fake.waitForPod("default", sDone.pod, (p) => p.status?.phase === "Succeeded");
    fake.lose("default", sGone.pod);
    const b = await pluginFor(fake);
    expect((await drive(b, done, sDone)).phase).toBe("succeeded");
    const lost = await drive(b, gone, sGone);
    expect(lost).toMatchObject({
      phase: "failed",
      error: { kind: "system", message: expect.stringContaining("no longer exists (lost)") },
    });
    await b.close();
  });
});
