/**
 * Projects, and the domains every project has (development, staging,
 * production by default).
 */
import { orUndefined, type StoreContext } from "./codec.js";
import { isUniqueViolation, StoreErrorCodes, storeError } from "./errors.js";
import type { ProjectsTable } from "./schema.js";

export interface ProjectRecord {
  name: string;
  description?: string;
  createdAt: number;
}

function toRecord(row: ProjectsTable): ProjectRecord {
  const r: ProjectRecord = { name: row.name, createdAt: Number(row.created_at) };
  const description = orUndefined(row.description);
  if (description !== undefined) r.description = description;
  return r;
}

export class ProjectRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Create a project; throws `TERN_E_CONFLICT` if the name is taken. */
  async create(name: string, description?: string): Promise<ProjectRecord> {
    const row: ProjectsTable = { name, description: description ?? null, created_at: this.ctx.now() };
    try {
      await this.ctx.db.insertInto("projects").values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e)) {
        throw storeError(StoreErrorCodes.CONFLICT, `project ${name} already exists`, {
          details: { project: name },
        });
      }
      throw e;
    }
    return toRecord(row);
  }

  /** Create the project unless it exists. Returns it and whether this call created it. */
  async ensure(name: string, description?: string): Promise<{ project: ProjectRecord; created: boolean }> {
    const r = await this.ctx.db
      .insertInto("projects")
      .values({ name, description: description ?? null, created_at: this.ctx.now() })
      .onConflict((oc) => oc.column("name").doNothing())
      .executeTakeFirst();
    const project = await this.get(name);
    if (!project) throw storeError(StoreErrorCodes.NOT_FOUND, `project ${name} vanished while being created`);
    return { project, created: Number(r.numInsertedOrUpdatedRows ?? 0n) === 1 };
  }

  async get(name: string): Promise<ProjectRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom("projects")
      .selectAll()
      .where("name", "=", name)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Every project, by name. */
  async list(): Promise<ProjectRecord[]> {
    const rows = await this.ctx.db.selectFrom("projects").selectAll().orderBy("name").execute();
    return rows.map(toRecord);
  }

  /** The domains, in display order. */
  async domains(): Promise<string[]> {
    const rows = await this.ctx.db.selectFrom("domains").select("name").orderBy("position").execute();
    return rows.map((r) => r.name);
  }

  /** Add a domain at the end of the list unless it exists. */
  async addDomain(name: string): Promise<void> {
    await this.ctx.db.transaction().execute(async (trx) => {
      const last = await trx
        .selectFrom("domains")
        .select((eb) => eb.fn.max("position").as("max"))
        .executeTakeFirst();
      await trx
        .insertInto("domains")
        .values({ name, position: Number(last?.max ?? -1) + 1 })
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
    });
  }
}
