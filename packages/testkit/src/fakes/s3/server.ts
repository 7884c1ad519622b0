/**
 * A loopback S3-compatible server for tests (PROTOCOLS §6): path-style
 * requests from `@aws-sdk/client-s3` with `forcePathStyle: true`. Objects live
 * in memory. Signatures are not checked; payload checksums are.
 */
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { BodyError, readPayload } from "./aws-chunked.js";
import {
  defaultCode,
  type MatchTarget,
  type RuleHandle,
  RuleList,
  type S3FailSpec,
  type S3Operation,
  type S3RequestMatch,
} from "./faults.js";
import { md5, metadataOf, parseRange, S3Error, sendError, sendXml } from "./http.js";
import { listPage } from "./list.js";
import { doc, el, parseCompleteParts, parseDelete } from "./xml.js";

export interface FakeS3Options {
  /** Buckets that exist from the start. @default ["tern"] */
  buckets?: string[];
  /** Smallest allowed multipart part except the last (S3: 5 MiB). @default 5 MiB */
  minPartSize?: number;
  /** Region reported to clients. @default "us-east-1" */
  region?: string;
}

/** One request as the fake saw it. */
export interface S3RecordedRequest {
  op: S3Operation;
  method: string;
  /** Raw path, still percent-encoded. */
  path: string;
  query: Record<string, string>;
  bucket?: string;
  key?: string;
  headers: http.IncomingHttpHeaders;
  /** Decoded payload size (after aws-chunked decoding). */
  bodyBytes: number;
  status: number;
}

/** A stored object, as {@link FakeS3.objects} lists it. */
export interface S3ObjectInfo {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  contentType: string;
  lastModified: Date;
  metadata: Record<string, string>;
}

interface StoredObject {
  body: Buffer;
  etag: string;
  contentType: string;
  lastModified: Date;
  metadata: Record<string, string>;
}

interface Upload {
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  parts: Map<number, { body: Buffer; etag: string }>;
}

/**
 * The fake. Start it with {@link startFakeS3}; point a client at it with
 * `new S3Client(fake.clientConfig())`.
 */
export class FakeS3 {
  readonly region: string;
  readonly credentials = { accessKeyId: "fake-access-key", secretAccessKey: "fake-secret-key" };
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly uploads = new Map<string, Upload>();
  private readonly failures = new RuleList<S3FailSpec>();
  private readonly delays = new RuleList<number>();
  private readonly truncations = new RuleList<true>();
  private readonly log: S3RecordedRequest[] = [];
  private readonly minPartSize: number;
  private readonly server: http.Server;
  private port = 0;

  constructor(opts: FakeS3Options = {}) {
    this.region = opts.region ?? "us-east-1";
    this.minPartSize = opts.minPartSize ?? 5 * 1024 * 1024;
    for (const b of opts.buckets ?? ["tern"]) this.createBucket(b);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(e));
        else res.destroy();
      });
    });
  }

  /** `http://127.0.0.1:<port>`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Options for `new S3Client(...)`: endpoint, region, path style and dummy credentials. */
  clientConfig(): {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
  } {
    return {
      endpoint: this.endpoint,
      region: this.region,
      forcePathStyle: true,
      credentials: { ...this.credentials },
    };
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  createBucket(name: string): void {
    if (!this.buckets.has(name)) this.buckets.set(name, new Map());
  }

  /** Store an object directly (test setup). */
  putObject(
    bucket: string,
    key: string,
    body: Buffer | string,
    contentType = "application/octet-stream",
  ): void {
    this.createBucket(bucket);
    const b = Buffer.from(body);
    this.buckets
      .get(bucket)!
      .set(key, { body: b, etag: `"${md5(b)}"`, contentType, lastModified: new Date(), metadata: {} });
  }

  /** An object's bytes, or `undefined`. */
  getObject(bucket: string, key: string): Buffer | undefined {
    return this.buckets.get(bucket)?.get(key)?.body;
  }

  /** Every stored object (of one bucket, or all), sorted by bucket then key. */
  objects(bucket?: string): S3ObjectInfo[] {
    const out: S3ObjectInfo[] = [];
    for (const [name, objs] of [...this.buckets.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (bucket !== undefined && name !== bucket) continue;
      for (const key of [...objs.keys()].sort()) {
        const o = objs.get(key)!;
        out.push({
          bucket: name,
          key,
          size: o.body.length,
          etag: o.etag,
          contentType: o.contentType,
          lastModified: o.lastModified,
          metadata: { ...o.metadata },
        });
      }
    }
    return out;
  }

  /** Multipart uploads not yet completed or aborted. */
  pendingUploads(): { uploadId: string; bucket: string; key: string; parts: number }[] {
    return [...this.uploads.entries()].map(([uploadId, u]) => ({
      uploadId,
      bucket: u.bucket,
      key: u.key,
      parts: u.parts.size,
    }));
  }

  /** Fail the next `spec.count` (default 1) matching requests with an S3 error. */
  failNext(match: S3RequestMatch, spec: S3FailSpec): RuleHandle {
    return this.failures.add(match, spec, spec.count ?? 1);
  }

  /** Delay matching requests by `ms` (every one, or the next `count`). */
  delay(match: S3RequestMatch, ms: number, count = Number.POSITIVE_INFINITY): RuleHandle {
    return this.delays.add(match, ms, count);
  }

  /** Send half of the next matching GetObject body, then close the socket. */
  truncateNext(match: S3RequestMatch = "GetObject", count = 1): RuleHandle {
    return this.truncations.add(match, true, count);
  }

  /** Requests seen so far (optionally only one operation). */
  requests(op?: S3Operation): S3RecordedRequest[] {
    return op ? this.log.filter((r) => r.op === op) : [...this.log];
  }

  clearRequests(): void {
    this.log.length = 0;
  }

  /** Drop faults, delays and truncations. */
  clearFaults(): void {
    this.failures.clear();
    this.delays.clear();
    this.truncations.clear();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams.entries());
    const segments = url.pathname.split("/");
    const bucket = segments[1] ? decodeURIComponent(segments[1]) : undefined;
    const rawKey = segments.slice(2).join("/");
    const key = bucket !== undefined && rawKey !== "" ? decodeURIComponent(rawKey) : undefined;
    const method = (req.method ?? "GET").toUpperCase();
    const op = this.operation(method, bucket, key, query, req.headers);
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks)));
      req.on("error", reject);
    });
    const record: S3RecordedRequest = {
      op,
      method,
      path: url.pathname,
      query,
      headers: req.headers,
      bodyBytes: 0,
      status: 0,
    };
    if (bucket !== undefined) record.bucket = bucket;
    if (key !== undefined) record.key = key;
    this.log.push(record);
    const target: MatchTarget = { op, method, bucket, key };

    const wait = this.delays.take(target);
    if (wait) await new Promise((r) => setTimeout(r, wait));
    try {
      const failure = this.failures.take(target);
      if (failure) {
        throw new S3Error(
          failure.status,
          failure.code ?? defaultCode(failure.status),
          failure.message ?? "injected failure",
          {},
          failure.headers,
        );
      }
      const body = raw.length ? readPayload(raw, req.headers) : raw;
      record.bodyBytes = body.length;
      await this.dispatch(op, { req, res, bucket, key, query, body, target });
    } catch (e) {
      const err =
        e instanceof S3Error
          ? e
          : e instanceof BodyError
            ? new S3Error(400, e.code, e.message)
            : new S3Error(500, "InternalError", String((e as Error)?.message ?? e));
      const extra: Record<string, string> = { ...err.extra };
      if (key !== undefined && err.code === "NoSuchKey") extra.Key = key;
      if (bucket !== undefined && err.code === "NoSuchBucket") extra.BucketName = bucket;
      sendError(res, method, err, extra);
    }
    record.status = res.statusCode;
  }

  private operation(
    method: string,
    bucket: string | undefined,
    key: string | undefined,
    q: Record<string, string>,
    headers: http.IncomingHttpHeaders,
  ): S3Operation {
    if (bucket === undefined) return method === "GET" ? "ListBuckets" : "Unsupported";
    if (key === undefined) {
      if (method === "PUT" && Object.keys(q).every((k) => k === "x-id")) return "CreateBucket";
      if (method === "HEAD") return "HeadBucket";
      if (method === "DELETE") return "DeleteBucket";
      if (method === "GET" && q["list-type"] === "2") return "ListObjectsV2";
      if (method === "POST" && "delete" in q) return "DeleteObjects";
      return "Unsupported";
    }
    if (method === "PUT") {
      if (headers["x-amz-copy-source"]) return "Unsupported";
      return "uploadId" in q && "partNumber" in q ? "UploadPart" : "PutObject";
    }
    if (method === "GET")
      return Object.keys(q).some((k) => k !== "x-id" && k !== "partNumber") ? "Unsupported" : "GetObject";
    if (method === "HEAD") return "HeadObject";
    if (method === "DELETE") return "uploadId" in q ? "AbortMultipartUpload" : "DeleteObject";
    if (method === "POST")
      return "uploads" in q
        ? "CreateMultipartUpload"
        : "uploadId" in q
          ? "CompleteMultipartUpload"
          : "Unsupported";
    return "Unsupported";
  }

  private bucketOf(name: string | undefined): Map<string, StoredObject> {
    const b = name === undefined ? undefined : this.buckets.get(name);
    if (!b) throw new S3Error(404, "NoSuchBucket", "The specified bucket does not exist");
    return b;
  }

  private async dispatch(
    op: S3Operation,
    c: {
      req: http.IncomingMessage;
      res: http.ServerResponse;
      bucket?: string;
      key?: string;
      query: Record<string, string>;
      body: Buffer;
      target: MatchTarget;
    },
  ): Promise<void> {
    const { req, res, query } = c;
    switch (op) {
      case "ListBuckets": {
        const inner = [...this.buckets.keys()]
          .sort()
          .map((b) => `<Bucket>${el("Name", b)}${el("CreationDate", new Date(0).toISOString())}</Bucket>`)
          .join("");
        return sendXml(res, 200, doc("ListAllMyBucketsResult", `<Buckets>${inner}</Buckets>`));
      }
      case "CreateBucket":
        if (this.buckets.has(c.bucket!))
          throw new S3Error(
            409,
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
          );
        this.createBucket(c.bucket!);
        res.writeHead(200, { Location: `/${c.bucket}` }).end();
        return;
      case "HeadBucket":
        this.bucketOf(c.bucket);
        res.writeHead(200, { "x-amz-bucket-region": this.region }).end();
        return;
      case "DeleteBucket": {
        const b = this.bucketOf(c.bucket);
        if (b.size) throw new S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty");
        this.buckets.delete(c.bucket!);
        res.writeHead(204).end();
        return;
      }
      case "ListObjectsV2":
        return this.list(res, c.bucket!, query);
      case "PutObject": {
        const b = this.bucketOf(c.bucket);
        const obj: StoredObject = {
          body: c.body,
          etag: `"${md5(c.body)}"`,
          contentType: req.headers["content-type"] ?? "application/octet-stream",
          lastModified: new Date(),
          metadata: metadataOf(req.headers),
        };
        b.set(c.key!, obj);
        res.writeHead(200, { ETag: obj.etag }).end();
        return;
      }
      case "GetObject":
      case "HeadObject":
        return this.get(req, res, op, c.bucket, c.key!, c.target);
      case "DeleteObject":
        this.bucketOf(c.bucket).delete(c.key!);
        res.writeHead(204).end();
        return;
      case "DeleteObjects": {
        const b = this.bucketOf(c.bucket);
        const { quiet, keys } = parseDelete(c.body.toString("utf8"));
        for (const k of keys) b.delete(k);
        const inner = quiet ? "" : keys.map((k) => `<Deleted>${el("Key", k)}</Deleted>`).join("");
        return sendXml(res, 200, doc("DeleteResult", inner));
      }
      case "CreateMultipartUpload": {
        this.bucketOf(c.bucket);
        const uploadId = randomUUID().replace(/-/g, "");
        this.uploads.set(uploadId, {
          bucket: c.bucket!,
          key: c.key!,
          contentType: req.headers["content-type"] ?? "application/octet-stream",
          metadata: metadataOf(req.headers),
          parts: new Map(),
        });
        return sendXml(
          res,
          200,
          doc(
            "InitiateMultipartUploadResult",
            el("Bucket", c.bucket) + el("Key", c.key) + el("UploadId", uploadId),
          ),
        );
      }
      case "UploadPart": {
        const upload = this.upload(query.uploadId, c);
        const n = Number(query.partNumber);
        if (!Number.isInteger(n) || n < 1 || n > 10_000)
          throw new S3Error(
            400,
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
          );
        const etag = `"${md5(c.body)}"`;
        upload.parts.set(n, { body: c.body, etag });
        res.writeHead(200, { ETag: etag }).end();
        return;
      }
      case "CompleteMultipartUpload":
        return this.complete(res, this.upload(query.uploadId, c), query.uploadId, c.body.toString("utf8"));
      case "AbortMultipartUpload":
        this.upload(query.uploadId, c);
        this.uploads.delete(query.uploadId);
        res.writeHead(204).end();
        return;
      default:
        throw new S3Error(501, "NotImplemented", `the fake S3 does not implement ${req.method} ${req.url}`);
    }
  }

  private upload(id: string | undefined, c: { bucket?: string; key?: string }): Upload {
    const u = id === undefined ? undefined : this.uploads.get(id);
    if (!u || u.bucket !== c.bucket || u.key !== c.key) {
      throw new S3Error(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
      );
    }
    return u;
  }

  private complete(res: http.ServerResponse, u: Upload, uploadId: string, xml: string): void {
    const listed = parseCompleteParts(xml);
    if (listed.length === 0)
      throw new S3Error(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
      );
    const bodies: Buffer[] = [];
    const digests: Buffer[] = [];
    if (listed.some((p, i) => i > 0 && p.partNumber <= listed[i - 1].partNumber)) {
      throw new S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.");
    }
    for (const [i, p] of listed.entries()) {
      const part = u.parts.get(p.partNumber);
      if (!part || part.etag.replace(/"/g, "") !== p.etag.replace(/"/g, "")) {
        throw new S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.");
      }
      if (i < listed.length - 1 && part.body.length < this.minPartSize) {
        throw new S3Error(
          400,
          "EntityTooSmall",
          "Your proposed upload is smaller than the minimum allowed object size.",
        );
      }
      bodies.push(part.body);
      digests.push(Buffer.from(part.etag.replace(/"/g, ""), "hex"));
    }
    const body = Buffer.concat(bodies);
    const etag = `"${md5(Buffer.concat(digests))}-${listed.length}"`;
    this.bucketOf(u.bucket).set(u.key, {
      body,
      etag,
      contentType: u.contentType,
      lastModified: new Date(),
      metadata: u.metadata,
    });
    this.uploads.delete(uploadId);
    sendXml(
      res,
      200,
      doc(
        "CompleteMultipartUploadResult",
        el("Location", `${this.endpoint}/${u.bucket}/${u.key}`) +
          el("Bucket", u.bucket) +
          el("Key", u.key) +
          el("ETag", etag),
      ),
    );
  }

  private get(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    op: "GetObject" | "HeadObject",
    bucket: string | undefined,
    key: string,
    target: MatchTarget,
  ): void {
    const obj = this.bucketOf(bucket).get(key);
    if (!obj) throw new S3Error(404, "NoSuchKey", "The specified key does not exist.");
    const headers: Record<string, string | number> = {
      "Content-Type": obj.contentType,
      ETag: obj.etag,
      "Last-Modified": obj.lastModified.toUTCString(),
      "Accept-Ranges": "bytes",
    };
    for (const [k, v] of Object.entries(obj.metadata)) headers[`x-amz-meta-${k}`] = v;
    let body = obj.body;
    let status = 200;
    const range = req.headers.range ? parseRange(req.headers.range, obj.body.length) : undefined;
    if (range) {
      status = 206;
      body = obj.body.subarray(range.start, range.end + 1);
      headers["Content-Range"] = `bytes ${range.start}-${range.end}/${obj.body.length}`;
    }
    headers["Content-Length"] = body.length;
    if (op === "HeadObject") {
      res.writeHead(status, headers).end();
      return;
    }
    if (this.truncations.take(target)) {
      res.writeHead(status, headers);
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
      return;
    }
    res.writeHead(status, headers).end(body);
  }

  private list(res: http.ServerResponse, bucket: string, q: Record<string, string>): void {
    const objs = this.bucketOf(bucket);
    const maxKeys = q["max-keys"] === undefined ? 1000 : Math.max(0, Math.min(1000, Number(q["max-keys"])));
    const prefix = q.prefix ?? "";
    let page: ReturnType<typeof listPage>;
    try {
      page = listPage([...objs.keys()].sort(), {
        prefix,
        delimiter: q.delimiter || undefined,
        maxKeys,
        continuationToken: q["continuation-token"],
        startAfter: q["start-after"],
      });
    } catch {
      throw new S3Error(400, "InvalidArgument", "The continuation token provided is incorrect");
    }
    const url = q["encoding-type"] === "url";
    const enc = (s: string): string => (url ? encodeURIComponent(s).replace(/%2F/g, "/") : s);
    const contents = page.keys
      .map((k) => {
        const o = objs.get(k)!;
        return `<Contents>${el("Key", enc(k))}${el("LastModified", o.lastModified.toISOString())}${el("ETag", o.etag)}${el("Size", o.body.length)}${el("StorageClass", "STANDARD")}</Contents>`;
      })
      .join("");
    const prefixes = page.commonPrefixes
      .map((p) => `<CommonPrefixes>${el("Prefix", enc(p))}</CommonPrefixes>`)
      .join("");
    const inner =
      el("Name", bucket) +
      el("Prefix", enc(prefix)) +
      (q.delimiter ? el("Delimiter", enc(q.delimiter)) : "") +
      el("KeyCount", page.keys.length + page.commonPrefixes.length) +
      el("MaxKeys", maxKeys) +
      (url ? el("EncodingType", "url") : "") +
      el("IsTruncated", page.truncated) +
      (q["continuation-token"] ? el("ContinuationToken", q["continuation-token"]) : "") +
      (q["start-after"] ? el("StartAfter", enc(q["start-after"])) : "") +
      contents +
      prefixes +
      (page.nextToken ? el("NextContinuationToken", page.nextToken) : "");
    sendXml(res, 200, doc("ListBucketResult", inner));
  }
}

/**
 * Start a fake S3 on 127.0.0.1 (a free port).
 *
 * @example
 * const s3 = await startFakeS3({ buckets: ["tern"] });
 * const client = new S3Client(s3.clientConfig());
 * s3.failNext("PutObject", { status: 503 }); // SlowDown, retried by the SDK
 * await s3.close();
 */
export function startFakeS3(opts: FakeS3Options = {}): Promise<FakeS3> {
  return new FakeS3(opts).listen();
}
