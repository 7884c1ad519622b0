/**
 * A loopback fake of S3 for tests: the real `@aws-sdk/client-s3` talks to it
 * over 127.0.0.1 (PROTOCOLS §6).
 *
 * @example
 * import { startFakeS3 } from "@tern/testkit";
 * const s3 = await startFakeS3({ buckets: ["tern"] });
 * const client = new S3Client(s3.clientConfig());
 */
export { crc32Base64, decodeAwsChunked } from "./aws-chunked.js";
export type { RuleHandle as S3RuleHandle, S3FailSpec, S3Operation, S3RequestMatch } from "./faults.js";
export {
  FakeS3,
  type FakeS3Options,
  type S3ObjectInfo,
  type S3RecordedRequest,
  startFakeS3,
} from "./server.js";
