/**
 * The subset of API-server validation a plugin can trip over, answered with 422 Invalid and
 * `details.causes` in the server's own words: DNS-1123 names, label keys and values, required pod
 * fields, restart policy, resource quantities and the extended-resource (GPU) rules.
 */
import type { StatusCause } from "./errors.js";
import { isExtendedResource, parseQuantity } from "./quantity.js";
import type { Container, KubeObject, ObjectMeta, Pod } from "./types.js";
import { canonicalJson } from "./util.js";

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const SUBDOMAIN_RE = new RegExp(`^${DNS1123_SUBDOMAIN}$`);
const LABEL_RE = new RegExp(`^${DNS1123_LABEL}$`);
const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must " +
  "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is " +
  `'${DNS1123_SUBDOMAIN}')`;
const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start " +
  `and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${DNS1123_LABEL}')`;

function invalidValue(field: string, value: unknown, why: string): StatusCause {
  return { reason: "FieldValueInvalid", message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field };
}

function required(field: string, detail?: string): StatusCause {
  return {
    reason: "FieldValueRequired",
    message: detail ? `Required value: ${detail}` : "Required value",
    field,
  };
}

export function isDnsSubdomain(name: string): boolean {
  return name.length <= 253 && SUBDOMAIN_RE.test(name);
}

export function isDnsLabel(name: string): boolean {
  return name.length <= 63 && LABEL_RE.test(name);
}

/** Validates `metadata.name` (as a DNS-1123 subdomain, or label for namespaces) and labels. */
export function validateMeta(meta: ObjectMeta, nameRule: "subdomain" | "label" = "subdomain"): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = meta.name;
  if (!name) {
    causes.push(required("metadata.name", "name or generateName is required"));
  } else if (nameRule === "label" ? !isDnsLabel(name) : !isDnsSubdomain(name)) {
    const why =
      name.length > (nameRule === "label" ? 63 : 253)
        ? `must be no more than ${nameRule === "label" ? 63 : 253} characters`
        : nameRule === "label"
          ? LABEL_MSG
          : SUBDOMAIN_MSG;
    causes.push(invalidValue("metadata.name", name, why));
  }
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    const slash = key.lastIndexOf("/");
    const prefix = slash >= 0 ? key.slice(0, slash) : "";
    const local = slash >= 0 ? key.slice(slash + 1) : key;
    if ((slash >= 0 && !isDnsSubdomain(prefix)) || local.length > 63 || !QUALIFIED_NAME_RE.test(local)) {
      causes.push(
        invalidValue(
          "metadata.labels",
          key,
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " +
            "alphanumeric character, and be no more than 63 characters",
        ),
      );
    }
    if (typeof value !== "string") {
      causes.push(invalidValue("metadata.labels", value, "label values must be strings"));
    } else if (value.length > 63) {
      causes.push(invalidValue("metadata.labels", value, "must be no more than 63 characters"));
    } else if (!LABEL_VALUE_RE.test(value)) {
      causes.push(
        invalidValue(
          "metadata.labels",
          value,
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and " +
            "must start and end with an alphanumeric character",
        ),
      );
    }
  }
  return causes;
}

function validateContainer(c: Container, field: string, names: Set<string>): StatusCause[] {
  const causes: StatusCause[] = [];
  if (!c || typeof c !== "object") return [required(field)];
  if (!c.name) causes.push(required(`${field}.name`));
  else if (!isDnsLabel(c.name)) causes.push(invalidValue(`${field}.name`, c.name, LABEL_MSG));
  else if (names.has(c.name)) {
    causes.push({
      reason: "FieldValueDuplicate",
      message: `Duplicate value: "${c.name}"`,
      field: `${field}.name`,
    });
  } else names.add(c.name);
  if (!c.image) causes.push(required(`${field}.image`));
  for (const kind of ["requests", "limits"] as const) {
    for (const [res, q] of Object.entries(c.resources?.[kind] ?? {})) {
      const n = parseQuantity(q);
      if (Number.isNaN(n)) {
        causes.push(
          invalidValue(
            `${field}.resources.${kind}[${res}]`,
            q,
            "must match the regular expression for a quantity",
          ),
        );
      } else if (n < 0) {
        causes.push(
          invalidValue(`${field}.resources.${kind}[${res}]`, q, "must be greater than or equal to 0"),
        );
      }
    }
  }
  // Extended resources (GPUs) cannot be overcommitted: a request needs an equal limit (PROTOCOLS §1.7).
  for (const [res, q] of Object.entries(c.resources?.requests ?? {})) {
    if (!isExtendedResource(res)) continue;
    const limit = c.resources?.limits?.[res];
    if (limit === undefined) {
      causes.push(
        required(`${field}.resources.limits`, "Limit must be set for non overcommitable resources"),
      );
    } else if (parseQuantity(limit) !== parseQuantity(q)) {
      causes.push(
        invalidValue(`${field}.resources.requests[${res}]`, q, `must be equal to ${res} limit of ${limit}`),
      );
    }
  }
  return causes;
}

/** Full create-time validation of a pod. */
export function validatePod(pod: Pod): StatusCause[] {
  const causes = validateMeta(pod.metadata);
  const spec = pod.spec;
  if (!spec || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    causes.push(required("spec.containers"));
    return causes;
  }
  const names = new Set<string>();
  for (const [i, c] of (spec.initContainers ?? []).entries()) {
    causes.push(...validateContainer(c, `spec.initContainers[${i}]`, names));
  }
  for (const [i, c] of spec.containers.entries())
    causes.push(...validateContainer(c, `spec.containers[${i}]`, names));
  if (spec.restartPolicy !== undefined && !["Always", "OnFailure", "Never"].includes(spec.restartPolicy)) {
    causes.push({
      reason: "FieldValueNotSupported",
      message: `Unsupported value: "${spec.restartPolicy}": supported values: "Always", "OnFailure", "Never"`,
      field: "spec.restartPolicy",
    });
  }
  const deadline = spec.activeDeadlineSeconds;
  if (deadline !== undefined && (!Number.isInteger(deadline) || deadline < 1)) {
    causes.push(
      invalidValue("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"),
    );
  }
  return causes;
}

/**
 * Pods are mostly immutable: an update may only change labels/annotations and a few spec fields
 * (container images, activeDeadlineSeconds, added tolerations). Returns the 422 cause otherwise.
 */
export function validatePodUpdate(oldPod: Pod, newPod: Pod): StatusCause[] {
  const strip = (spec: Pod["spec"]) => {
    const copy = structuredClone(spec ?? {}) as Record<string, any>;
    delete copy.activeDeadlineSeconds;
    delete copy.tolerations;
    for (const c of [...(copy.containers ?? []), ...(copy.initContainers ?? [])]) delete c.image;
    return canonicalJson(copy);
  };
  if (strip(oldPod.spec) !== strip(newPod.spec)) {
    return [
      {
        reason: "FieldValueForbidden",
        message:
          "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, " +
          "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations)",
        field: "spec",
      },
    ];
  }
  return [];
}

/** Validation for any other object: metadata only (the fake has no schemas for custom resources). */
export function validateGeneric(
  obj: KubeObject,
  nameRule: "subdomain" | "label" = "subdomain",
): StatusCause[] {
  return validateMeta(obj.metadata ?? {}, nameRule);
}
