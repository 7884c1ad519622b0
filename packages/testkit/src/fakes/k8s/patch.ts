/**
 * PATCH bodies. client-node 2.x sends `application/json-patch+json` by default (the first media
 * type its generated code prefers), other clients send merge or strategic-merge patches; the fake
 * takes all three.
 *
 * Strategic merge is approximated: plain merge, except that lists of objects are merged by their
 * `name` (containers, env…) or `type` (conditions) key, which covers what plugins patch in practice.
 */
import { failure, StatusError, unsupportedMediaType } from "./errors.js";

type Json = any;

function isObject(v: unknown): v is Record<string, Json> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch (null deletes). */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function mergeKeyOf(list: Json[]): string | undefined {
  for (const key of ["name", "type"]) {
    if (list.length > 0 && list.every((item) => isObject(item) && typeof item[key] === "string")) return key;
  }
  return undefined;
}

/** Strategic-merge approximation (see module comment). */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && Array.isArray(out[k])) {
      const key = mergeKeyOf(v);
      if (key && (out[k] as Json[]).every((item) => isObject(item))) {
        const merged = [...(out[k] as Json[])];
        for (const item of v) {
          const idx = merged.findIndex((m) => m[key] === item[key]);
          if (item.$patch === "delete") {
            if (idx >= 0) merged.splice(idx, 1);
          } else if (idx >= 0) merged[idx] = strategicMergePatch(merged[idx], item);
          else merged.push(item);
        }
        out[k] = merged;
      } else out[k] = structuredClone(v);
    } else out[k] = strategicMergePatch(out[k], v);
  }
  return out;
}

function invalidPatch(message: string): StatusError {
  return new StatusError(
    failure(422, "Invalid", message, { causes: [{ reason: "FieldValueInvalid", message }] }),
  );
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw invalidPatch(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function walk(doc: Json, parts: string[], pointer: string): { parent: Json; key: string } {
  let parent = doc;
  for (const part of parts.slice(0, -1)) {
    parent = Array.isArray(parent) ? parent[Number(part)] : parent?.[part];
    if (parent === undefined || parent === null || typeof parent !== "object") {
      throw invalidPatch(
        `the server rejected our request due to an error in our request: path "${pointer}" does not exist`,
      );
    }
  }
  return { parent, key: parts[parts.length - 1] };
}

function getAt(doc: Json, pointer: string): Json {
  const parts = parsePointer(pointer);
  if (parts.length === 0) return doc;
  const { parent, key } = walk(doc, parts, pointer);
  const value = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (value === undefined) throw invalidPatch(`path "${pointer}" does not exist`);
  return value;
}

function removeAt(doc: Json, pointer: string): Json {
  const parts = parsePointer(pointer);
  const { parent, key } = walk(doc, parts, pointer);
  if (Array.isArray(parent)) return parent.splice(Number(key), 1)[0];
  if (!(key in parent)) throw invalidPatch(`unable to remove nonexistent key: ${key}: missing value`);
  const value = parent[key];
  delete parent[key];
  return value;
}

function addAt(doc: Json, pointer: string, value: Json, replace: boolean): Json {
  const parts = parsePointer(pointer);
  if (parts.length === 0) return value;
  const { parent, key } = walk(doc, parts, pointer);
  if (Array.isArray(parent)) {
    const idx = key === "-" ? parent.length : Number(key);
    if (replace) parent[idx] = value;
    else parent.splice(idx, 0, value);
  } else {
    if (replace && !(key in parent))
      throw invalidPatch(`replace operation does not apply: doc is missing key: ${pointer}`);
    parent[key] = value;
  }
  return doc;
}

/** RFC 6902 JSON patch. */
export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw invalidPatch("a JSON patch must be an array of operations");
  let doc = structuredClone(target);
  for (const op of ops) {
    switch (op?.op) {
      case "add":
        doc = addAt(doc, op.path, structuredClone(op.value), false);
        break;
      case "replace":
        doc = addAt(doc, op.path, structuredClone(op.value), true);
        break;
      case "remove":
        removeAt(doc, op.path);
        break;
      case "move": {
        const value = removeAt(doc, op.from);
        doc = addAt(doc, op.path, value, false);
        break;
      }
      case "copy":
        doc = addAt(doc, op.path, structuredClone(getAt(doc, op.from)), false);
        break;
      case "test":
        if (JSON.stringify(getAt(doc, op.path)) !== JSON.stringify(op.value)) {
          throw invalidPatch(`testing value ${op.path} failed`);
        }
        break;
      default:
        throw invalidPatch(`Unexpected kind: ${op?.op}`);
    }
  }
  return doc;
}

/** Applies a PATCH body according to its Content-Type. */
export function applyPatch(target: Json, body: Json, contentType: string | undefined): Json {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  switch (type) {
    case "application/json-patch+json":
      return jsonPatch(target, body);
    case "application/merge-patch+json":
      return mergePatch(target, body);
    case "application/strategic-merge-patch+json":
      return strategicMergePatch(target, body);
    default:
      throw unsupportedMediaType(type || "(none)");
  }
}
