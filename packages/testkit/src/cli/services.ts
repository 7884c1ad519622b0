/**
 * The services `tern-fake` can start. Adding a fake (Ray, S3, Databricks…) is one more entry in
 * {@link SERVICES}: its options, and a `start` that returns how to connect and how to stop.
 */
import type { ParseArgsConfig } from "node:util";
import { kubernetesService } from "./kubernetes.js";
import { rayService } from "./ray.js";

/** A running fake, as the command sees it. */
export interface RunningService {
  /** Human-readable connection instructions, printed once the fake is up. */
  describe(): string;
  close(): Promise<void>;
}

export interface FakeService {
  name: string;
  /** One line for `tern-fake --help`. */
  summary: string;
  /** Option lines for `tern-fake <service> --help`. */
  usage: string[];
  options: NonNullable<ParseArgsConfig["options"]>;
  start(values: Record<string, string | boolean | undefined>): Promise<RunningService>;
}

export const SERVICES: FakeService[] = [kubernetesService, rayService];

/** A non-negative integer option, or `fallback` when it is not given. */
export function int(value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}
