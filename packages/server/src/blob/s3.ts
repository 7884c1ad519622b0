/**
 * Blob storage on S3 or an S3-compatible service (MinIO, Ceph, R2…). Root URIs
 * look like `s3://bucket/prefix`. The AWS SDK loads on first use, so a server
 * on local blobs never pays for it.
 *
 * Uploads send Buffers, never streams: a Buffer body can be resent, so the
 * SDK's retries (503 SlowDown, 500, resets) work for every request. Files above
 * `multipartThresholdBytes` go up in parts of `partSizeBytes`, each part its
 * own retryable request, so memory stays bounded by one part per upload.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { type BlobStore, ErrorCodes, TernError } from "@tern/core";
import { tmpPath } from "./tmp-path.js";

type Sdk = typeof import("@aws-sdk/client-s3");

export interface S3BlobStoreOptions {
  /** `s3://bucket` or `s3://bucket/prefix`: where keys live. */
  root: string;
  /** A ready client (then the connection options below are ignored). */
  client?: S3Client;
  /** Endpoint of an S3-compatible service. @default env AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL */
  endpoint?: string;
  /** @default env AWS_REGION or AWS_DEFAULT_REGION, else "us-east-1" */
  region?: string;
  /** Bucket in the path rather than the host name. @default true when an endpoint is set */
  forcePathStyle?: boolean;
  /** @default the SDK's chain (env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request, retries included. @default 3 (the SDK's) */
  maxAttempts?: number;
  /** Files larger than this are uploaded in parts. @default 16 MiB */
  multipartThresholdBytes?: number;
  /** Part size for multipart uploads; S3 needs at least 5 MiB. @default 8 MiB */
  partSizeBytes?: number;
  /** Files uploaded at once by `putPath` on a directory. @default 8 */
  concurrency?: number;
}

const MiB = 1024 * 1024;

/** Parse `s3://bucket/key` into its parts. */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) {
    throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `not an S3 URI: ${uri}`, {
      hint: "S3 blob URIs look like s3://bucket/key; configure a blob store that serves this URI's scheme",
    });
  }
  return { bucket: m[1], key: m[2] };
}

function errorName(e: unknown): string | undefined {
  return (e as { name?: string } | null)?.name;
}

/** A missing object: GET says `NoSuchKey`, HEAD (no body) says `NotFound` (PROTOCOLS §6). */
export function isS3NotFound(e: unknown): boolean {
  const name = errorName(e);
  return name === "NoSuchKey" || name === "NotFound";
}

/** A key that names a content-addressed blob (a sha256 in the key): its bytes never change. */
function isContentAddressed(key: string): boolean {
  return /(^|[/:])(sha256[:-])?[0-9a-f]{64}([./]|$)/.test(key);
}

async function walk(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A {@link BlobStore} on S3.
 *
 * @example
 * const blobs = new S3BlobStore({ root: "s3://tern-data/prod", endpoint: "http://127.0.0.1:9000" });
 * const uri = await blobs.put("literals/x1/n0.json", JSON.stringify(outputs));
 */
export class S3BlobStore implements BlobStore {
  readonly root: string;
  readonly bucket: string;
  /** Key prefix inside the bucket: "" or ends with "/". */
  readonly prefix: string;
  private readonly opts: S3BlobStoreOptions;
  private sdkPromise?: Promise<{ sdk: Sdk; client: S3Client }>;

  constructor(opts: S3BlobStoreOptions) {
    const { bucket, key } = parseS3Uri(opts.root);
    const prefix = key.replace(/^\/+|\/+$/g, "");
    this.bucket = bucket;
    this.prefix = prefix ? `${prefix}/` : "";
    this.root = `s3://${bucket}${prefix ? `/${prefix}` : ""}`;
    this.opts = opts;
    const part = opts.partSizeBytes ?? 8 * MiB;
    if (part < 5 * MiB) {
      throw new TernError(ErrorCodes.CONFIG, `S3 part size ${part} bytes is below S3's 5 MiB minimum`, {
        hint: "set partSizeBytes to at least 5242880",
      });
    }
  }

  private load(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.sdkPromise ??= import("@aws-sdk/client-s3").then((sdk) => {
      if (this.opts.client) return { sdk, client: this.opts.client };
      const env = process.env;
      const endpoint = this.opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
      const config: S3ClientConfig = {
        region: this.opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
        forcePathStyle: this.opts.forcePathStyle ?? endpoint !== undefined,
      };
      if (endpoint) config.endpoint = endpoint;
      if (this.opts.credentials) config.credentials = this.opts.credentials;
      if (this.opts.maxAttempts !== undefined) config.maxAttempts = this.opts.maxAttempts;
      return { sdk, client: new sdk.S3Client(config) };
    });
    return this.sdkPromise;
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${this.fullKey(key)}`;
  }

  private fullKey(key: string): string {
    const clean = key.replace(/^\/+/, "");
    if (clean.split("/").some((seg) => seg === ".." || seg === ".")) {
      throw new TernError(ErrorCodes.USAGE, `blob key has . or .. segments: ${key}`);
    }
    return this.prefix + clean;
  }

  async put(key: string, data: Uint8Array | string): Promise<string> {
    const { sdk, client } = await this.load();
    const full = this.fullKey(key);
    await this.call(
      () => client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: full, Body: toBuffer(data) })),
      full,
    );
    return `s3://${this.bucket}/${full}`;
  }

  async get(uri: string): Promise<Uint8Array> {
    const { bucket, key } = parseS3Uri(uri);
    const { sdk, client } = await this.load();
    try {
      const r = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
      return await r.Body!.transformToByteArray();
    } catch (e) {
      throw this.translate(e, uri);
    }
  }

  /** True for an object, and for a "directory" (a prefix with objects below it). */
  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    if ((await this.head(bucket, key)) !== undefined) return true;
    return (await this.listKeys(bucket, `${key.replace(/\/$/, "")}/`, 1)).length > 0;
  }

  /** Delete an object, or every object below a directory URI. Missing objects are fine. */
  async delete(uri: string): Promise<void> {
    const { bucket, key } = parseS3Uri(uri);
    const { sdk, client } = await this.load();
    await this.call(() => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: key })), uri);
    const below = await this.listKeys(bucket, `${key.replace(/\/$/, "")}/`);
    for (let i = 0; i < below.length; i += 1000) {
      const batch = below.slice(i, i + 1000);
      const r = await this.call(
        () =>
          client.send(
            new sdk.DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
            }),
          ),
        uri,
      );
      if (r.Errors?.length) {
        throw new TernError(
          ErrorCodes.SYSTEM,
          `could not delete ${r.Errors.length} objects below ${uri}: ${r.Errors[0].Message}`,
          {
            kind: "system",
            details: { errors: r.Errors.slice(0, 10) },
          },
        );
      }
    }
  }

  /** Keys (relative to this store's root) of the object `prefix` and every object below it. */
  async list(prefix: string): Promise<string[]> {
    const full = this.fullKey(prefix);
    const keys =
      full.endsWith("/") || full === this.prefix
        ? await this.listKeys(this.bucket, full)
        : (await this.listKeys(this.bucket, full)).filter((k) => k === full || k.startsWith(`${full}/`));
    return keys.map((k) => k.slice(this.prefix.length));
  }

  /** Upload a file, or a directory tree (each file under `key/<relative path>`). */
  async putPath(localPath: string, key: string): Promise<string> {
    const st = await fs.stat(localPath);
    if (st.isFile()) {
      await this.uploadFile(localPath, this.fullKey(key), st.size);
    } else {
      const files = await walk(localPath);
      const base = this.fullKey(key).replace(/\/$/, "");
      await pool(files, this.opts.concurrency ?? 8, async (rel) => {
        const file = path.join(localPath, rel);
        await this.uploadFile(file, `${base}/${rel}`, (await fs.stat(file)).size);
      });
    }
    return this.uri(key);
  }

  /**
   * Download the blob (a file, or a directory tree) under `cacheDir` and return
   * its local path, keeping the key's base name. A content-addressed key that
   * is already there is returned without a request; any other file is
   * re-fetched only when its ETag changed; a directory is fetched afresh.
   */
  async localPath(uri: string, cacheDir: string): Promise<string> {
    const { bucket, key } = parseS3Uri(uri);
    const slot = path.join(cacheDir, createHash("sha256").update(uri).digest("hex").slice(0, 24));
    const target = path.join(slot, path.posix.basename(key.replace(/\/$/, "")) || "blob");
    const immutable = isContentAddressed(key);
    if (immutable && (await pathExists(target))) return target;

    const head = await this.head(bucket, key);
    if (head !== undefined) {
      const etagFile = `${target}.etag`;
      if (!immutable && (await pathExists(target)) && (await readText(etagFile)) === head) return target;
      await fs.mkdir(slot, { recursive: true });
      const tmp = tmpPath(target);
      await fs.writeFile(tmp, await this.get(uri));
      await fs.rename(tmp, target);
      if (!immutable) await fs.writeFile(etagFile, head);
      return target;
    }

    const dirPrefix = `${key.replace(/\/$/, "")}/`;
    const keys = await this.listKeys(bucket, dirPrefix);
    if (keys.length === 0) {
      throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `blob not found: ${uri}`, { kind: "system" });
    }
    await fs.mkdir(slot, { recursive: true });
    const tmp = tmpPath(target);
    await pool(keys, this.opts.concurrency ?? 8, async (k) => {
      const dest = path.join(tmp, ...k.slice(dirPrefix.length).split("/"));
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.writeFile(dest, await this.get(`s3://${bucket}/${k}`));
    });
    if (await pathExists(target)) {
      if (immutable) {
        await fs.rm(tmp, { recursive: true, force: true });
        return target;
      }
      await fs.rm(target, { recursive: true, force: true });
    }
    await fs.rename(tmp, target);
    return target;
  }

  /** Release the client's sockets. */
  async close(): Promise<void> {
    if (!this.sdkPromise || this.opts.client) return;
    (await this.sdkPromise).client.destroy();
  }

  /** The object's ETag, or `undefined` when there is no such object. */
  private async head(bucket: string, key: string): Promise<string | undefined> {
    if (key === "" || key.endsWith("/")) return undefined;
    const { sdk, client } = await this.load();
    try {
      const r = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }));
      return r.ETag ?? "";
    } catch (e) {
      if (isS3NotFound(e)) return undefined;
      throw this.translate(e, `s3://${bucket}/${key}`);
    }
  }

  /** Every key under `prefix` (all pages), or the first `max`. */
  private async listKeys(bucket: string, prefix: string, max = Number.POSITIVE_INFINITY): Promise<string[]> {
    const { sdk, client } = await this.load();
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.call(
        () =>
          client.send(
            new sdk.ListObjectsV2Command({
              Bucket: bucket,
              Prefix: prefix,
              ContinuationToken: token,
              MaxKeys: Number.isFinite(max) ? Math.min(1000, max - keys.length) : undefined,
            }),
          ),
        `s3://${bucket}/${prefix}`,
      );
      for (const o of r.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token && keys.length < max);
    return keys;
  }

  private async uploadFile(file: string, fullKey: string, size: number): Promise<void> {
    const { sdk, client } = await this.load();
    const threshold = this.opts.multipartThresholdBytes ?? 16 * MiB;
    if (size <= threshold) {
      const body = await fs.readFile(file);
      await this.call(
        () => client.send(new sdk.PutObjectCommand({ Bucket: this.bucket, Key: fullKey, Body: body })),
        fullKey,
      );
      return;
    }
    const partSize = this.opts.partSizeBytes ?? 8 * MiB;
    const created = await this.call(
      () => client.send(new sdk.CreateMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey })),
      fullKey,
    );
    const uploadId = created.UploadId!;
    const fh = await fs.open(file, "r");
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let offset = 0, n = 1; offset < size; offset += partSize, n++) {
        const buf = Buffer.alloc(Math.min(partSize, size - offset));
        await fh.read(buf, 0, buf.length, offset);
        const r = await this.call(
          () =>
            client.send(
              new sdk.UploadPartCommand({
                Bucket: this.bucket,
                Key: fullKey,
                UploadId: uploadId,
                PartNumber: n,
                Body: buf,
              }),
            ),
          fullKey,
        );
        parts.push({ ETag: r.ETag!, PartNumber: n });
      }
      await this.call(
        () =>
          client.send(
            new sdk.CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
            }),
          ),
        fullKey,
      );
    } catch (e) {
      // Leave no invisible, billed parts behind.
      await client
        .send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }))
        .catch(() => {});
      throw e;
    } finally {
      await fh.close();
    }
  }

  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.translate(e, what);
    }
  }

  private translate(e: unknown, uri: string): unknown {
    if (e instanceof TernError) return e;
    const name = errorName(e);
    if (isS3NotFound(e)) {
      return new TernError(ErrorCodes.BLOB_NOT_FOUND, `blob not found: ${uri}`, { kind: "system", cause: e });
    }
    if (name === "NoSuchBucket") {
      return new TernError(ErrorCodes.CONFIG, `S3 bucket ${this.bucket} does not exist (${uri})`, {
        hint: "create the bucket, or fix the blob store root (s3://bucket/prefix)",
        cause: e,
      });
    }
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return new TernError(
      ErrorCodes.SYSTEM,
      `S3 request for ${uri} failed: ${name ?? "Error"}: ${(e as Error).message}`,
      {
        kind: "system",
        hint: status === 403 ? "check the S3 credentials and the bucket policy" : undefined,
        details: { s3Error: name, status },
        cause: e,
      },
    );
  }
}

function toBuffer(data: Uint8Array | string): Buffer {
  return typeof data === "string"
    ? Buffer.from(data)
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

async function pathExists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readText(p: string): Promise<string | undefined> {
  try {
    return await fs.readFile(p, "utf8");
  } catch {
    return undefined;
  }
}
