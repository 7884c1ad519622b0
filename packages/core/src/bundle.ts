/**
 * Code bundles: the user's own modules bundled by esbuild into one ES module,
 * named by its content digest. Packages stay external (they come from the
 * project's node_modules, or the task image), so a bundle is small and an
 * execution that records its digest can be re-run with the exact code.
 *
 * A bundle is written under `<projectRoot>/.tern/bundles/` so that its package
 * imports resolve from the project's node_modules.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { prepareCodeVersions } from "./code-version.js";
import { ErrorCodes, TernError } from "./errors.js";
import { esbuild } from "./esbuild.js";
import { tmpPath } from "./tmp-path.js";

export interface Bundle {
  /** `sha256:<hex>` of the bundle's bytes. */
  digest: string;
  /** Where it is on this machine. */
  path: string;
  /** Project root: the nearest folder above the entry with a package.json. */
  projectRoot: string;
  /** The entry file, absolute. */
  entry: string;
  /** The user's source files in the bundle, absolute. */
  inputs: string[];
}

/** The nearest directory at or above `from` holding a package.json (else `from`'s directory). */
export function findProjectRoot(from: string): string {
  let dir = fs.statSync(from, { throwIfNoEntry: false })?.isDirectory() ? from : path.dirname(from);
  const start = dir;
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return start;
    dir = up;
  }
}

export function bundleDir(projectRoot: string): string {
  return path.join(projectRoot, ".tern", "bundles");
}

export function bundlePath(projectRoot: string, digest: string): string {
  return path.join(bundleDir(projectRoot), `${digest.replace(/^sha256:/, "")}.mjs`);
}

const IMPORT_META = /\bimport\.meta\.(url|dirname|filename)\b/g;
const LOADERS: Record<string, import("esbuild").Loader> = {
  ".ts": "ts",
  ".mts": "ts",
  ".tsx": "tsx",
  ".js": "js",
  ".mjs": "js",
  ".jsx": "jsx",
};

/**
 * `import.meta.url`, `.dirname` and `.filename` in the user's own files keep naming the
 * source file, not the bundle: code that finds files next to itself (a job script, a
 * dataset) works the same bundled or not.
 */
const sourceImportMeta: import("esbuild").Plugin = {
  name: "tern-source-import-meta",
  setup(build) {
    build.onLoad({ filter: /\.(m?ts|tsx|m?js|jsx)$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = await fs.promises.readFile(args.path, "utf8");
      if (!text.includes("import.meta.")) return undefined;
      const values: Record<string, string> = {
        url: pathToFileURL(args.path).href,
        dirname: path.dirname(args.path),
        filename: args.path,
      };
      return {
        contents: text.replace(IMPORT_META, (_m, k: string) => JSON.stringify(values[k])),
        loader: LOADERS[path.extname(args.path)] ?? "default",
      };
    });
  },
};

/** Bundle a user's entry file. */
export async function bundleEntry(entry: string, opts: { projectRoot?: string } = {}): Promise<Bundle> {
  const abs = path.resolve(entry);
  if (!fs.existsSync(abs)) {
    throw new TernError(ErrorCodes.FILE_NOT_FOUND, `file not found: ${entry}`, {
      hint: "give the path of a .ts or .js file that defines your workflows",
      details: { file: entry },
    });
  }
  const projectRoot = opts.projectRoot ?? findProjectRoot(abs);
  const outDir = bundleDir(projectRoot);
  let result: import("esbuild").BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild().build({
      entryPoints: [abs],
      bundle: true,
      packages: "external",
      format: "esm",
      platform: "node",
      target: "node20",
      sourcemap: "inline",
      sourcesContent: false,
      keepNames: true,
      write: false,
      metafile: true,
      absWorkingDir: projectRoot,
      outfile: path.join(outDir, "bundle.mjs"),
      logLevel: "silent",
      plugins: [sourceImportMeta],
    });
  } catch (e) {
    const errors =
      (e as { errors?: { text: string; location?: { file: string; line: number; column: number } }[] })
        .errors ?? [];
    const first = errors[0];
    const where = first?.location
      ? `${first.location.file}:${first.location.line}:${first.location.column}`
      : entry;
    throw new TernError(
      ErrorCodes.LOAD_FAILED,
      `cannot build ${where}: ${first?.text ?? (e as Error).message}`,
      {
        hint: "fix the syntax error, or check the import paths",
        details: { file: where, errors: errors.map((x) => x.text) },
      },
    );
  }
  const out = result.outputFiles[0];
  const digest = `sha256:${createHash("sha256").update(out.contents).digest("hex")}`;
  const file = bundlePath(projectRoot, digest);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(outDir, { recursive: true });
    const tmp = tmpPath(file);
    fs.writeFileSync(tmp, out.contents);
    fs.renameSync(tmp, file);
  }
  const inputs = Object.keys(result.metafile?.inputs ?? {}).map((f) => path.resolve(projectRoot, f));
  // Parse the sources now, on esbuild's running service, so compile() finds them ready.
  await prepareCodeVersions(inputs);
  return { digest, path: file, projectRoot, entry: abs, inputs };
}

const loaded = new Map<string, Promise<Record<string, unknown>>>();

/** Import a bundle once per process; stack traces map back to the user's sources. */
export function importBundle(file: string): Promise<Record<string, unknown>> {
  let p = loaded.get(file);
  if (!p) {
    process.setSourceMapsEnabled(true);
    p = import(pathToFileURL(file).href).catch((e: unknown) => {
      loaded.delete(file);
      const err = e as Error;
      throw new TernError(ErrorCodes.LOAD_FAILED, `loading your code failed: ${err?.message ?? e}`, {
        hint: firstUserFrame(err?.stack) ?? "check the module's top-level code",
        details: { stack: err?.stack },
        cause: e,
      });
    }) as Promise<Record<string, unknown>>;
    loaded.set(file, p);
  }
  return p;
}

function firstUserFrame(stack: string | undefined): string | undefined {
  const line = stack
    ?.split("\n")
    .find(
      (l) => /\.(ts|tsx|mts|js|mjs)\b:\d+/.test(l) && !l.includes("node_modules") && !l.includes("node:"),
    );
  return line ? `at ${line.trim().replace(/^at /, "")}` : undefined;
}
