/**
 * Code bundles: registered into blob storage (content-addressed), and copied from
 * there to `<workDir>/.tern/bundles` where the backends load them, before an
 * execution that names them runs (on whichever replica claims it).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type BlobStore, bundlePath, type CompiledWorkflow, ErrorCodes, TernError } from "@tern/core";
import { tmpPath } from "../blob/tmp-path.js";

/** Blob key of a registered code bundle. */
export function bundleKey(digest: string): string {
  return `bundles/${digest.replace(/^sha256:/, "")}.mjs`;
}

/** Copy the bundles a workflow's tasks name from blob storage to `workDir`, once each. */
export async function materializeBundles(
  compiled: CompiledWorkflow,
  workDir: string,
  blobs: BlobStore,
): Promise<void> {
  // The registry hands out one compiled object per version: its bundles, once on disk, stay there.
  if (materialized.get(compiled)?.has(workDir)) return;
  const digests = new Set<string>();
  for (const t of Object.values(compiled.tasks)) if (t.code?.bundle) digests.add(t.code.bundle);
  for (const d of digests) {
    const file = bundlePath(workDir, d);
    if (fs.existsSync(file)) continue;
    const uri = blobs.uri(bundleKey(d));
    if (!(await blobs.exists(uri))) {
      throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `code bundle ${d} is not in blob storage`, {
        hint: "register the workflow again (tern register) so its code is uploaded",
        details: { bundle: d },
      });
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename: another replica on this machine may be copying the same bundle.
    const tmp = tmpPath(file);
    fs.writeFileSync(tmp, await blobs.get(uri));
    fs.renameSync(tmp, file);
  }
  let dirs = materialized.get(compiled);
  if (!dirs) materialized.set(compiled, (dirs = new Set()));
  dirs.add(workDir);
}

/** Compiled workflows whose bundles are in place, by work directory. */
const materialized = new WeakMap<CompiledWorkflow, Set<string>>();
