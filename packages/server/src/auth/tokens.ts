/**
 * API tokens: who may call the server, with which role, in which projects and
 * domains. Tokens come from `tern.config.ts` (`tokens: [...]`) or a JSON file
 * (`tern serve --tokens tokens.json`). Plain tokens are hashed as they are
 * loaded and never kept, logged or returned; a config may hold only the
 * SHA-256 (`tokenSha256`) so the file itself holds no secret.
 *
 * @example
 * // tokens.json
 * { "tokens": [
 *   { "name": "ci", "tokenSha256": "9f86d0…", "grants": [{ "project": "*", "domain": "development", "role": "runner" }] },
 *   { "name": "ops", "token": "a-long-random-secret", "grants": [{ "project": "*", "domain": "*", "role": "admin" }] }
 * ] }
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { ErrorCodes, TernError } from "@tern/core";

/** Roles, weakest first: each includes what the ones before it may do. */
export const ROLES = ["viewer", "runner", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** `viewer` reads; `runner` also launches, terminates, relaunches, recovers and signals; `admin` also registers and manages. */
export const ROLE_RANK: Record<Role, number> = { viewer: 1, runner: 2, admin: 3 };

/** A role in the projects and domains it names (`*` for any). */
export interface Grant {
  project: string;
  domain: string;
  role: Role;
}

/** A token as configured: the secret itself or its SHA-256, a name for logs and audit, and grants. */
export interface TokenSpec {
  /** Shown in logs and recorded as who set a signal; never secret. */
  name: string;
  /** The secret (at least 16 characters). Give this or `tokenSha256`. */
  token?: string;
  /** Hex SHA-256 of the secret. */
  tokenSha256?: string;
  grants: Grant[];
}

/** Who a request runs as. */
export interface Principal {
  name: string;
  grants: readonly Grant[];
  /** The open sandbox (no tokens configured, loopback only): every role everywhere. */
  anonymous: boolean;
}

/** Shortest accepted plain token: anything shorter is guessable. */
export const MIN_TOKEN_LENGTH = 16;

function configError(message: string, source: string, hint?: string): TernError {
  return new TernError(ErrorCodes.CONFIG, `${source}: ${message}`, {
    hint:
      hint ??
      'tokens look like { "name": "ci", "token": "<secret>", "grants": [{ "project": "*", "domain": "development", "role": "runner" }] }',
  });
}

/** Hex SHA-256 of a token. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Check a tokens list from a config file and return it with every plain token
 * replaced by its hash. Throws `TERN_E_CONFIG` naming the entry at fault.
 */
export function parseTokens(value: unknown, source: string): TokenSpec[] {
  const list = Array.isArray(value) ? value : (value as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw configError("expected a list of tokens (or { tokens: [...] })", source);
  const names = new Set<string>();
  const hashes = new Set<string>();
  return list.map((raw, i) => {
    const at = `tokens[${i}]`;
    if (typeof raw !== "object" || raw === null) throw configError(`${at} is not an object`, source);
    const t = raw as Record<string, unknown>;
    if (typeof t.name !== "string" || !/^[\w.@:-]{1,100}$/.test(t.name)) {
      throw configError(`${at}.name must be 1-100 letters, digits or _ . @ : -`, source);
    }
    if (names.has(t.name))
      throw configError(`two tokens are named "${t.name}"`, source, "give each token its own name");
    names.add(t.name);
    let sha: string;
    if (typeof t.token === "string") {
      if (t.tokenSha256 !== undefined)
        throw configError(`${at} (${t.name}) gives both token and tokenSha256`, source, "keep one of them");
      if (t.token.length < MIN_TOKEN_LENGTH) {
        throw configError(
          `${at} (${t.name}): the token is shorter than ${MIN_TOKEN_LENGTH} characters`,
          source,
          "use a long random secret, e.g. `openssl rand -hex 24`",
        );
      }
      sha = hashToken(t.token);
    } else if (typeof t.tokenSha256 === "string" && /^[0-9a-fA-F]{64}$/.test(t.tokenSha256)) {
      sha = t.tokenSha256.toLowerCase();
    } else {
      throw configError(`${at} (${t.name}) needs token or a 64-hex-digit tokenSha256`, source);
    }
    if (hashes.has(sha))
      throw configError(
        `${at} (${t.name}) has the same secret as another token`,
        source,
        "give every token its own secret",
      );
    hashes.add(sha);
    if (!Array.isArray(t.grants) || t.grants.length === 0)
      throw configError(`${at} (${t.name}) needs at least one grant`, source);
    const grants = t.grants.map((g, j): Grant => {
      const gr = (g ?? {}) as Record<string, unknown>;
      const where = `${at}.grants[${j}]`;
      if (typeof gr.project !== "string" || gr.project === "")
        throw configError(`${where}.project must be a project name or "*"`, source);
      if (typeof gr.domain !== "string" || gr.domain === "")
        throw configError(`${where}.domain must be a domain name or "*"`, source);
      if (typeof gr.role !== "string" || !(ROLES as readonly string[]).includes(gr.role)) {
        throw configError(`${where}.role must be one of ${ROLES.join(", ")}`, source);
      }
      return { project: gr.project, domain: gr.domain, role: gr.role as Role };
    });
    return { name: t.name, tokenSha256: sha, grants };
  });
}

/** Read a tokens JSON file (`[...]` or `{ "tokens": [...] }`). */
export function loadTokensFile(file: string): TokenSpec[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new TernError(
      ErrorCodes.CONFIG,
      `cannot read tokens file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      {
        hint: "give the path of a JSON file with a list of tokens",
      },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TernError(ErrorCodes.CONFIG, `tokens file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseTokens(parsed, file);
}

/** Known tokens, by hash. */
export class TokenRegistry {
  private readonly byHash = new Map<string, Principal>();

  constructor(specs: readonly TokenSpec[]) {
    for (const s of specs) {
      const sha = s.tokenSha256 ?? (s.token !== undefined ? hashToken(s.token) : undefined);
      if (!sha) continue;
      this.byHash.set(sha.toLowerCase(), { name: s.name, grants: s.grants, anonymous: false });
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The principal a presented token belongs to, or `undefined`. */
  lookup(token: string): Principal | undefined {
    // Looked up by hash: the secret itself is never compared, so its bytes leak no timing.
    return this.byHash.get(hashToken(token));
  }
}
