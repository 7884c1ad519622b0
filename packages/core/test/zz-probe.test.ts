import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { it, expect } from "vitest";
import { bundleEntry, importBundle, definedTasks, compile, isTaskDef } from "@tern/core";
it("bundle", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-probe-"));
  fs.mkdirSync(path.join(dir, "node_modules/@tern"), { recursive: true });
  fs.symlinkSync("/work/main/packages/core", path.join(dir, "node_modules/@tern/core"));
  fs.symlinkSync(fs.realpathSync("/work/main/packages/core/node_modules/zod"), path.join(dir, "node_modules/zod"));
  fs.writeFileSync(path.join(dir, "package.json"), '{"type":"module"}');
  fs.writeFileSync(path.join(dir, "tasks.ts"), `import { task } from "@tern/core";\nimport { z } from "zod";\nexport const a = task({ name: "probe_a", inputs: { x: z.number() }, output: z.number(), cache: true }, async ({ x }) => x + 1);\n`);
  const b = await bundleEntry(path.join(dir, "tasks.ts"));
  const mod = await importBundle(b.path);
  console.log(Object.keys(mod), isTaskDef(mod.a), definedTasks("probe_a").length, (mod.a as any).callSite);
  const c = compile(mod.a as any, { projectRoot: dir });
  console.log(JSON.stringify(Object.values(c.spec.tasks)[0].code), JSON.stringify(Object.values(c.spec.tasks)[0].metadata.cache));
});
