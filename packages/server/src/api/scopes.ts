/**
 * Which projects and domains exist, for the 404s of scoped routes. Projects
 * are never deleted and domains are fixed at start-up, so both are cached once
 * seen; a miss asks the store (another replica may have created the project).
 */
import { ErrorCodes, TernError } from "@tern/core";
import type { Store } from "../store/store.js";

export class Scopes {
  private readonly projects = new Set<string>();
  private domains?: Set<string>;

  constructor(private readonly store: Store) {}

  /** The domains, in display order. */
  async domainList(): Promise<string[]> {
    const list = await this.store.projects.domains();
    this.domains = new Set(list);
    return list;
  }

  /** Throw `TERN_E_NOT_FOUND` unless the domain exists. */
  async checkDomain(domain: string): Promise<void> {
    if (this.domains?.has(domain)) return;
    const list = await this.domainList();
    if (!this.domains?.has(domain)) {
      throw new TernError(ErrorCodes.NOT_FOUND, `domain "${domain}" does not exist`, {
        hint: `domains are: ${list.join(", ")}`,
        details: { domain },
      });
    }
  }

  /** Throw `TERN_E_NOT_FOUND` unless the project exists. */
  async checkProject(project: string): Promise<void> {
    if (this.projects.has(project)) return;
    if (await this.store.projects.get(project)) {
      this.projects.add(project);
      return;
    }
    throw new TernError(ErrorCodes.NOT_FOUND, `project "${project}" does not exist`, {
      hint: "list projects with GET /api/v1/projects; an admin creates one with POST /api/v1/projects (or registers into it)",
      details: { project },
    });
  }

  /** Both checks. */
  async check(project: string, domain: string): Promise<void> {
    await this.checkDomain(domain);
    await this.checkProject(project);
  }

  /** Create the project unless it exists. */
  async ensureProject(project: string, description?: string): Promise<void> {
    if (this.projects.has(project)) return;
    await this.store.projects.ensure(project, description);
    this.projects.add(project);
  }

  /** Note a project created elsewhere in this process. */
  remember(project: string): void {
    this.projects.add(project);
  }
}
