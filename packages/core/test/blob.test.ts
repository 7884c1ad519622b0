import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { type BlobStore, digestPath, LocalBlobStore, putContent, TernError } from "@tern/core";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupTempDirs, tempDir } from "./helpers.js";

afterAll(cleanupTempDirs);

const text = async (store: BlobStore, uri: string) => Buffer.from(await store.get(uri)).toString("utf8");

async function rejection(p: Promise<unknown>): Promise<TernError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TernError);
    return e as TernError;
  }
  throw new Error("expected a rejection");
}

describe("LocalBlobStore", () => {
  it("puts, gets and checks blobs by file:// URI", async () => {
    const dir = tempDir();
    const store = new LocalBlobStore(path.join(dir, "blobs"));
    expect(store.root).toBe(pathToFileURL(path.join(dir, "blobs")).href);
    const uri = await store.put("a/b/c.txt", "hello");
    expect(uri).toBe(store.uri("a/b/c.txt"));
    expect(uri).toBe(pathToFileURL(path.join(dir, "blobs", "a", "b", "c.txt")).href);
    expect(await text(store, uri)).toBe("hello");
    expect(await store.exists(uri)).toBe(true);
    expect(await store.exists(store.uri("a/b/missing"))).toBe(false);
    await store.put("a/b/c.txt", new Uint8Array([104, 105]));
    expect(await text(store, uri)).toBe("hi");
    // No temp files are left behind by the write-then-rename.
    expect(fs.readdirSync(path.join(dir, "blobs", "a", "b"))).toEqual(["c.txt"]);
  });

  it("lists keys below a prefix, recursively and sorted", async () => {
    const store = new LocalBlobStore(tempDir());
    for (const k of ["x/2", "x/1", "x/sub/3", "y/4"]) await store.put(k, k);
    expect(await store.list("x")).toEqual(["x/1", "x/2", "x/sub/3"]);
    expect(await store.list("x/")).toEqual(["x/1", "x/2", "x/sub/3"]);
    expect(await store.list("x/1")).toEqual(["x/1"]);
    expect(await store.list("nope")).toEqual([]);
    expect(await store.list("")).toEqual(["x/1", "x/2", "x/sub/3", "y/4"]);
  });

  it("putPath uploads a file or a directory tree; localPath returns it", async () => {
    const src = tempDir();
    fs.writeFileSync(path.join(src, "one.txt"), "1");
    fs.mkdirSync(path.join(src, "tree", "deep"), { recursive: true });
    fs.writeFileSync(path.join(src, "tree", "a.txt"), "a");
    fs.writeFileSync(path.join(src, "tree", "deep", "b.txt"), "b");
    const store = new LocalBlobStore(tempDir());
    const f = await store.putPath(path.join(src, "one.txt"), "files/one.txt");
    expect(await text(store, f)).toBe("1");
    const d = await store.putPath(path.join(src, "tree"), "trees/t");
    expect(await store.list("trees/t")).toEqual(["trees/t/a.txt", "trees/t/deep/b.txt"]);
    const local = await store.localPath(d, tempDir());
    expect(fs.readFileSync(path.join(local, "deep", "b.txt"), "utf8")).toBe("b");
    expect(await store.localPath(f, tempDir())).toBe(
      path.join(store.root.replace("file://", ""), "files", "one.txt"),
    );
  });

  it("deletes files and trees; deleting twice is fine", async () => {
    const store = new LocalBlobStore(tempDir());
    const uri = await store.put("t/a", "x");
    await store.put("t/b", "y");
    await store.delete(uri);
    expect(await store.exists(uri)).toBe(false);
    await store.delete(uri);
    await store.delete(store.uri("t"));
    expect(await store.list("t")).toEqual([]);
  });

  it.each(["../outside", "a/../../outside", "/etc/passwd"])(
    "refuses a key that escapes the store: %s",
    async (key) => {
      const store = new LocalBlobStore(tempDir());
      const e = await rejection(store.put(key, "x"));
      expect(e.code).toBe("TERN_E_USAGE");
      expect(e.message).toBe(`blob key escapes the store: ${key}`);
      expect(() => store.uri(key)).toThrow(/escapes the store/);
      expect((await rejection(store.putPath(tempDir(), key))).code).toBe("TERN_E_USAGE");
      expect((await rejection(store.list(key))).code).toBe("TERN_E_USAGE");
    },
  );

  it("a key inside the store that merely contains dots is fine", async () => {
    const store = new LocalBlobStore(tempDir());
    expect(await text(store, await store.put("a/../b..c/.d", "ok"))).toBe("ok");
  });

  it("missing blobs and foreign URIs are TERN_E_BLOB_NOT_FOUND", async () => {
    const store = new LocalBlobStore(tempDir());
    const missing = await rejection(store.get(store.uri("nope")));
    expect(missing.code).toBe("TERN_E_BLOB_NOT_FOUND");
    expect(missing.kind).toBe("system");
    expect((await rejection(store.localPath(store.uri("nope"), tempDir()))).code).toBe(
      "TERN_E_BLOB_NOT_FOUND",
    );
    const foreign = await rejection(store.get("s3://bucket/key"));
    expect(foreign.code).toBe("TERN_E_BLOB_NOT_FOUND");
    expect(foreign.message).toBe("not a local blob URI: s3://bucket/key");
    expect(await store.exists("s3://bucket/key")).toBe(false);
  });
});

describe("putContent and digestPath", () => {
  it("putContent stores bytes under their digest, once", async () => {
    const inner = new LocalBlobStore(tempDir());
    let puts = 0;
    const store: BlobStore = Object.assign(Object.create(inner) as BlobStore, {
      put: (k: string, d: Uint8Array | string) => {
        puts++;
        return inner.put(k, d);
      },
    });
    const a = await putContent(store, "same bytes", "cas", ".txt");
    const b = await putContent(store, Buffer.from("same bytes"), "cas", ".txt");
    expect(b).toEqual(a);
    expect(puts).toBe(1);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.uri).toBe(store.uri(`cas/${a.digest.slice(7, 9)}/${a.digest.slice(7)}.txt`));
    expect(await text(store, a.uri)).toBe("same bytes");
    const c = await putContent(store, "other bytes");
    expect(c.digest).not.toBe(a.digest);
    expect(puts).toBe(2);
  });

  it("digestPath hashes file bytes, and a tree's names and bytes", async () => {
    const d = tempDir();
    fs.writeFileSync(path.join(d, "f1"), "abc");
    fs.writeFileSync(path.join(d, "f2"), "abc");
    fs.writeFileSync(path.join(d, "f3"), "abd");
    expect(await digestPath(path.join(d, "f1"))).toBe(await digestPath(path.join(d, "f2")));
    expect(await digestPath(path.join(d, "f1"))).not.toBe(await digestPath(path.join(d, "f3")));
    const tree = (files: Record<string, string>) => {
      const t = tempDir();
      for (const [n, c] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(t, n)), { recursive: true });
        fs.writeFileSync(path.join(t, n), c);
      }
      return digestPath(t);
    };
    const base = await tree({ "a.txt": "1", "sub/b.txt": "2" });
    expect(await tree({ "sub/b.txt": "2", "a.txt": "1" })).toBe(base);
    expect(await tree({ "a.txt": "1", "sub/c.txt": "2" })).not.toBe(base);
    expect(await tree({ "a.txt": "1", "sub/b.txt": "3" })).not.toBe(base);
  });
});
