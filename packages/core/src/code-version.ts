/**
 * Default cache versions: a hash of the code a task depends on.
 *
 * A task's cache version must change when the task body, or anything it uses, changes,
 * and must NOT change when unrelated code in the same file changes (Flyte hashes too
 * little or too much, see flyte#770). We therefore hash:
 *
 * - the source text of the `task({...}, body)` call itself (options object and body),
 * - the source text of every top-level declaration of the same module that the call
 *   references, transitively (helpers of helpers, constants, classes, enums...),
 * - top-level statements that touch one of those declarations (`cfg.x = 1;`), since they
 *   can change its value,
 * - for each relative import the call (or an included declaration) uses: the
 *   "module closure" hash of the imported file, i.e. its content plus everything it
 *   imports, transitively,
 * - for each package import used: `name@version` of the installed package. This
 *   includes `@tern/core` and `zod` on purpose: a Tern or zod upgrade may change how a
 *   task's options or schemas behave, so it invalidates cached outputs too.
 *
 * Source is type-stripped with esbuild before hashing the task's own file, so edits to
 * comments, formatting or type annotations of the task file do not change its version.
 * Imported files are hashed by raw content (conservative).
 *
 * Every hash is machine independent: no absolute paths go into it, only contents,
 * import specifiers and package versions.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as acorn from "acorn";
import type { Loader, Message } from "esbuild";
import { esbuild } from "./esbuild.js";

/** Options of {@link codeVersion}. */
export interface CodeVersionOptions {
  /**
   * Names of the `@tern/core` exports whose calls define the entity to look for, e.g.
   * `["task"]` (the default) or `["workflow"]`. Aliased (`import { task as t }`) and
   * namespace (`import * as tern`, `tern.task(...)`) imports are recognised.
   */
  calleeNames?: string[];
}

/** Number of hex characters of the sha256 digest kept in a version (64 bits). */
const VERSION_LENGTH = 16;

/** Bumped whenever the hashing scheme changes, so old versions never collide with new ones. */
const SCHEME = "tern-code-version/1";

const TERN_CORE = "@tern/core";

/** Extensions parsed as JavaScript/TypeScript; any other imported file is hashed by content only. */
const LOADERS: Record<string, Loader> = {
  ".ts": "ts",
  ".mts": "ts",
  ".cts": "ts",
  ".tsx": "tsx",
  ".js": "js",
  ".mjs": "js",
  ".cjs": "js",
  ".jsx": "jsx",
};

/** Files whose top level is CommonJS, parsed as scripts (top-level `return` is allowed there). */
const SCRIPT_EXTENSIONS = new Set([".cjs", ".cts"]);

/** TypeScript (nodenext) and esbuild let `./x.js` name `./x.ts`; same for the other JS extensions. */
const TS_SIBLINGS: Record<string, string[]> = {
  ".js": [".ts", ".tsx"],
  ".jsx": [".tsx"],
  ".mjs": [".mts"],
  ".cjs": [".cts"],
};
const RESOLVE_EXTENSIONS = [".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs"];
const INDEX_FILES = ["index.ts", "index.tsx", "index.mts", "index.js", "index.mjs", "index.cjs"];

// ---------------------------------------------------------------------------------------
// File signatures and memoization
// ---------------------------------------------------------------------------------------

/** A file the result depends on and its signature when the result was computed. */
interface Dependency {
  path: string;
  /** `mtime:size:inode`, or `"missing"` for a path whose absence the result relies on. */
  sig: string;
}

function fileSig(p: string): string {
  try {
    const st = statSync(p, { throwIfNoEntry: false });
    return st ? `${st.mtimeMs}:${st.size}:${st.ino}` : "missing";
  } catch {
    return "missing"; // ENOTDIR and friends: `a.ts/index.ts` while probing
  }
}

function isFresh(deps: readonly Dependency[]): boolean {
  for (const d of deps) if (fileSig(d.path) !== d.sig) return false;
  return true;
}

interface Memo {
  value: string;
  deps: Dependency[];
}

/** Drop repeated paths (first signature wins) so a memo check stats each file once. */
function uniqueDeps(deps: readonly Dependency[]): Dependency[] {
  const seen = new Map<string, Dependency>();
  for (const d of deps) if (!seen.has(d.path)) seen.set(d.path, d);
  return [...seen.values()];
}

/** Parsed modules by absolute path (each entry carries the signature it was parsed at). */
const moduleCache = new Map<string, ParsedModule>();
/** Module-closure hashes by absolute path. */
const closureCache = new Map<string, Memo>();
/** Final versions by `file \0 taskName \0 calleeNames`. */
const versionCache = new Map<string, Memo>();

/**
 * Forget every memoized parse and hash. Results are otherwise reused as long as the
 * mtime, size and inode of every file they depend on are unchanged.
 */
export function clearCodeVersionCache(): void {
  moduleCache.clear();
  closureCache.clear();
  versionCache.clear();
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// ---------------------------------------------------------------------------------------
// Parsing and per-module analysis
// ---------------------------------------------------------------------------------------

/** A local name bound by `import` (or by `const x = require("...")` in CommonJS). */
interface ImportBinding {
  local: string;
  specifier: string;
  /** The imported export name, `"default"`, or `"*"` for a namespace / whole-module require. */
  imported: string;
}

/**
 * A top-level statement, or one declarator of a top-level `const/let/var`: the unit of
 * code that is included in a task's hash when one of its names is referenced.
 */
interface TopLevelUnit {
  node: acorn.AnyNode;
  /** Type-stripped source text hashed for this unit. */
  text: string;
  /** Names bound at top level by this unit (empty for plain statements). */
  declares: string[];
  /** Free references, computed lazily. */
  refs?: References;
}

interface ModuleAnalysis {
  program: acorn.Program;
  /** esbuild output; node offsets index into this, not into the original source. */
  code: string;
  bindings: Map<string, ImportBinding>;
  /** Top-level declarations by bound name (a name can be declared more than once with `var`). */
  declarations: Map<string, TopLevelUnit[]>;
  /** Top-level statements that declare nothing (expression statements, loops, ifs...). */
  statements: TopLevelUnit[];
  /** Every static module specifier: imports, re-exports, literal `import()` and `require()`. */
  specifiers: string[];
  /** Top-level helpers injected by esbuild (`__name`, `__defProp`), absent from the source. */
  helperNames: Set<string>;
}

interface ParsedModule {
  sig: string;
  /** sha256 of the raw file content. */
  contentHash: string;
  /** Undefined for files that are not JavaScript/TypeScript (JSON, text...). */
  analysis?: ModuleAnalysis;
}

/** Read, strip types, parse and analyse a file, memoized by its signature. Throws on I/O or syntax errors. */
function loadModule(file: string): ParsedModule {
  const sig = fileSig(file);
  const cached = moduleCache.get(file);
  if (cached && cached.sig === sig) return cached;

  let content: string;
  try {
    content = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const ext = path.extname(file).toLowerCase();
  const loader = LOADERS[ext];
  const parsed: ParsedModule = { sig, contentHash: sha256(content) };
  if (loader) parsed.analysis = analyse(file, content, loader, SCRIPT_EXTENSIONS.has(ext));
  moduleCache.set(file, parsed);
  return parsed;
}

/**
 * Parse these files ahead of time with esbuild's asynchronous service (already
 * running once a bundle was built), so later `codeVersion()` calls skip the
 * start-up of esbuild's synchronous API (~90 ms). Files that fail to transform are
 * left for `codeVersion()` to report.
 */
export async function prepareCodeVersions(files: Iterable<string>): Promise<void> {
  const { transform } = esbuild();
  await Promise.all(
    [...files].map(async (file) => {
      const ext = path.extname(file).toLowerCase();
      const loader = LOADERS[ext];
      if (!loader) return;
      let sig: string;
      let content: string;
      try {
        sig = fileSig(file);
        if (moduleCache.get(file)?.sig === sig) return;
        content = readFileSync(file, "utf8");
      } catch {
        return;
      }
      let code: string;
      try {
        code = (await transform(content, { loader, keepNames: true, minify: false, sourcefile: file })).code;
      } catch {
        return;
      }
      try {
        const analysis = analyseTransformed(file, code, content, SCRIPT_EXTENSIONS.has(ext));
        moduleCache.set(file, { sig, contentHash: sha256(content), analysis });
      } catch {
        // reported by codeVersion()
      }
    }),
  );
}

function analyse(file: string, content: string, loader: Loader, script: boolean): ModuleAnalysis {
  let code: string;
  try {
    // No `format`: esbuild then only strips types and keeps the module syntax as written.
    // (`format: "esm"` would wrap a CommonJS file in a `__commonJS(...)` closure and hide
    // its top-level declarations from the analysis below.)
    code = esbuild().transformSync(content, {
      loader,
      keepNames: true,
      minify: false,
      sourcefile: file,
    }).code;
  } catch (err) {
    const first = (err as { errors?: Message[] }).errors?.[0];
    const where = first?.location ? ` (line ${first.location.line}, column ${first.location.column})` : "";
    throw new Error(`cannot parse ${file}${where}: ${first?.text ?? (err as Error).message}`, { cause: err });
  }
  return analyseTransformed(file, code, content, script);
}

function analyseTransformed(file: string, code: string, content: string, script: boolean): ModuleAnalysis {
  let program: acorn.Program;
  try {
    program = acorn.parse(code, {
      ecmaVersion: "latest",
      sourceType: script ? "script" : "module",
      allowReturnOutsideFunction: script,
      allowHashBang: true,
    });
  } catch (err) {
    // acorn sees esbuild's output, whose lines differ from the source file's.
    const loc = (err as { loc?: acorn.Position }).loc;
    const where = loc ? ` (line ${loc.line} of the type-stripped code)` : "";
    throw new Error(`cannot parse ${file}${where}: ${(err as Error).message}`, { cause: err });
  }
  return analyseProgram(program, code, content);
}

function analyseProgram(program: acorn.Program, code: string, source: string): ModuleAnalysis {
  const bindings = new Map<string, ImportBinding>();
  const declarations = new Map<string, TopLevelUnit[]>();
  const statements: TopLevelUnit[] = [];
  const specifiers = new Set<string>();
  const text = (n: acorn.Node) => code.slice(n.start, n.end);

  const declare = (unit: TopLevelUnit) => {
    for (const name of unit.declares) {
      const list = declarations.get(name);
      if (list) list.push(unit);
      else declarations.set(name, [unit]);
    }
  };

  const addDeclaration = (decl: acorn.AnyNode) => {
    if (decl.type === "VariableDeclaration") {
      // One unit per declarator, so `const a = 1, b = huge()` does not tie `a` to `huge`.
      for (const d of decl.declarations) {
        const required = requireBinding(d);
        if (required) {
          for (const b of required) bindings.set(b.local, b);
          specifiers.add(required[0]!.specifier);
          continue;
        }
        declare({ node: d, text: `${decl.kind} ${text(d)}`, declares: boundNames(d.id) });
      }
    } else if ((decl.type === "FunctionDeclaration" || decl.type === "ClassDeclaration") && decl.id) {
      declare({ node: decl, text: text(decl), declares: [decl.id.name] });
    } else {
      // TS leftovers esbuild may emit as other declaration kinds do not occur; treat any
      // unknown declaration as a plain statement so it is still considered.
      statements.push({ node: decl, text: text(decl), declares: [] });
    }
  };

  for (const stmt of program.body) {
    switch (stmt.type) {
      case "ImportDeclaration": {
        const specifier = String(stmt.source.value);
        specifiers.add(specifier);
        for (const s of stmt.specifiers) {
          const imported =
            s.type === "ImportSpecifier"
              ? s.imported.type === "Identifier"
                ? s.imported.name
                : String(s.imported.value)
              : s.type === "ImportDefaultSpecifier"
                ? "default"
                : "*";
          bindings.set(s.local.name, { local: s.local.name, specifier, imported });
        }
        break;
      }
      case "ExportAllDeclaration":
        specifiers.add(String(stmt.source.value));
        break;
      case "ExportNamedDeclaration":
        if (stmt.source) specifiers.add(String(stmt.source.value));
        if (stmt.declaration) addDeclaration(stmt.declaration);
        break;
      case "ExportDefaultDeclaration": {
        const d = stmt.declaration;
        if ((d.type === "FunctionDeclaration" || d.type === "ClassDeclaration") && d.id) addDeclaration(d);
        else statements.push({ node: stmt, text: text(stmt), declares: [] });
        break;
      }
      case "VariableDeclaration":
      case "FunctionDeclaration":
      case "ClassDeclaration":
        addDeclaration(stmt);
        break;
      default: {
        // `if (x) { var y = 1 }` still declares `y` at top level.
        const hoisted = new Scope();
        declareVars(stmt, hoisted);
        const unit: TopLevelUnit = { node: stmt, text: text(stmt), declares: [...hoisted.names] };
        statements.push(unit);
        declare(unit);
      }
    }
  }

  // Literal `import("...")` / `require("...")` anywhere also make a module depend on a file.
  for (const s of collectReferences(program).specifiers) specifiers.add(s);

  const helperNames = new Set(
    [...declarations.keys()].filter((n) => n.startsWith("__") && !source.includes(n)),
  );
  return { program, code, bindings, declarations, statements, specifiers: [...specifiers], helperNames };
}

/**
 * Recognise CommonJS imports `const x = require("m")` and `const { a, b: c } = require("m")`
 * and turn them into import bindings (so `const { task } = require("@tern/core")` works).
 */
function requireBinding(d: acorn.VariableDeclarator): ImportBinding[] | undefined {
  const specifier = d.init ? requiredSpecifier(d.init) : undefined;
  if (specifier === undefined) return undefined;
  if (d.id.type === "Identifier") return [{ local: d.id.name, specifier, imported: "*" }];
  if (d.id.type !== "ObjectPattern") return undefined;
  const out: ImportBinding[] = [];
  for (const p of d.id.properties) {
    if (p.type !== "Property" || p.computed || p.key.type !== "Identifier" || p.value.type !== "Identifier") {
      return undefined;
    }
    out.push({ local: p.value.name, specifier, imported: p.key.name });
  }
  return out.length > 0 ? out : undefined;
}

function requiredSpecifier(n: acorn.AnyNode): string | undefined {
  if (
    n.type === "CallExpression" &&
    n.callee.type === "Identifier" &&
    n.callee.name === "require" &&
    n.arguments.length === 1
  ) {
    return stringValue(n.arguments[0]!);
  }
  return undefined;
}

/** The value of a string literal or of a template literal without substitutions. */
function stringValue(n: acorn.AnyNode): string | undefined {
  if (n.type === "Literal" && typeof n.value === "string") return n.value;
  if (n.type === "TemplateLiteral" && n.expressions.length === 0)
    return n.quasis[0]?.value.cooked ?? undefined;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Scope-aware free-identifier collection (a small ESTree walker; acorn-walk is not a dependency)
// ---------------------------------------------------------------------------------------

interface References {
  /** Identifiers read or written that are not bound inside the walked code. */
  names: Set<string>;
  /** Literal specifiers of `import("...")` and `require("...")` calls. */
  specifiers: Set<string>;
}

class Scope {
  readonly names = new Set<string>();
  constructor(readonly parent?: Scope) {}
  has(name: string): boolean {
    for (let s: Scope | undefined = this; s; s = s.parent) if (s.names.has(name)) return true;
    return false;
  }
}

function isNode(v: unknown): v is acorn.AnyNode {
  return typeof v === "object" && v !== null && typeof (v as { type?: unknown }).type === "string";
}

/** Call `fn` on every direct child node of `node`. */
function forEachChild(node: acorn.AnyNode, fn: (child: acorn.AnyNode) => void): void {
  for (const [key, value] of Object.entries(node)) {
    if (key === "loc" || key === "range") continue;
    if (Array.isArray(value)) {
      for (const v of value) if (isNode(v)) fn(v);
    } else if (isNode(value)) {
      fn(value);
    }
  }
}

/** Names bound by a binding pattern (`a`, `{ a, b: [c] }`, `...rest`, `x = 1`). */
function boundNames(p: acorn.AnyNode | null | undefined, out: string[] = []): string[] {
  if (!p) return out;
  switch (p.type) {
    case "Identifier":
      out.push(p.name);
      break;
    case "ObjectPattern":
      for (const prop of p.properties) boundNames(prop.type === "RestElement" ? prop : prop.value, out);
      break;
    case "ArrayPattern":
      for (const e of p.elements) boundNames(e, out);
      break;
    case "RestElement":
      boundNames(p.argument, out);
      break;
    case "AssignmentPattern":
      boundNames(p.left, out);
      break;
  }
  return out;
}

/** Add the names a block's own statements bind lexically (let/const/class/function). */
function declareLexical(body: readonly acorn.AnyNode[], scope: Scope): void {
  for (const st of body) {
    if (st.type === "VariableDeclaration" && st.kind !== "var") {
      for (const d of st.declarations) for (const n of boundNames(d.id)) scope.names.add(n);
    } else if ((st.type === "FunctionDeclaration" || st.type === "ClassDeclaration") && st.id) {
      scope.names.add(st.id.name);
    }
  }
}

/** Add the `var` names hoisted to a function from anywhere in its body (not from nested functions). */
function declareVars(node: acorn.AnyNode, scope: Scope): void {
  if (node.type === "VariableDeclaration" && node.kind === "var") {
    for (const d of node.declarations) for (const n of boundNames(d.id)) scope.names.add(n);
  }
  if (
    node.type === "FunctionDeclaration" ||
    node.type === "FunctionExpression" ||
    node.type === "ArrowFunctionExpression" ||
    node.type === "ClassDeclaration" ||
    node.type === "ClassExpression"
  ) {
    return;
  }
  forEachChild(node, (c) => declareVars(c, scope));
}

/**
 * Free identifiers of `root`. Errs on the side of reporting too much (a name reported
 * free that is actually local only makes the hash include an extra declaration), never
 * too little.
 */
function collectReferences(root: acorn.AnyNode): References {
  const refs: References = { names: new Set(), specifiers: new Set() };

  const visitPattern = (p: acorn.AnyNode | null | undefined, scope: Scope): void => {
    if (!p) return;
    switch (p.type) {
      case "Identifier":
        return; // a binding, not a reference
      case "ObjectPattern":
        for (const prop of p.properties) {
          if (prop.type === "RestElement") visitPattern(prop.argument, scope);
          else {
            if (prop.computed) visit(prop.key, scope);
            visitPattern(prop.value, scope);
          }
        }
        return;
      case "ArrayPattern":
        for (const e of p.elements) visitPattern(e, scope);
        return;
      case "RestElement":
        visitPattern(p.argument, scope);
        return;
      case "AssignmentPattern":
        visitPattern(p.left, scope);
        visit(p.right, scope); // default values are expressions
        return;
      default:
        visit(p, scope); // e.g. a member expression as a for-in target
    }
  };

  const visitFunction = (fn: acorn.Function, outer: Scope): void => {
    const scope = new Scope(outer);
    if (fn.type === "FunctionExpression" && fn.id) scope.names.add(fn.id.name);
    if (fn.type !== "ArrowFunctionExpression") scope.names.add("arguments");
    for (const p of fn.params) for (const n of boundNames(p)) scope.names.add(n);
    declareVars(fn.body, scope);
    for (const p of fn.params) visitPattern(p, scope);
    if (fn.body.type === "BlockStatement") {
      // The body block shares the function scope (params and body lets cannot clash anyway).
      declareLexical(fn.body.body, scope);
      for (const st of fn.body.body) visit(st, scope);
    } else {
      visit(fn.body, scope);
    }
  };

  const visit = (node: acorn.AnyNode | null | undefined, scope: Scope): void => {
    if (!node) return;
    switch (node.type) {
      case "Identifier":
        if (!scope.has(node.name)) refs.names.add(node.name);
        return;
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
        visitFunction(node, scope);
        return;
      case "ClassDeclaration":
      case "ClassExpression": {
        const inner = new Scope(scope);
        if (node.id) inner.names.add(node.id.name);
        visit(node.superClass, inner);
        visit(node.body, inner);
        return;
      }
      case "BlockStatement":
      case "StaticBlock": {
        const inner = new Scope(scope);
        declareLexical(node.body, inner);
        for (const st of node.body) visit(st, inner);
        return;
      }
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement": {
        const inner = new Scope(scope);
        const head = node.type === "ForStatement" ? node.init : node.left;
        if (head) declareLexical([head], inner);
        forEachChild(node, (c) => visit(c, inner));
        return;
      }
      case "SwitchStatement": {
        visit(node.discriminant, scope);
        const inner = new Scope(scope);
        for (const c of node.cases) declareLexical(c.consequent, inner);
        for (const c of node.cases) {
          visit(c.test, inner);
          for (const st of c.consequent) visit(st, inner);
        }
        return;
      }
      case "CatchClause": {
        const inner = new Scope(scope);
        for (const n of boundNames(node.param)) inner.names.add(n);
        visitPattern(node.param, inner);
        visit(node.body, inner);
        return;
      }
      case "VariableDeclarator":
        // Names are already in scope (hoisted by the enclosing block/function, or top-level).
        visitPattern(node.id, scope);
        visit(node.init, scope);
        return;
      case "MemberExpression":
        visit(node.object, scope);
        if (node.computed) visit(node.property, scope);
        return;
      case "Property":
      case "PropertyDefinition":
      case "MethodDefinition":
        if (node.computed) visit(node.key, scope);
        visit(node.value, scope);
        return;
      case "LabeledStatement":
        visit(node.body, scope);
        return;
      case "BreakStatement":
      case "ContinueStatement":
      case "MetaProperty":
      case "PrivateIdentifier":
        return;
      case "ImportExpression": {
        const spec = stringValue(node.source);
        if (spec !== undefined) refs.specifiers.add(spec);
        forEachChild(node, (c) => visit(c, scope));
        return;
      }
      case "CallExpression": {
        const spec = scope.has("require") ? undefined : requiredSpecifier(node);
        if (spec !== undefined) refs.specifiers.add(spec);
        forEachChild(node, (c) => visit(c, scope));
        return;
      }
      default:
        forEachChild(node, (c) => visit(c, scope));
    }
  };

  visit(root, new Scope());
  return refs;
}

function unitRefs(unit: TopLevelUnit): References {
  unit.refs ??= collectReferences(unit.node);
  return unit.refs;
}

// ---------------------------------------------------------------------------------------
// Dependency resolution
// ---------------------------------------------------------------------------------------

type Resolved =
  | { kind: "file"; path: string }
  | { kind: "package"; id: string }
  | { kind: "builtin"; id: string }
  | { kind: "unresolved"; id: string };

function isFile(p: string): boolean {
  try {
    return statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/**
 * Resolve `specifier` as imported from `fromFile`. Every path probed and found missing is
 * pushed to `deps` as `"missing"`, so creating such a file later invalidates the memo.
 */
function resolveSpecifier(fromFile: string, specifier: string, deps: Dependency[]): Resolved {
  if (specifier.startsWith("node:") || isBuiltin(specifier)) {
    return { kind: "builtin", id: `node:${specifier.replace(/^node:/, "")}` };
  }
  let base: string | undefined;
  if (specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === "..") {
    base = path.resolve(path.dirname(fromFile), specifier);
  } else if (specifier.startsWith("/")) {
    base = specifier;
  } else if (specifier.startsWith("file:")) {
    try {
      base = fileURLToPath(specifier);
    } catch {
      return { kind: "unresolved", id: specifier };
    }
  }
  if (base === undefined) return resolvePackage(fromFile, specifier, deps);

  const ext = path.extname(base);
  const candidates = [
    base,
    ...(TS_SIBLINGS[ext] ?? []).map((e) => base.slice(0, -ext.length) + e),
    ...RESOLVE_EXTENSIONS.map((e) => base + e),
    ...INDEX_FILES.map((f) => path.join(base, f)),
  ];
  for (const c of candidates) {
    if (isFile(c)) return { kind: "file", path: c };
    deps.push({ path: c, sig: "missing" });
  }
  return { kind: "unresolved", id: specifier };
}

/** `lodash/fp` -> `lodash`, `@scope/pkg/sub` -> `@scope/pkg`. */
function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/**
 * `name@version` from the nearest `node_modules/<name>/package.json` above `fromFile`, or
 * just `name` if none is found or readable. Only the version is hashed: a package's own
 * files (even a symlinked workspace package) are not read.
 */
function resolvePackage(fromFile: string, specifier: string, deps: Dependency[]): Resolved {
  const name = packageName(specifier);
  for (let dir = path.dirname(fromFile); ; ) {
    const manifest = path.join(dir, "node_modules", name, "package.json");
    const sig = fileSig(manifest);
    if (sig !== "missing") {
      deps.push({ path: manifest, sig });
      try {
        const version = (JSON.parse(readFileSync(manifest, "utf8")) as { version?: unknown }).version;
        if (typeof version === "string") return { kind: "package", id: `${name}@${version}` };
      } catch {
        // Unreadable or invalid manifest: fall through to the bare name.
      }
      return { kind: "package", id: name };
    }
    const parent = path.dirname(dir);
    if (parent === dir) return { kind: "package", id: name };
    dir = parent;
  }
}

// ---------------------------------------------------------------------------------------
// Module closure
// ---------------------------------------------------------------------------------------

/**
 * Hash of `file`'s content plus, transitively, the contents of the files it imports
 * relatively and the versions of the packages it imports. Cycle-safe: the reachable set
 * is collected first, then hashed as a sorted list of (content hash, outgoing edges), so
 * every file of a cycle contributes whichever file the walk starts from.
 */
function moduleClosure(file: string): Memo {
  const cached = closureCache.get(file);
  if (cached && isFresh(cached.deps)) return cached;

  const deps: Dependency[] = [];
  const visited = new Map<string, { parsed: ParsedModule; edges: Array<{ spec: string; to: Resolved }> }>();
  const queue = [file];
  while (queue.length > 0) {
    const current = queue.pop()!;
    if (visited.has(current)) continue;
    const parsed = loadModule(current);
    deps.push({ path: current, sig: parsed.sig });
    const edges = (parsed.analysis?.specifiers ?? []).map((spec) => {
      const to = resolveSpecifier(current, spec, deps);
      if (to.kind === "file") queue.push(to.path);
      return { spec, to };
    });
    visited.set(current, { parsed, edges });
  }

  const entries = [...visited.values()].map(({ parsed, edges }) => {
    const out = edges
      .map(({ spec, to }) =>
        to.kind === "file"
          ? `${spec}=>${visited.get(to.path)!.parsed.contentHash}`
          : `${spec}=>${to.kind}:${to.id}`,
      )
      .sort();
    return `${parsed.contentHash} ${JSON.stringify(out)}`;
  });
  entries.sort();
  const root = visited.get(file)!.parsed.contentHash;
  const memo: Memo = {
    value: sha256(JSON.stringify([SCHEME, "module", root, entries])),
    deps: uniqueDeps(deps),
  };
  closureCache.set(file, memo);
  return memo;
}

// ---------------------------------------------------------------------------------------
// Finding the task definition
// ---------------------------------------------------------------------------------------

/** Calls to one of `calleeNames` from `@tern/core` whose options have `name: taskName`. */
function findDefinitions(
  mod: ModuleAnalysis,
  taskName: string,
  calleeNames: readonly string[],
): acorn.CallExpression[] {
  const direct = new Set<string>(); // local names of `task` (possibly aliased)
  const namespaces = new Set<string>(); // local names of `* as tern` / `require("@tern/core")`
  for (const b of mod.bindings.values()) {
    if (b.specifier !== TERN_CORE) continue;
    if (b.imported === "*") namespaces.add(b.local);
    else if (calleeNames.includes(b.imported)) direct.add(b.local);
  }
  if (direct.size === 0 && namespaces.size === 0) return [];

  const isDefiningCallee = (callee: acorn.AnyNode): boolean => {
    // `(0, task)(...)` is what some compilers emit; look through the sequence.
    if (callee.type === "SequenceExpression") return isDefiningCallee(callee.expressions.at(-1)!);
    if (callee.type === "Identifier") return direct.has(callee.name);
    if (
      callee.type === "MemberExpression" &&
      callee.object.type === "Identifier" &&
      namespaces.has(callee.object.name)
    ) {
      const prop = callee.computed
        ? stringValue(callee.property)
        : callee.property.type === "Identifier"
          ? callee.property.name
          : undefined;
      return prop !== undefined && calleeNames.includes(prop);
    }
    return false;
  };

  const hasName = (options: acorn.AnyNode | null | undefined, depth = 0): boolean => {
    // `task(opts, fn)` with `const opts = {...}` at top level: look at that object
    // (a few hops at most, which also stops `var a = a`).
    if (options?.type === "Identifier" && depth < 4) {
      const units = mod.declarations.get(options.name) ?? [];
      return units.some(
        (u) =>
          u.node.type === "VariableDeclarator" &&
          u.node.id.type === "Identifier" &&
          hasName(u.node.init, depth + 1),
      );
    }
    if (options?.type !== "ObjectExpression") return false;
    return options.properties.some(
      (p) =>
        p.type === "Property" &&
        !p.computed &&
        ((p.key.type === "Identifier" && p.key.name === "name") || stringValue(p.key) === "name") &&
        stringValue(p.value) === taskName,
    );
  };

  const found: acorn.CallExpression[] = [];
  const walk = (node: acorn.AnyNode): void => {
    if (node.type === "CallExpression" && isDefiningCallee(node.callee) && hasName(node.arguments[0])) {
      found.push(node);
    }
    forEachChild(node, walk);
  };
  walk(mod.program);
  return found;
}

// ---------------------------------------------------------------------------------------
// The task's closure
// ---------------------------------------------------------------------------------------

/** Hash entry (and dependencies) for one module a task uses. */
function dependencyEntry(fromFile: string, spec: string, deps: Dependency[]): string {
  const to = resolveSpecifier(fromFile, spec, deps);
  if (to.kind !== "file") return `${to.kind}:${to.id}`;
  const closure = moduleClosure(to.path);
  deps.push(...closure.deps);
  return `module:${closure.value}`;
}

function computeVersion(file: string, taskName: string, calleeNames: readonly string[]): Memo {
  const deps: Dependency[] = [];
  const parsed = loadModule(file);
  deps.push({ path: file, sig: parsed.sig });
  const mod = parsed.analysis;
  if (!mod) throw new Error(`unsupported file type ${path.extname(file) || "(none)"}`);

  const calls = findDefinitions(mod, taskName, calleeNames);
  if (calls.length === 0) {
    // Dynamic names, options built elsewhere, a typo...: be safe and depend on everything.
    const closure = moduleClosure(file);
    deps.push(...closure.deps);
    return {
      value: sha256(JSON.stringify([SCHEME, "fallback", closure.value])).slice(0, VERSION_LENGTH),
      deps,
    };
  }

  const entries = new Set<string>();
  const included = new Set<TopLevelUnit>();
  const includedNames = new Set<string>();
  const usedBindings = new Set<ImportBinding>();
  const usedSpecifiers = new Set<string>();
  const pending: string[] = [];

  const absorb = (refs: References) => {
    pending.push(...refs.names);
    for (const s of refs.specifiers) usedSpecifiers.add(s);
  };
  const include = (unit: TopLevelUnit) => {
    if (included.has(unit)) return;
    included.add(unit);
    entries.add(`code:${unit.text}`);
    for (const n of unit.declares) includedNames.add(n);
    absorb(unitRefs(unit));
  };

  for (const call of calls) {
    entries.add(`task:${mod.code.slice(call.start, call.end)}`);
    absorb(collectReferences(call));
  }

  // Transitive closure over top-level names; top-level statements that mention an
  // included name (`config.retries = 3;`) may change its value, so they join too.
  // esbuild's helpers do not count as a link: with keepNames every function gets a
  // `__name(fn, "fn")` statement, which would otherwise tie all functions together.
  let grew = true;
  while (grew) {
    while (pending.length > 0) {
      const name = pending.pop()!;
      const units = mod.declarations.get(name);
      if (units) for (const u of units) include(u);
      else {
        const binding = mod.bindings.get(name);
        if (binding) usedBindings.add(binding);
        // Otherwise a global (console, Math, fetch...): not hashed.
      }
    }
    grew = false;
    for (const st of mod.statements) {
      if (included.has(st)) continue;
      for (const n of unitRefs(st).names) {
        if (includedNames.has(n) && !mod.helperNames.has(n)) {
          include(st);
          grew = true;
          break;
        }
      }
    }
  }

  for (const b of usedBindings) {
    // The binding itself matters: `{ a }` and `{ b as a }` from the same file differ.
    entries.add(
      `import:${b.local}=${b.imported} from ${b.specifier} ${dependencyEntry(file, b.specifier, deps)}`,
    );
  }
  for (const spec of usedSpecifiers) entries.add(`dynamic:${spec} ${dependencyEntry(file, spec, deps)}`);

  const value = sha256(JSON.stringify([SCHEME, "task", [...entries].sort()])).slice(0, VERSION_LENGTH);
  return { value, deps };
}

/**
 * Default cache version of the task named `taskName` defined in `file`: a hash of the
 * code it depends on (see the module comment for exactly what is included).
 *
 * The result is the first 16 hex characters (64 bits) of a sha256 digest: ample to tell
 * versions of one task apart, and short enough to read in logs and cache keys.
 *
 * If no `task({ name: taskName, ... })` call is found statically (computed name, options
 * from another module...), the version falls back to the hash of the whole file and
 * everything it imports, which is safe but invalidates on any edit.
 *
 * Results are memoized per file by (mtime, size, inode) of every file involved, so
 * repeated calls cost a few `stat`s; {@link clearCodeVersionCache} resets.
 *
 * @param file Absolute path of the defining module (`.ts`, `.tsx`, `.mts`, `.js`, `.mjs`, `.cjs`).
 * @param taskName The `name` given in the task's options.
 * @param opts `calleeNames`: which `@tern/core` functions define the entity (default `["task"]`).
 * @throws Error naming the file and task if the file (or a file it imports) cannot be read or parsed.
 */
export function codeVersion(file: string, taskName: string, opts: CodeVersionOptions = {}): string {
  const calleeNames = opts.calleeNames ?? ["task"];
  const abs = path.resolve(file);
  const key = `${abs}\0${taskName}\0${calleeNames.join(",")}`;
  const cached = versionCache.get(key);
  if (cached && isFresh(cached.deps)) return cached.value;
  try {
    const memo = computeVersion(abs, taskName, calleeNames);
    memo.deps = uniqueDeps(memo.deps);
    versionCache.set(key, memo);
    return memo.value;
  } catch (err) {
    throw new Error(
      `cannot compute the code version of task "${taskName}" in ${abs}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
