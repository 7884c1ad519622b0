/**
 * S3BlobStore against the loopback fake, through the real AWS SDK.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalBlobStore, putContent, TernError } from "@tern/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeS3, startFakeS3 } from "../../testkit/src/fakes/s3/index.js";
import { openBlobStore, parseS3Uri, S3BlobStore } from "../src/blob/index.js";

let s3: FakeS3;
let store: S3BlobStore;
let tmp: string;

function fresh(
  root = "s3://tern/runs",
  extra: Partial<ConstructorParameters<typeof S3BlobStore>[0]> = {},
): S3BlobStore {
  const { endpoint, region, credentials } = s3.clientConfig();
  return new S3BlobStore({ root, endpoint, region, credentials, ...extra });
}

function writeTree(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
}

beforeAll(async () => {
  s3 = await startFakeS3({ buckets: ["tern"] });
  store = fresh();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tern-s3-blob-"));
});

afterEach(() => {
  s3.clearFaults();
  s3.clearRequests();
});

afterAll(async () => {
  await store.close();
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("S3BlobStore", () => {
  it("maps keys to s3:// URIs under its root prefix", () => {
    expect(store.root).toBe("s3://tern/runs");
    expect(store.uri("x1/n0/outputs.json")).toBe("s3://tern/runs/x1/n0/outputs.json");
    expect(fresh("s3://tern").uri("a")).toBe("s3://tern/a");
    expect(fresh("s3://tern/deep/prefix/").uri("a")).toBe("s3://tern/deep/prefix/a");
    expect(parseS3Uri("s3://b/k/with/slashes")).toEqual({ bucket: "b", key: "k/with/slashes" });
    expect(() => store.uri("../escape")).toThrow(TernError);
    expect(() => new S3BlobStore({ root: "gs://bucket" })).toThrow(/not an S3 URI/);
    expect(() => fresh("s3://tern", { partSizeBytes: 1024 })).toThrow(/5 MiB/);
  });

  it("puts, gets, checks existence and deletes", async () => {
    const uri = await store.put("x1/n0/outputs.json", JSON.stringify({ ok: true }));
    expect(uri).toBe("s3://tern/runs/x1/n0/outputs.json");
    expect(s3.getObject("tern", "runs/x1/n0/outputs.json")?.toString()).toBe('{"ok":true}');
    expect(Buffer.from(await store.get(uri)).toString()).toBe('{"ok":true}');
    await store.put("bytes.bin", new Uint8Array([0, 1, 2, 255]));
    expect([...(await store.get(store.uri("bytes.bin")))]).toEqual([0, 1, 2, 255]);

    expect(await store.exists(uri)).toBe(true);
    expect(await store.exists(store.uri("x1/n0"))).toBe(true); // a "directory"
    expect(await store.exists(store.uri("x1/n"))).toBe(false); // a name prefix is not a directory
    expect(await store.exists(store.uri("missing.json"))).toBe(false);
    // HEAD on a missing key answers 404 without a body: the SDK's NotFound, not NoSuchKey.
    expect(s3.requests("HeadObject").some((r) => r.status === 404)).toBe(true);

    await store.delete(uri);
    expect(await store.exists(uri)).toBe(false);
    await store.delete(uri); // deleting again is fine
  });

  it("reports a missing blob as TERN_E_BLOB_NOT_FOUND and a missing bucket as a config error", async () => {
    const err = await store.get(store.uri("nope.json")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TernError);
    expect((err as TernError).code).toBe("TERN_E_BLOB_NOT_FOUND");
    expect((err as TernError).kind).toBe("system");
    expect((err as TernError).message).toContain("s3://tern/runs/nope.json");
    await expect(store.localPath(store.uri("nope"), tmp)).rejects.toMatchObject({
      code: "TERN_E_BLOB_NOT_FOUND",
    });
    const noBucket = fresh("s3://no-such-bucket");
    await expect(noBucket.put("k", "v")).rejects.toMatchObject({ code: "TERN_E_CONFIG" });
    await noBucket.close();
    await expect(store.get("file:///etc/passwd")).rejects.toMatchObject({ code: "TERN_E_BLOB_NOT_FOUND" });
  });

  it("lists keys below a prefix across pages, relative to the root", async () => {
    const s = fresh("s3://tern/listing");
    const keys = Array.from({ length: 1203 }, (_, i) => `many/${String(i).padStart(4, "0")}`);
    for (const k of keys) s3.putObject("tern", `listing/${k}`, "x");
    s3.putObject("tern", "listing/many-sibling", "x");
    s3.putObject("tern", "listing/one", "x");
    const listed = await s.list("many");
    expect(listed).toEqual(keys);
    expect(s3.requests("ListObjectsV2").length).toBeGreaterThanOrEqual(2); // paged
    expect(await s.list("many/")).toEqual(keys);
    expect(await s.list("one")).toEqual(["one"]);
    expect(await s.list("absent")).toEqual([]);
    expect((await s.list("")).length).toBe(1205);
    await s.close();
  });

  it("uploads a directory tree with putPath and brings it back with localPath", async () => {
    const src = path.join(tmp, "model");
    writeTree(src, {
      "weights.bin": Buffer.alloc(4096, 9),
      "config/params.json": '{"lr":0.1}',
      README: "hi",
    });
    const uri = await store.putPath(src, "x1/n2/model");
    expect(uri).toBe("s3://tern/runs/x1/n2/model");
    expect(
      s3
        .objects("tern")
        .map((o) => o.key)
        .filter((k) => k.startsWith("runs/x1/n2/")),
    ).toEqual([
      "runs/x1/n2/model/README",
      "runs/x1/n2/model/config/params.json",
      "runs/x1/n2/model/weights.bin",
    ]);
    expect(await store.list("x1/n2/model")).toEqual([
      "x1/n2/model/README",
      "x1/n2/model/config/params.json",
      "x1/n2/model/weights.bin",
    ]);

    const cache = path.join(tmp, "cache-dir");
    const local = await store.localPath(uri, cache);
    expect(path.basename(local)).toBe("model");
    expect(local.startsWith(cache)).toBe(true);
    expect(fs.readFileSync(path.join(local, "config", "params.json"), "utf8")).toBe('{"lr":0.1}');
    expect(fs.readFileSync(path.join(local, "weights.bin")).equals(Buffer.alloc(4096, 9))).toBe(true);

    // Deleting a directory URI removes everything below it.
    await store.delete(uri);
    expect(await store.exists(uri)).toBe(false);
    expect(s3.objects("tern").filter((o) => o.key.startsWith("runs/x1/n2/"))).toEqual([]);
  });

  it("puts a single file with putPath and caches localPath downloads by ETag or content address", async () => {
    const file = path.join(tmp, "data.csv");
    fs.writeFileSync(file, "a,b\n1,2\n");
    const uri = await store.putPath(file, "inputs/data.csv");
    const cache = path.join(tmp, "cache-file");
    const p1 = await store.localPath(uri, cache);
    expect(path.basename(p1)).toBe("data.csv");
    expect(fs.readFileSync(p1, "utf8")).toBe("a,b\n1,2\n");
    s3.clearRequests();
    // Unchanged: a HEAD, no GET.
    expect(await store.localPath(uri, cache)).toBe(p1);
    expect(s3.requests("GetObject")).toHaveLength(0);
    expect(s3.requests("HeadObject")).toHaveLength(1);
    // Changed behind our back: the new ETag triggers a download.
    s3.putObject("tern", "runs/inputs/data.csv", "a,b\n3,4\n");
    expect(fs.readFileSync(await store.localPath(uri, cache), "utf8")).toBe("a,b\n3,4\n");

    // Content-addressed keys never change: the second call makes no request at all.
    const { uri: cas } = await putContent(store, "bundle code");
    const c1 = await store.localPath(cas, cache);
    s3.clearRequests();
    expect(await store.localPath(cas, cache)).toBe(c1);
    expect(s3.requests()).toHaveLength(0);
    expect(fs.readFileSync(c1, "utf8")).toBe("bundle code");
  });

  it("uploads large files in parts, and aborts the upload when a part fails for good", async () => {
    const MiB = 1024 * 1024;
    const big = path.join(tmp, "big.bin");
    const data = Buffer.alloc(11 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i);
    fs.writeFileSync(big, data);
    const s = fresh("s3://tern/mp", { multipartThresholdBytes: 6 * MiB, partSizeBytes: 5 * MiB });
    const uri = await s.putPath(big, "big.bin");
    expect(s3.requests("UploadPart").map((r) => r.bodyBytes)).toEqual([5 * MiB, 5 * MiB, 1 * MiB]);
    expect(s3.objects("tern").find((o) => o.key === "mp/big.bin")?.etag).toMatch(/-3"$/);
    expect(Buffer.from(await s.get(uri)).equals(data)).toBe(true);

    s3.failNext("UploadPart", { status: 500, count: 10 });
    await expect(s.putPath(big, "broken.bin")).rejects.toMatchObject({ code: "TERN_E_SYSTEM" });
    expect(s3.requests("AbortMultipartUpload")).toHaveLength(1);
    expect(s3.pendingUploads()).toEqual([]);
    expect(s3.getObject("tern", "mp/broken.bin")).toBeUndefined();
    await s.close();
  });

  it("retries a 503 SlowDown transparently", async () => {
    s3.failNext("PutObject", { status: 503, code: "SlowDown", count: 2 });
    const uri = await store.put("slow.txt", "eventually");
    expect(s3.requests("PutObject").map((r) => r.status)).toEqual([503, 503, 200]);
    expect(Buffer.from(await store.get(uri)).toString()).toBe("eventually");

    // With the budget spent the error surfaces, named.
    const tight = fresh("s3://tern/runs", { maxAttempts: 1 });
    s3.failNext("GetObject", { status: 503 });
    const err = (await tight.get(uri).catch((e: unknown) => e)) as TernError;
    expect(err.code).toBe("TERN_E_SYSTEM");
    expect(err.details).toMatchObject({ s3Error: "SlowDown", status: 503 });
    await tight.close();
  });

  it("takes the endpoint from AWS_ENDPOINT_URL_S3 when none is given", async () => {
    const saved = { ...process.env };
    try {
      process.env.AWS_ENDPOINT_URL_S3 = s3.endpoint;
      process.env.AWS_ACCESS_KEY_ID = "env-key";
      process.env.AWS_SECRET_ACCESS_KEY = "env-secret";
      process.env.AWS_REGION = "eu-west-1";
      const s = new S3BlobStore({ root: "s3://tern/env" });
      await s.put("k.txt", "v");
      expect(s3.getObject("tern", "env/k.txt")?.toString()).toBe("v");
      const auth = String(s3.requests("PutObject").at(-1)?.headers.authorization);
      expect(auth).toContain("Credential=env-key/");
      expect(auth).toContain("/eu-west-1/s3/");
      await s.close();
    } finally {
      process.env = saved;
    }
  });
});

describe("openBlobStore", () => {
  it("picks the store from the root URI", () => {
    expect(openBlobStore("s3://tern/x")).toBeInstanceOf(S3BlobStore);
    expect(openBlobStore(path.join(tmp, "blobs"))).toBeInstanceOf(LocalBlobStore);
    expect(openBlobStore(`file://${path.join(tmp, "blobs")}`)).toBeInstanceOf(LocalBlobStore);
    expect(() => openBlobStore("gs://bucket")).toThrow(/unsupported blob store root/);
  });
});
