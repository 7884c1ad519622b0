/**
 * The loopback S3 fake, driven by the real @aws-sdk/client-s3 (PROTOCOLS §6).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { crc32Base64, decodeAwsChunked, type FakeS3, startFakeS3 } from "../../testkit/src/fakes/s3/index.js";

let s3: FakeS3;
let client: S3Client;
let tmp: string;

beforeAll(async () => {
  s3 = await startFakeS3({ buckets: ["tern"], minPartSize: 1024 });
  client = new S3Client({ ...s3.clientConfig(), maxAttempts: 3 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tern-s3-fake-"));
});

afterEach(() => {
  s3.clearFaults();
  s3.clearRequests();
});

afterAll(async () => {
  client.destroy();
  await s3.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function errorOf(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    return {
      name: (e as Error).name,
      status: (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode,
    };
  }
  throw new Error("expected the call to fail");
}

describe("fake S3", () => {
  it("listens on 127.0.0.1 and stores what PutObject sends (checksum verified)", async () => {
    expect(s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await client.send(
      new PutObjectCommand({ Bucket: "tern", Key: "a/b c.txt", Body: "hello", ContentType: "text/plain" }),
    );
    expect(r.ETag).toBe('"5d41402abc4b2a76b9719d911017c592"');
    expect(s3.getObject("tern", "a/b c.txt")?.toString()).toBe("hello");
    const put = s3.requests("PutObject")[0];
    expect(put.headers["x-amz-checksum-crc32"]).toBe(crc32Base64(Buffer.from("hello")));
    expect(s3.objects("tern")).toMatchObject([{ key: "a/b c.txt", size: 5, contentType: "text/plain" }]);
  });

  it("decodes aws-chunked stream uploads and rejects a corrupted trailer checksum", async () => {
    const file = path.join(tmp, "stream.bin");
    const data = Buffer.alloc(300_000, 7);
    data.write("tern", 1000);
    fs.writeFileSync(file, data);
    await client.send(
      new PutObjectCommand({
        Bucket: "tern",
        Key: "stream.bin",
        Body: fs.createReadStream(file),
        ContentLength: data.length,
      }),
    );
    const req = s3.requests("PutObject").at(-1)!;
    expect(req.headers["content-encoding"]).toContain("aws-chunked");
    expect(req.headers["x-amz-content-sha256"]).toBe("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    expect(req.bodyBytes).toBe(data.length);
    expect(s3.getObject("tern", "stream.bin")?.equals(data)).toBe(true);

    const framed = Buffer.from(
      `5\r\nhello\r\n0\r\nx-amz-checksum-crc32:${crc32Base64(Buffer.from("hellO"))}\r\n\r\n`,
    );
    const decoded = decodeAwsChunked(framed);
    expect(decoded.payload.toString()).toBe("hello");
    const res = await fetch(`${s3.endpoint}/tern/bad.bin`, {
      method: "PUT",
      headers: {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": "5",
        "x-amz-trailer": "x-amz-checksum-crc32",
      },
      body: framed,
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>BadDigest</Code>");
    expect(s3.getObject("tern", "bad.bin")).toBeUndefined();
  });

  it("serves ranges, HEAD, and the two not-found spellings", async () => {
    await client.send(new PutObjectCommand({ Bucket: "tern", Key: "r.txt", Body: "0123456789" }));
    const part = await client.send(
      new GetObjectCommand({ Bucket: "tern", Key: "r.txt", Range: "bytes=2-5" }),
    );
    expect(part.ContentRange).toBe("bytes 2-5/10");
    expect(await part.Body!.transformToString()).toBe("2345");
    const suffix = await client.send(
      new GetObjectCommand({ Bucket: "tern", Key: "r.txt", Range: "bytes=-3" }),
    );
    expect(await suffix.Body!.transformToString()).toBe("789");
    expect(
      (await errorOf(client.send(new GetObjectCommand({ Bucket: "tern", Key: "r.txt", Range: "bytes=20-" }))))
        .status,
    ).toBe(416);

    const head = await client.send(new HeadObjectCommand({ Bucket: "tern", Key: "r.txt" }));
    expect(head.ContentLength).toBe(10);
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}"$/);

    expect(await errorOf(client.send(new GetObjectCommand({ Bucket: "tern", Key: "missing" })))).toEqual({
      name: "NoSuchKey",
      status: 404,
    });
    expect(await errorOf(client.send(new HeadObjectCommand({ Bucket: "tern", Key: "missing" })))).toEqual({
      name: "NotFound",
      status: 404,
    });
    expect((await errorOf(client.send(new GetObjectCommand({ Bucket: "nope", Key: "k" })))).name).toBe(
      "NoSuchBucket",
    );
    // DeleteObject of a missing key is still a success.
    await client.send(new DeleteObjectCommand({ Bucket: "tern", Key: "missing" }));
    expect(s3.requests("DeleteObject").at(-1)?.status).toBe(204);
  });

  it("lists with prefix, delimiter, max-keys and continuation tokens", async () => {
    for (const k of ["l/a.txt", "l/b/1", "l/b/2", "l/c/1", "l/d.txt", "l/e.txt", "other"])
      s3.putObject("tern", k, k);
    const r1 = await client.send(
      new ListObjectsV2Command({ Bucket: "tern", Prefix: "l/", Delimiter: "/", MaxKeys: 3 }),
    );
    expect(r1.Contents?.map((c) => c.Key)).toEqual(["l/a.txt"]);
    expect(r1.CommonPrefixes?.map((c) => c.Prefix)).toEqual(["l/b/", "l/c/"]);
    expect(r1.KeyCount).toBe(3);
    expect(r1.IsTruncated).toBe(true);
    const r2 = await client.send(
      new ListObjectsV2Command({
        Bucket: "tern",
        Prefix: "l/",
        Delimiter: "/",
        MaxKeys: 3,
        ContinuationToken: r1.NextContinuationToken,
      }),
    );
    expect(r2.Contents?.map((c) => c.Key)).toEqual(["l/d.txt", "l/e.txt"]);
    expect(r2.IsTruncated).toBe(false);

    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await client.send(
        new ListObjectsV2Command({ Bucket: "tern", Prefix: "l/", MaxKeys: 2, ContinuationToken: token }),
      );
      keys.push(...(r.Contents ?? []).map((c) => c.Key!));
      token = r.NextContinuationToken;
    } while (token);
    expect(keys).toEqual(["l/a.txt", "l/b/1", "l/b/2", "l/c/1", "l/d.txt", "l/e.txt"]);
    const after = await client.send(
      new ListObjectsV2Command({ Bucket: "tern", Prefix: "l/", StartAfter: "l/c/1" }),
    );
    expect(after.Contents?.map((c) => c.Key)).toEqual(["l/d.txt", "l/e.txt"]);
    const list = s3.requests("ListObjectsV2")[0];
    expect(list.path).toBe("/tern/");
    expect(list.query["list-type"]).toBe("2");

    const del = await client.send(
      new DeleteObjectsCommand({ Bucket: "tern", Delete: { Objects: [{ Key: "l/b/1" }, { Key: "l/b/2" }] } }),
    );
    expect(del.Deleted?.map((d) => d.Key)).toEqual(["l/b/1", "l/b/2"]);
    expect(s3.getObject("tern", "l/b/1")).toBeUndefined();
  });

  it("assembles multipart uploads and enforces part rules", async () => {
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: "tern", Key: "mp.bin" }),
    );
    const p1 = Buffer.alloc(2048, 1);
    const p2 = Buffer.alloc(10, 2);
    const e1 = (
      await client.send(
        new UploadPartCommand({ Bucket: "tern", Key: "mp.bin", UploadId, PartNumber: 1, Body: p1 }),
      )
    ).ETag!;
    const e2 = (
      await client.send(
        new UploadPartCommand({ Bucket: "tern", Key: "mp.bin", UploadId, PartNumber: 2, Body: p2 }),
      )
    ).ETag!;
    expect(s3.pendingUploads()).toMatchObject([{ key: "mp.bin", parts: 2 }]);
    const wrong = client.send(
      new CompleteMultipartUploadCommand({
        Bucket: "tern",
        Key: "mp.bin",
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 2, ETag: e2 },
            { PartNumber: 1, ETag: e1 },
          ],
        },
      }),
    );
    expect((await errorOf(wrong)).name).toBe("InvalidPartOrder");
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: "tern",
        Key: "mp.bin",
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: e1 },
            { PartNumber: 2, ETag: e2 },
          ],
        },
      }),
    );
    expect(done.ETag).toMatch(/-2"$/);
    expect(s3.getObject("tern", "mp.bin")?.equals(Buffer.concat([p1, p2]))).toBe(true);
    expect(s3.pendingUploads()).toEqual([]);

    // A small part that is not the last one is refused.
    const second = await client.send(new CreateMultipartUploadCommand({ Bucket: "tern", Key: "small.bin" }));
    const u = second.UploadId;
    const s1 = (
      await client.send(
        new UploadPartCommand({ Bucket: "tern", Key: "small.bin", UploadId: u, PartNumber: 1, Body: p2 }),
      )
    ).ETag!;
    const s2 = (
      await client.send(
        new UploadPartCommand({ Bucket: "tern", Key: "small.bin", UploadId: u, PartNumber: 2, Body: p2 }),
      )
    ).ETag!;
    const tooSmall = client.send(
      new CompleteMultipartUploadCommand({
        Bucket: "tern",
        Key: "small.bin",
        UploadId: u,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: s1 },
            { PartNumber: 2, ETag: s2 },
          ],
        },
      }),
    );
    expect((await errorOf(tooSmall)).name).toBe("EntityTooSmall");
    await client.send(new AbortMultipartUploadCommand({ Bucket: "tern", Key: "small.bin", UploadId: u }));
    expect(s3.pendingUploads()).toEqual([]);
    const gone = client.send(
      new UploadPartCommand({ Bucket: "tern", Key: "small.bin", UploadId: u, PartNumber: 3, Body: p2 }),
    );
    expect((await errorOf(gone)).name).toBe("NoSuchUpload");
  });

  it("injects failures: a 503 SlowDown is retried by the SDK, an exhausted budget surfaces the code", async () => {
    s3.failNext("PutObject", { status: 503 });
    await client.send(new PutObjectCommand({ Bucket: "tern", Key: "retried", Body: "x" }));
    expect(s3.requests("PutObject").map((r) => r.status)).toEqual([503, 200]);

    s3.failNext({ op: "GetObject", key: "retried" }, { status: 500, count: 3 });
    const err = await errorOf(client.send(new GetObjectCommand({ Bucket: "tern", Key: "retried" })));
    expect(err).toEqual({ name: "InternalError", status: 500 });
    expect(s3.requests("GetObject")).toHaveLength(3);

    s3.failNext("*", { status: 403, code: "AccessDenied", count: 1 });
    expect(
      (await errorOf(client.send(new HeadObjectCommand({ Bucket: "tern", Key: "retried" })))).status,
    ).toBe(403);
  });

  it("can cut a response body short", async () => {
    s3.putObject("tern", "big.bin", Buffer.alloc(100_000, 3));
    s3.truncateNext("GetObject");
    const read = async () => {
      const r = await client.send(new GetObjectCommand({ Bucket: "tern", Key: "big.bin" }));
      return r.Body!.transformToByteArray();
    };
    await expect(read()).rejects.toThrow();
    expect((await read()).length).toBe(100_000);
  });

  it("returns 501 for operations it does not implement", async () => {
    const res = await fetch(`${s3.endpoint}/tern/k?tagging`, { method: "GET" });
    expect(res.status).toBe(501);
    expect(await res.text()).toContain("NotImplemented");
  });
});
