/**
 * `Status` error objects exactly as the real API server writes them (PROTOCOLS §1.5).
 *
 * Plugins branch on `code` and `reason`, and parse `details` (causes, retryAfterSeconds), so the
 * messages and detail shapes copy the API server's own wording where it matters.
 */
import type { ResourceType } from "./types.js";

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** The `kind: Status` body. */
export interface StatusBody {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, unknown>;
  status: "Failure" | "Success";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** Thrown anywhere inside the fake; the router turns it into an HTTP answer. */
export class StatusError extends Error {
  constructor(
    readonly body: StatusBody,
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(body.message ?? body.reason ?? `HTTP ${body.code}`);
    this.name = "StatusError";
  }

  get code(): number {
    return this.body.code;
  }
}

/** Builds a Failure status. */
export function failure(code: number, reason: string, message: string, details?: StatusDetails): StatusBody {
  const body: StatusBody = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details) body.details = details;
  return body;
}

/** `pods` for core resources, `sparkapplications.sparkoperator.k8s.io` for others, as in real messages. */
export function qualifiedResource(res: ResourceType): string {
  return res.group ? `${res.plural}.${res.group}` : res.plural;
}

function resourceDetails(res: ResourceType, name: string): StatusDetails {
  // Real NotFound/AlreadyExists details name the resource (plural) in `kind`, plus the group when not core.
  return res.group ? { name, group: res.group, kind: res.plural } : { name, kind: res.plural };
}

export function notFound(res: ResourceType, name: string): StatusError {
  return new StatusError(
    failure(404, "NotFound", `${qualifiedResource(res)} "${name}" not found`, resourceDetails(res, name)),
  );
}

/** 404 for a URL the fake does not serve at all. */
export function unknownPath(): StatusError {
  return new StatusError(failure(404, "NotFound", "the server could not find the requested resource", {}));
}

export function alreadyExists(res: ResourceType, name: string): StatusError {
  return new StatusError(
    failure(
      409,
      "AlreadyExists",
      `${qualifiedResource(res)} "${name}" already exists`,
      resourceDetails(res, name),
    ),
  );
}

export function conflict(res: ResourceType, name: string): StatusError {
  return new StatusError(
    failure(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualifiedResource(res)} "${name}": the object has been modified; ` +
        "please apply your changes to the latest version and try again",
      resourceDetails(res, name),
    ),
  );
}

/**
 * 422 Invalid. Unlike NotFound, the real server puts the *kind* (`Pod`) in `details.kind` and
 * prefixes the message with `Pod "name" is invalid:`.
 */
export function invalid(res: ResourceType, name: string, causes: StatusCause[]): StatusError {
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const summary = parts.length === 1 ? parts[0] : `[${parts.join(", ")}]`;
  const details: StatusDetails = { name, kind: res.kind, causes };
  if (res.group) details.group = res.group;
  return new StatusError(failure(422, "Invalid", `${res.kind} "${name}" is invalid: ${summary}`, details));
}

/** 410 Expired, for a too-old watch resourceVersion or list `continue` token. */
export function expired(message: string): StatusError {
  return new StatusError(failure(410, "Expired", message));
}

export function badRequest(message: string): StatusError {
  return new StatusError(failure(400, "BadRequest", message));
}

export function methodNotAllowed(): StatusError {
  return new StatusError(
    failure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"),
  );
}

export function unsupportedMediaType(type: string): StatusError {
  return new StatusError(
    failure(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json (got ${type})`,
    ),
  );
}

export function unauthorized(): StatusError {
  return new StatusError(failure(401, "Unauthorized", "Unauthorized"));
}

/**
 * The Status the fake sends for an injected failure (`failNext`) when the test gives no body:
 * the reason and message the API server would use for that code.
 */
export function statusForCode(
  code: number,
  retryAfterSeconds = 1,
): { body: StatusBody; headers: Record<string, string> } {
  switch (code) {
    case 400:
      return {
        body: failure(400, "BadRequest", "the server rejected our request for an unknown reason"),
        headers: {},
      };
    case 401:
      return { body: failure(401, "Unauthorized", "Unauthorized"), headers: {} };
    case 403:
      return { body: failure(403, "Forbidden", "forbidden: injected by the fake"), headers: {} };
    case 404:
      return {
        body: failure(404, "NotFound", "the server could not find the requested resource"),
        headers: {},
      };
    case 409:
      return {
        body: failure(409, "Conflict", "Operation cannot be fulfilled: injected conflict"),
        headers: {},
      };
    case 410:
      return { body: failure(410, "Expired", "too old resource version"), headers: {} };
    case 422:
      return {
        body: failure(422, "Invalid", "the object is invalid (injected)", { causes: [] }),
        headers: {},
      };
    case 429:
      return {
        body: failure(429, "TooManyRequests", "Too many requests, please try again later.", {
          retryAfterSeconds,
        }),
        headers: { "Retry-After": String(retryAfterSeconds) },
      };
    case 503:
      return {
        body: failure(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
        headers: { "Retry-After": String(retryAfterSeconds) },
      };
    case 504:
      return {
        body: failure(504, "Timeout", "the server was unable to return a response in the time allotted"),
        headers: {},
      };
    default:
      if (code >= 500)
        return {
          body: failure(
            code,
            "InternalError",
            'an error on the server ("injected") has prevented the request from succeeding',
          ),
          headers: {},
        };
      return { body: failure(code, "BadRequest", `injected HTTP ${code}`), headers: {} };
  }
}
