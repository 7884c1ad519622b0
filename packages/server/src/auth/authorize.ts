/**
 * Authentication (which token) and authorization (may it do this here) for
 * every API route. A route declares the role it needs; the scope is the
 * project and domain it acts on. Without tokens (the loopback sandbox) every
 * request runs as an anonymous admin.
 */
import { ApiErrorCodes, apiError } from "../api/errors.js";
import { type Grant, type Principal, ROLE_RANK, type Role, type TokenRegistry } from "./tokens.js";

/** What a request acts on. `project`/`domain` left out mean "any". */
export interface Scope {
  project?: string;
  domain?: string;
}

/** The open sandbox's principal. */
export const ANONYMOUS: Principal = Object.freeze({
  name: "anonymous",
  grants: Object.freeze([{ project: "*", domain: "*", role: "admin" as const }]),
  anonymous: true,
});

const matches = (pattern: string, value: string | undefined) =>
  pattern === "*" || value === undefined || pattern === value;

function describeScope(scope: Scope): string {
  if (scope.project !== undefined && scope.domain !== undefined)
    return `project "${scope.project}", domain "${scope.domain}"`;
  if (scope.project !== undefined) return `project "${scope.project}"`;
  return "any project";
}

export class Authorizer {
  /** @param tokens the known tokens; `undefined` (or none) runs the open sandbox. */
  constructor(private readonly tokens?: TokenRegistry) {}

  /** True when requests need a token. */
  get enabled(): boolean {
    return (this.tokens?.size ?? 0) > 0;
  }

  /**
   * The principal of a request from its `Authorization` header. Throws 401
   * (`TERN_E_UNAUTHORIZED`) for a missing, malformed or unknown token; the
   * token itself never appears in the message.
   */
  authenticate(authorization: string | undefined): Principal {
    if (!this.enabled || !this.tokens) return ANONYMOUS;
    if (!authorization) {
      throw apiError(
        ApiErrorCodes.UNAUTHORIZED,
        "this server needs a token: send the header Authorization: Bearer <token>",
        {
          hint: "with the CLI: --token <token> or TERN_TOKEN=<token>",
        },
      );
    }
    const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(authorization);
    if (!m) {
      throw apiError(ApiErrorCodes.UNAUTHORIZED, "the Authorization header must be `Bearer <token>`", {
        hint: "with the CLI: --token <token> or TERN_TOKEN=<token>",
      });
    }
    const p = this.tokens.lookup(m[1]);
    if (!p) {
      throw apiError(ApiErrorCodes.UNAUTHORIZED, "the token is not known to this server", {
        hint: "check the token, or ask an admin to add it to the server's tokens",
      });
    }
    return p;
  }

  /** The strongest role `p` holds in a scope (a left-out part of the scope matches any grant's). */
  roleIn(p: Principal, scope: Scope): Role | undefined {
    let best: Role | undefined;
    for (const g of p.grants) {
      if (!matches(g.project, scope.project) || !matches(g.domain, scope.domain)) continue;
      if (!best || ROLE_RANK[g.role] > ROLE_RANK[best]) best = g.role;
    }
    return best;
  }

  /** The strongest role `p` holds exactly in project and domain (every grant must cover both). */
  roleAt(p: Principal, project: string, domain: string): Role | undefined {
    let best: Role | undefined;
    for (const g of p.grants) {
      if ((g.project !== "*" && g.project !== project) || (g.domain !== "*" && g.domain !== domain)) continue;
      if (!best || ROLE_RANK[g.role] > ROLE_RANK[best]) best = g.role;
    }
    return best;
  }

  /**
   * Throw 403 (`TERN_E_FORBIDDEN`) unless `p` holds at least `role` in the
   * scope; the message names the role, the scope and what the token has.
   */
  require(p: Principal, role: Role, scope: Scope): void {
    const have =
      scope.project !== undefined && scope.domain !== undefined
        ? this.roleAt(p, scope.project, scope.domain)
        : this.roleIn(p, scope);
    if (have && ROLE_RANK[have] >= ROLE_RANK[role]) return;
    throw apiError(
      ApiErrorCodes.FORBIDDEN,
      `token "${p.name}" needs role ${role} in ${describeScope(scope)}${have ? ` (it has ${have})` : " (it has no role there)"}`,
      {
        hint: `ask an admin for a grant { project, domain, role: "${role}" } covering ${describeScope(scope)}`,
        details: { needed: role, ...(have ? { has: have } : {}), ...scope },
      },
    );
  }

  /** True when `p` may read anything in `project`. */
  canSeeProject(p: Principal, project: string): boolean {
    return p.grants.some((g: Grant) => g.project === "*" || g.project === project);
  }
}
