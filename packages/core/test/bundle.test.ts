/**
 * Bundling the user's code: `import.meta.url`, `.dirname` and `.filename` in the user's own
 * files still name those files in the bundle, so code that finds files next to itself works
 * the same bundled (the process backend, `tern run`) or not.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { bundleEntry, importBundle } from "@tern/core";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupTempDirs, tempDir } from "./helpers.js";

afterAll(cleanupTempDirs);

describe("bundleEntry", () => {
  it("keeps import.meta in the user's files pointing at the source files", async () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: "b", type: "module" }));
    fs.mkdirSync(path.join(root, "lib"));
    fs.writeFileSync(
      path.join(root, "lib", "where.ts"),
      "export const lib = { url: import.meta.url, dir: import.meta.dirname, file: import.meta.filename };\n",
    );
    fs.writeFileSync(
      path.join(root, "main.ts"),
      'export { lib } from "./lib/where.js";\nexport const main: string = import.meta.url;\n',
    );
    const bundle = await bundleEntry(path.join(root, "main.ts"));
    expect(bundle.path.startsWith(path.join(root, ".tern", "bundles"))).toBe(true);
    const mod = (await importBundle(bundle.path)) as { main: string; lib: Record<string, string> };
    expect(mod.main).toBe(pathToFileURL(path.join(root, "main.ts")).href);
    expect(mod.lib).toEqual({
      url: pathToFileURL(path.join(root, "lib", "where.ts")).href,
      dir: path.join(root, "lib"),
      file: path.join(root, "lib", "where.ts"),
    });
  });
});
