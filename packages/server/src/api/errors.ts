/**
 * Errors of the HTTP API: one body shape for every failure,
 * `{ error: { code, message, hint?, details? } }`, and the status each code
 * maps to. Bad input of any kind is a 4xx; a 5xx means a bug or an outage,
 * never something a client sent.
 */
import { ErrorCodes, isTernError, TernError } from "@tern/core";

/** Codes the API adds to core's {@link ErrorCodes} for HTTP-level failures. */
export const ApiErrorCodes = {
  /** The request is malformed: bad JSON, wrong types, unknown fields, bad parameters. */
  BAD_REQUEST: "TERN_E_BAD_REQUEST",
  /** No token, or a token the server does not know. */
  UNAUTHORIZED: "TERN_E_UNAUTHORIZED",
  /** The token is known but lacks the role the route needs in that project and domain. */
  FORBIDDEN: "TERN_E_FORBIDDEN",
  /** The body is larger than the server accepts. */
  PAYLOAD_TOO_LARGE: "TERN_E_PAYLOAD_TOO_LARGE",
  /** The body is not JSON. */
  UNSUPPORTED_MEDIA_TYPE: "TERN_E_UNSUPPORTED_MEDIA_TYPE",
  /** A path parameter is longer than the server accepts. */
  URI_TOO_LONG: "TERN_E_URI_TOO_LONG",
  /** No route has this method and path. */
  ROUTE_NOT_FOUND: "TERN_E_ROUTE_NOT_FOUND",
  /** The server failed; the request id in the body finds the log line. */
  INTERNAL: "TERN_E_INTERNAL",
  /** The store is unreachable. */
  UNAVAILABLE: "TERN_E_UNAVAILABLE",
} as const;

/** The JSON body of every error response. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    hint?: string;
    details?: Record<string, unknown>;
    /** The request's id, to find it in the server's log. */
    requestId?: string;
  };
}

const BAD_INPUT: ReadonlySet<string> = new Set<string>([
  ErrorCodes.USAGE,
  ErrorCodes.SPEC_INVALID,
  ErrorCodes.INPUT_INVALID,
  ErrorCodes.COMPILE,
  ErrorCodes.TYPE_MISMATCH,
  ErrorCodes.DEFINITION,
  ErrorCodes.EXPORT_NOT_FOUND,
  ErrorCodes.OUTPUT_INVALID,
  ErrorCodes.PLUGIN_UNKNOWN_TYPE,
  ErrorCodes.PLUGIN_UNKNOWN,
  ApiErrorCodes.BAD_REQUEST,
]);

/** The HTTP status for an error code. */
export function statusForCode(code: string): number {
  if (BAD_INPUT.has(code)) return 400;
  switch (code) {
    case ErrorCodes.NOT_FOUND:
    case ErrorCodes.BLOB_NOT_FOUND:
    case ApiErrorCodes.ROUTE_NOT_FOUND:
      return 404;
    case ErrorCodes.CONFLICT:
    case ErrorCodes.VERSION_CONFLICT:
      return 409;
    case ApiErrorCodes.UNAUTHORIZED:
      return 401;
    case ApiErrorCodes.FORBIDDEN:
      return 403;
    case ApiErrorCodes.PAYLOAD_TOO_LARGE:
      return 413;
    case ApiErrorCodes.UNSUPPORTED_MEDIA_TYPE:
      return 415;
    case ApiErrorCodes.URI_TOO_LONG:
      return 414;
    case ApiErrorCodes.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

/** A {@link TernError} raised by a route: the status follows from the code. */
export function apiError(
  code: string,
  message: string,
  opts: { hint?: string; details?: Record<string, unknown> } = {},
): TernError {
  // Core's TernError types its code as core's codes; the API's own are a superset on the wire.
  return new TernError(code as (typeof ErrorCodes)[keyof typeof ErrorCodes], message, opts);
}

/** A 400 naming what is wrong with the request. */
export function badRequest(message: string, hint?: string, details?: Record<string, unknown>): TernError {
  return apiError(ApiErrorCodes.BAD_REQUEST, message, { hint, details });
}

/** A 404 for a named thing. */
export function notFound(message: string, hint?: string, details?: Record<string, unknown>): TernError {
  return new TernError(ErrorCodes.NOT_FOUND, message, { hint, details });
}

/** Fastify's own error codes (body parsing, limits) and what they become. */
const FASTIFY_CODES: Record<string, { code: string; message?: string; hint?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: ApiErrorCodes.PAYLOAD_TOO_LARGE,
    hint: "send a smaller body (the limit is per route; registering large bundles has a higher one)",
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: ApiErrorCodes.UNSUPPORTED_MEDIA_TYPE,
    message: "the request body must be JSON",
    hint: "send Content-Type: application/json",
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: ApiErrorCodes.BAD_REQUEST },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: ApiErrorCodes.BAD_REQUEST,
    message: "the body is empty but Content-Type says JSON",
    hint: "send {} or leave out the Content-Type header",
  },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: ApiErrorCodes.BAD_REQUEST, hint: "the body must be valid JSON" },
  FST_ERR_CTP_INVALID_CONTENT_TYPE: {
    code: ApiErrorCodes.UNSUPPORTED_MEDIA_TYPE,
    hint: "send Content-Type: application/json",
  },
  FST_ERR_BAD_URL: {
    code: ApiErrorCodes.BAD_REQUEST,
    message: "the URL is malformed (a bad %-escape?)",
    hint: "percent-encode path parameters",
  },
  FST_ERR_MAX_PARAM_LENGTH: {
    code: ApiErrorCodes.URI_TOO_LONG,
    message: "a path parameter is too long",
    hint: "names are at most 200 characters, ids 64",
  },
  FST_ERR_ASYNC_CONSTRAINT: { code: ApiErrorCodes.BAD_REQUEST },
};

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: { instancePath?: string; message?: string; params?: Record<string, unknown> }[];
  validationContext?: string;
}

/** Turn anything a route (or fastify itself) threw into a status and an error body. */
export function toErrorResponse(e: unknown, requestId?: string): { status: number; body: ErrorBody } {
  const withId = (status: number, error: ErrorBody["error"]) => ({
    status,
    body: { error: requestId ? { ...error, requestId } : error },
  });
  if (isTernError(e)) {
    const details = e.details && Object.keys(e.details).length ? e.details : undefined;
    const status = statusForCode(e.code);
    if (status >= 500 && (e.code as string) !== ApiErrorCodes.UNAVAILABLE) {
      return withId(500, {
        code: ApiErrorCodes.INTERNAL,
        message: "the server failed to handle the request",
        hint: "see the server log for this request id",
      });
    }
    return withId(status, {
      code: e.code,
      message: e.message,
      ...(e.hint ? { hint: e.hint } : {}),
      ...(details ? { details } : {}),
    });
  }
  const fe = (e ?? {}) as FastifyLikeError;
  if (fe.validation) {
    const where = fe.validationContext ?? "request";
    const first = fe.validation[0];
    const field = first?.instancePath ? first.instancePath.replace(/^\//, "").replace(/\//g, ".") : "";
    const extra = first?.params?.additionalProperty ? ` "${String(first.params.additionalProperty)}"` : "";
    const missing = first?.params?.missingProperty ? ` "${String(first.params.missingProperty)}"` : "";
    return withId(400, {
      code: ApiErrorCodes.BAD_REQUEST,
      message: `invalid ${where}${field ? ` at ${field}` : ""}: ${first?.message ?? "does not match the schema"}${extra}${missing}`,
      hint: "see the API description at /docs",
      details: {
        in: where,
        ...(field ? { field } : {}),
        issues: fe.validation
          .slice(0, 5)
          .map((v) => ({ path: v.instancePath ?? "", message: v.message ?? "" })),
      },
    });
  }
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) {
    return withId(statusForCode(mapped.code), {
      code: mapped.code,
      message: mapped.message ?? fe.message ?? "bad request",
      ...(mapped.hint ? { hint: mapped.hint } : {}),
    });
  }
  if (
    e instanceof SyntaxError ||
    (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500)
  ) {
    const status =
      typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 400;
    const code =
      status === 413
        ? ApiErrorCodes.PAYLOAD_TOO_LARGE
        : status === 415
          ? ApiErrorCodes.UNSUPPORTED_MEDIA_TYPE
          : status === 404
            ? ApiErrorCodes.ROUTE_NOT_FOUND
            : ApiErrorCodes.BAD_REQUEST;
    return withId(status, { code, message: fe.message || "bad request" });
  }
  return withId(500, {
    code: ApiErrorCodes.INTERNAL,
    message: "the server failed to handle the request",
    hint: "see the server log for this request id",
  });
}
