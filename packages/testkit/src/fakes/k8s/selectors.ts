/**
 * Label selectors, field selectors and node-selector requirements.
 *
 * The label grammar is the API server's (`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`,
 * `!k`, comma = AND). Note the Kubernetes quirk kept here on purpose: `!=` and `notin` also match
 * objects that do not have the label at all.
 */
import { badRequest } from "./errors.js";
import type { KubeObject, NodeSelectorRequirement, Taint, Toleration } from "./types.js";

export type Operator = "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

export interface Requirement {
  key: string;
  op: Operator;
  values: string[];
}

/** A parsed selector; an empty one matches everything. */
export type Selector = Requirement[];

const KEY = "[A-Za-z0-9][-A-Za-z0-9_./]*";
const VALUE = "[-A-Za-z0-9_.]*";
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^)]*)\)$`);
const NOT_EXISTS_RE = new RegExp(String.raw`^!\s*(${KEY})$`);
const EXISTS_RE = new RegExp(`^(${KEY})$`);
const CMP_RE = new RegExp(String.raw`^(${KEY})\s*(==|=|!=|>|<)\s*(${VALUE})$`);

/** Splits on commas that are not inside `( … )`. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** Parses a label selector; throws a 400 Status (as the API server does) when it cannot. */
export function parseLabelSelector(text: string | undefined): Selector {
  if (!text?.trim()) return [];
  return splitTop(text).map((part) => {
    let m = SET_RE.exec(part);
    if (m) {
      const values = m[3]
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");
      return { key: m[1], op: m[2] as Operator, values };
    }
    m = NOT_EXISTS_RE.exec(part);
    if (m) return { key: m[1], op: "!", values: [] };
    m = EXISTS_RE.exec(part);
    if (m) return { key: m[1], op: "exists", values: [] };
    m = CMP_RE.exec(part);
    if (m) {
      const op = m[2] === "==" ? "=" : m[2] === ">" ? "gt" : m[2] === "<" ? "lt" : (m[2] as Operator);
      return { key: m[1], op, values: [m[3]] };
    }
    throw badRequest(`unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
  });
}

function matchOne(req: Requirement, value: string | undefined): boolean {
  switch (req.op) {
    case "=":
      return value === req.values[0];
    case "!=":
      return value !== req.values[0];
    case "in":
      return value !== undefined && req.values.includes(value);
    case "notin":
      return value === undefined || !req.values.includes(value);
    case "exists":
      return value !== undefined;
    case "!":
      return value === undefined;
    case "gt":
      return value !== undefined && Number(value) > Number(req.values[0]);
    case "lt":
      return value !== undefined && Number(value) < Number(req.values[0]);
  }
}

export function matchesLabels(selector: Selector, labels: Record<string, string> | undefined): boolean {
  return selector.every((req) => matchOne(req, labels?.[req.key]));
}

const FIELD_RE = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/;

/**
 * Parses a field selector (`metadata.name=x,status.phase!=Running`). The real server only allows a
 * few fields per resource; the fake accepts any dotted path, which is a superset.
 */
export function parseFieldSelector(text: string | undefined): Selector {
  if (!text?.trim()) return [];
  return text.split(",").map((part) => {
    const m = FIELD_RE.exec(part.trim());
    if (!m) throw badRequest(`invalid field selector: '${part}'`);
    return { key: m[1], op: m[2] === "!=" ? "!=" : "=", values: [m[3]] };
  });
}

function fieldValue(obj: KubeObject, path: string): string | undefined {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur === undefined || cur === null ? undefined : String(cur);
}

export function matchesFields(selector: Selector, obj: KubeObject): boolean {
  // An absent field compares as "" (so `spec.nodeName=` finds unscheduled pods, as in Kubernetes).
  return selector.every((req) => matchOne(req, fieldValue(obj, req.key) ?? ""));
}

/** A node affinity `matchExpressions` entry against node labels. */
export function matchesNodeRequirement(
  req: NodeSelectorRequirement,
  labels: Record<string, string>,
): boolean {
  const value = labels[req.key];
  const values = req.values ?? [];
  switch (req.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
      return value !== undefined && Number(value) > Number(values[0]);
    case "Lt":
      return value !== undefined && Number(value) < Number(values[0]);
    default:
      return false;
  }
}

/** Whether one toleration tolerates one taint (the scheduler's `ToleratesTaint`). */
export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  // An empty key with operator Exists tolerates every taint.
  if (!toleration.key) return toleration.operator === "Exists";
  if (toleration.key !== taint.key) return false;
  if (toleration.operator === "Exists") return true;
  return (toleration.value ?? "") === (taint.value ?? "");
}
