/**
 * Blob stores the server can use: the local directory store from core, and S3.
 *
 * @example
 * const blobs = openBlobStore(process.env.TERN_BLOB_ROOT ?? ".tern/blobs");
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type BlobStore, ErrorCodes, LocalBlobStore, TernError } from "@tern/core";
import { S3BlobStore, type S3BlobStoreOptions } from "./s3.js";

export { isS3NotFound, parseS3Uri, S3BlobStore, type S3BlobStoreOptions } from "./s3.js";

/** A blob store for a root: `s3://bucket/prefix`, `file:///dir` or a directory path. */
export function openBlobStore(root: string, s3: Omit<S3BlobStoreOptions, "root"> = {}): BlobStore {
  if (root.startsWith("s3://")) return new S3BlobStore({ ...s3, root });
  if (root.startsWith("file://")) return new LocalBlobStore(fileURLToPath(root));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(root)?.[1];
  if (scheme) {
    throw new TernError(ErrorCodes.CONFIG, `unsupported blob store root "${root}"`, {
      hint: "use s3://bucket/prefix, file:///path or a directory path",
    });
  }
  return new LocalBlobStore(root);
}
