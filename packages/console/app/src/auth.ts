/**
 * The session's token (kept in sessionStorage, sent as `Authorization: Bearer`)
 * and what it may do where: the grants from `GET /api/v1/whoami`, checked the
 * way the server checks them.
 */
import { signal } from "./state.js";

const KEY = "tern.token";

export type Role = "viewer" | "runner" | "admin";
const RANK: Record<Role, number> = { viewer: 1, runner: 2, admin: 3 };

export interface Whoami {
  name: string;
  anonymous: boolean;
  authRequired: boolean;
  grants: { project: string; domain: string; role: Role }[];
}

/** Set when the server refused the token (or needs one): the message to show. */
export const tokenPrompt = signal<string | undefined>(undefined);
export const whoami = signal<Whoami | undefined>(undefined);

export function getToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function setToken(token: string | undefined): void {
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

export function tokenRejected(message: string): void {
  if (tokenPrompt.value === undefined) tokenPrompt.set(message);
}

/** The strongest role held exactly in project × domain. */
export function roleAt(project: string, domain: string): Role | undefined {
  const w = whoami.value;
  if (!w) return undefined;
  let best: Role | undefined;
  for (const g of w.grants) {
    if ((g.project !== "*" && g.project !== project) || (g.domain !== "*" && g.domain !== domain)) continue;
    if (!best || RANK[g.role] > RANK[best]) best = g.role;
  }
  return best;
}

/** True when the token holds at least `role` in project × domain. */
export function can(role: Role, project: string, domain: string): boolean {
  const have = roleAt(project, domain);
  return !!have && RANK[have] >= RANK[role];
}
