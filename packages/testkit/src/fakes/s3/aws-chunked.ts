/**
 * Request-body codecs the AWS SDK uses: the `aws-chunked` content encoding it
 * switches to for stream bodies (PROTOCOLS §6), and the checksums a server
 * verifies (CRC32, Content-MD5, x-amz-content-sha256), as real S3 does.
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";

export class BodyError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Whether the request body is `aws-chunked` framed. */
export function isAwsChunked(headers: Record<string, string | string[] | undefined>): boolean {
  const enc = String(headers["content-encoding"] ?? "");
  const sha = String(headers["x-amz-content-sha256"] ?? "");
  return enc.split(",").some((e) => e.trim() === "aws-chunked") || sha.startsWith("STREAMING-");
}

/**
 * Decode `<hexlen>[;chunk-signature=…]\r\n<bytes>\r\n … 0\r\n<trailer: value>\r\n…\r\n`.
 * Returns the payload and the trailing headers (lower-cased names).
 */
export function decodeAwsChunked(body: Buffer): { payload: Buffer; trailers: Record<string, string> } {
  const parts: Buffer[] = [];
  let pos = 0;
  const line = (): string => {
    const end = body.indexOf("\r\n", pos);
    if (end < 0) throw new BodyError("IncompleteBody", "aws-chunked body ends inside a chunk header");
    const text = body.subarray(pos, end).toString("latin1");
    pos = end + 2;
    return text;
  };
  for (;;) {
    const header = line();
    const size = Number.parseInt(header.split(";")[0], 16);
    if (!Number.isFinite(size) || size < 0)
      throw new BodyError("InvalidRequest", `bad aws-chunked header "${header}"`);
    if (size === 0) break;
    if (pos + size + 2 > body.length)
      throw new BodyError("IncompleteBody", "aws-chunked body is shorter than its chunks");
    parts.push(body.subarray(pos, pos + size));
    pos += size;
    if (body.subarray(pos, pos + 2).toString("latin1") !== "\r\n") {
      throw new BodyError("InvalidRequest", "aws-chunked chunk is not followed by CRLF");
    }
    pos += 2;
  }
  const trailers: Record<string, string> = {};
  while (pos < body.length) {
    const t = line();
    if (t === "") break;
    const colon = t.indexOf(":");
    if (colon > 0) trailers[t.slice(0, colon).trim().toLowerCase()] = t.slice(colon + 1).trim();
  }
  return { payload: Buffer.concat(parts), trailers };
}

/** Base64 of the big-endian CRC32, the form of `x-amz-checksum-crc32`. */
export function crc32Base64(data: Buffer): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32(data) >>> 0);
  return b.toString("base64");
}

/**
 * Check every checksum the request carries (headers or aws-chunked trailers)
 * against the decoded payload; throws `BadDigest` / `XAmzContentSHA256Mismatch`.
 */
export function verifyChecksums(
  payload: Buffer,
  headers: Record<string, string | string[] | undefined>,
  trailers: Record<string, string> = {},
): void {
  const crc = trailers["x-amz-checksum-crc32"] ?? headers["x-amz-checksum-crc32"];
  if (typeof crc === "string" && crc !== crc32Base64(payload)) {
    throw new BodyError("BadDigest", "The CRC32 you specified did not match the calculated checksum.");
  }
  const md5 = headers["content-md5"];
  if (typeof md5 === "string" && md5 !== createHash("md5").update(payload).digest("base64")) {
    throw new BodyError("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  const sha = headers["x-amz-content-sha256"];
  if (
    typeof sha === "string" &&
    /^[0-9a-f]{64}$/.test(sha) &&
    sha !== createHash("sha256").update(payload).digest("hex")
  ) {
    throw new BodyError(
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
  }
}

/** Decode the body if it is aws-chunked, check its length and checksums, and return the payload. */
export function readPayload(raw: Buffer, headers: Record<string, string | string[] | undefined>): Buffer {
  if (!isAwsChunked(headers)) {
    verifyChecksums(raw, headers);
    return raw;
  }
  const { payload, trailers } = decodeAwsChunked(raw);
  const declared = headers["x-amz-decoded-content-length"];
  if (typeof declared === "string" && Number(declared) !== payload.length) {
    throw new BodyError(
      "IncompleteBody",
      `You did not provide the number of bytes specified by x-amz-decoded-content-length (${declared} declared, ${payload.length} sent).`,
    );
  }
  verifyChecksums(payload, { ...headers, "x-amz-content-sha256": undefined }, trailers);
  return payload;
}
