/** HTTP helpers of the fake S3: errors, ranges, metadata headers and XML responses. */
import { createHash, randomUUID } from "node:crypto";
import type * as http from "node:http";
import { el } from "./xml.js";

/** An S3 error response: status, `Code`, message, extra XML elements and headers. */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const md5 = (b: Buffer): string => createHash("md5").update(b).digest("hex");

export function metadataOf(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (k.startsWith("x-amz-meta-") && typeof v === "string") out[k.slice(11)] = v;
  return out;
}

export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end)
    throw new S3Error(416, "InvalidRange", "The requested range is not satisfiable");
  return { start, end };
}

export function sendXml(res: http.ServerResponse, status: number, xml: string): void {
  const body = Buffer.from(xml);
  res
    .writeHead(status, {
      "Content-Type": "application/xml",
      "Content-Length": body.length,
      "x-amz-request-id": randomUUID(),
    })
    .end(body);
}

export function sendError(
  res: http.ServerResponse,
  method: string,
  err: S3Error,
  extra: Record<string, string>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const requestId = randomUUID();
  const headers: Record<string, string> = { "x-amz-request-id": requestId, ...err.headers };
  // HEAD responses carry no body: the SDK then names the error after the status (NotFound).
  if (method === "HEAD") {
    res.writeHead(err.status, headers).end();
    return;
  }
  const inner =
    el("Code", err.code) +
    el("Message", err.message) +
    Object.entries(extra)
      .map(([k, v]) => el(k, v))
      .join("") +
    el("RequestId", requestId);
  const body = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<Error>${inner}</Error>`);
  res
    .writeHead(err.status, { ...headers, "Content-Type": "application/xml", "Content-Length": body.length })
    .end(body);
}
