/**
 * After `tsc -b`: replace `dist/store/kysely.js` (a re-export of the values the store uses
 * from kysely) with one ES module that holds them, so the server loads one file instead of
 * kysely's ~250 (see src/store/kysely.ts for the measurements). Types are untouched: the
 * emitted `kysely.d.ts` still re-exports the package's.
 *
 * Idempotent: a file that is already the bundle is left alone (tsc -b does not emit it
 * again while src/store/kysely.ts is unchanged).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const file = path.join(pkg, "dist", "store", "kysely.js");
// kysely's exports map has no ./package.json: read it from the installed package's directory.
const kyselyDir = path.join(pkg, "node_modules", "kysely");
const version = JSON.parse(fs.readFileSync(path.join(kyselyDir, "package.json"), "utf8")).version;
const banner = `// kysely ${version}, bundled by scripts/bundle-kysely.mjs (MIT license: see kysely's package).`;

if (!fs.existsSync(file)) {
  console.error(
    `bundle-kysely: ${path.relative(process.cwd(), file)} is missing; run tsc -b packages/server first`,
  );
  process.exit(1);
}
if (!fs.readFileSync(file, "utf8").startsWith(banner)) {
  const out = await build({
    entryPoints: [file],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    write: false,
    legalComments: "inline",
    banner: { js: banner },
    logLevel: "warning",
  });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, out.outputFiles[0].contents);
  fs.renameSync(tmp, file);
  // The map tsc wrote describes the re-export, not the bundle.
  fs.rmSync(`${file}.map`, { force: true });
}
