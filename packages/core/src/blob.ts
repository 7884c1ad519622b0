/**
 * Blob storage: where literals, files, directories, code bundles and checkpoints
 * live. The store keeps metadata only; values travel by URI. The local filesystem
 * implementation is the default; S3-compatible stores implement the same interface.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ErrorCodes, TernError } from "./errors.js";
import { tmpPath } from "./tmp-path.js";

export interface BlobStore {
  /** URI scheme and root, e.g. `file:///repo/.tern/blobs`. */
  readonly root: string;
  /** URI of a key inside this store. */
  uri(key: string): string;
  put(key: string, data: Uint8Array | string): Promise<string>;
  get(uri: string): Promise<Uint8Array>;
  exists(uri: string): Promise<boolean>;
  delete(uri: string): Promise<void>;
  /** Keys below a prefix, recursively. */
  list(prefix: string): Promise<string[]>;
  /** Upload a local file or directory tree under `key`; returns its URI. */
  putPath(localPath: string, key: string): Promise<string>;
  /**
   * A local path holding the blob's bytes (a file or a directory tree). A local
   * store returns the blob itself — treat it as read-only; a remote store downloads
   * into `cacheDir` first.
   */
  localPath(uri: string, cacheDir: string): Promise<string>;
}

/** Store bytes under their own digest; returns `{uri, digest}`. Idempotent. */
export async function putContent(
  store: BlobStore,
  data: Uint8Array | string,
  prefix = "cas",
  ext = "",
): Promise<{ uri: string; digest: string }> {
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  const key = `${prefix}/${digest.slice(7, 9)}/${digest.slice(7)}${ext}`;
  const uri = store.uri(key);
  if (!(await store.exists(uri))) await store.put(key, data);
  return { uri, digest };
}

/** Digest of a file or directory tree (names and bytes), for content-addressed uploads. */
export async function digestPath(localPath: string): Promise<string> {
  const h = createHash("sha256");
  const st = await fs.stat(localPath);
  if (st.isFile()) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(localPath)
        .on("data", (c) => h.update(c))
        .on("end", () => resolve())
        .on("error", reject);
    });
  } else {
    for (const rel of await walk(localPath)) {
      h.update(`${rel}\0`);
      h.update(await fs.readFile(path.join(localPath, rel)));
      h.update("\0");
    }
  }
  return h.digest("hex");
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

/** Blobs as files under a directory. URIs are `file://` URLs, readable by any local process. */
export class LocalBlobStore implements BlobStore {
  readonly root: string;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    this.root = pathToFileURL(this.dir).href;
  }

  uri(key: string): string {
    return pathToFileURL(this.keyPath(key)).href;
  }

  private keyPath(key: string): string {
    const p = path.resolve(this.dir, key);
    if (p !== this.dir && !p.startsWith(this.dir + path.sep)) {
      throw new TernError(ErrorCodes.USAGE, `blob key escapes the store: ${key}`);
    }
    return p;
  }

  private uriPath(uri: string): string {
    if (!uri.startsWith("file:")) {
      throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `not a local blob URI: ${uri}`, {
        hint: "configure a blob store that serves this URI scheme",
      });
    }
    return fileURLToPath(uri);
  }

  async put(key: string, data: Uint8Array | string): Promise<string> {
    const p = this.keyPath(key);
    await fs.mkdir(path.dirname(p), { recursive: true });
    // Write then rename, so readers never see half a blob.
    const tmp = tmpPath(p);
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, p);
    return pathToFileURL(p).href;
  }

  async get(uri: string): Promise<Uint8Array> {
    try {
      return await fs.readFile(this.uriPath(uri));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `blob not found: ${uri}`, { kind: "system" });
      }
      throw e;
    }
  }

  async exists(uri: string): Promise<boolean> {
    try {
      await fs.access(this.uriPath(uri));
      return true;
    } catch {
      return false;
    }
  }

  async delete(uri: string): Promise<void> {
    await fs.rm(this.uriPath(uri), { recursive: true, force: true });
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.keyPath(prefix);
    try {
      const st = await fs.stat(base);
      if (st.isFile()) return [prefix];
    } catch {
      return [];
    }
    return (await walk(base)).map((r) => (prefix ? `${prefix.replace(/\/$/, "")}/${r}` : r));
  }

  async putPath(localPath: string, key: string): Promise<string> {
    const dest = this.keyPath(key);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.cp(localPath, dest, { recursive: true, force: true });
    return pathToFileURL(dest).href;
  }

  async localPath(uri: string): Promise<string> {
    const p = this.uriPath(uri);
    try {
      await fs.access(p);
    } catch {
      throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `blob not found: ${uri}`, { kind: "system" });
    }
    return p;
  }
}
