#!/usr/bin/env node
/**
 * An executor replica in its own process, for tests that kill it with SIGKILL.
 * Runs the built packages (`dist/`): build first (`tsc -b packages/core packages/server`).
 *
 *   node executor-child.mjs '<json config>'
 *
 * Config: { db, workDir, blobDir, owner?, fastTakeover?, leaseTtlMs?, claimIntervalMs?, claimBatch?, workers?,
 *           activityFile?, launch?: [{ id, project, domain, compiledFile, inputs }] }
 *
 * Prints `ready <owner>` once it claims work. Every claim, hand-over and end is appended
 * to `activityFile` as a JSON line. SIGTERM closes the executor cleanly.
 */
import * as fs from "node:fs";
import { LocalBlobStore } from "@tern/core";
import { Executor, Store } from "../../dist/index.js";

const cfg = JSON.parse(process.argv[2]);
const store = await Store.open(cfg.db);
const blobs = new LocalBlobStore(cfg.blobDir);
const activity = cfg.activityFile ? fs.openSync(cfg.activityFile, "a") : undefined;
const log = (level) => (fields, msg) => {
  if (level === "debug") return;
  process.stderr.write(`[${cfg.owner ?? process.pid}] ${level} ${msg} ${JSON.stringify(fields)}\n`);
};
const executor = await Executor.create({
  store,
  blobs,
  workDir: cfg.workDir,
  ...(cfg.owner ? { owner: cfg.owner } : {}),
  ...(cfg.fastTakeover === false ? { fastTakeover: false } : {}),
  workers: cfg.workers ?? 2,
  leaseTtlMs: cfg.leaseTtlMs ?? 15_000,
  ...(cfg.claimIntervalMs ? { claimIntervalMs: cfg.claimIntervalMs } : {}),
  ...(cfg.claimBatch ? { claimBatch: cfg.claimBatch } : {}),
  logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
  onActivity: (a) => {
    if (activity !== undefined) fs.writeSync(activity, `${JSON.stringify(a)}\n`);
  },
});
for (const l of cfg.launch ?? []) {
  if (await store.executions.get(l.id)) continue;
  const compiled = JSON.parse(fs.readFileSync(l.compiledFile, "utf8"));
  await executor.launch({ id: l.id, project: l.project, domain: l.domain, compiled, inputs: l.inputs });
}
executor.start();
process.stdout.write(`ready ${executor.owner}\n`);

// The test that started this replica is gone (its stdin pipe closed): leave too.
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));

process.on("SIGTERM", async () => {
  await executor.close();
  await store.close();
  process.exit(0);
});
