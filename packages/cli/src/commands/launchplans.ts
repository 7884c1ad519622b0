/**
 * `tern launchplans list|activate|deactivate`: launch plans on a Tern server.
 * Activating a version makes it the one whose schedule runs (and the one a
 * launch by name uses); deactivating stops the schedule.
 */
import { ApiClient, type RemoteFlags } from "../client.js";
import { EXIT_OK } from "../errors.js";
import type { Io } from "../io.js";
import { pad } from "../render/format.js";

interface LaunchPlanRecord {
  id: { project: string; domain: string; name: string; version: string };
  active?: boolean;
  schedule?: { cron?: string; timezone?: string; everyMs?: number };
  createdAt: number;
}

const scope = (f: RemoteFlags) => ({ project: f.project ?? "default", domain: f.domain ?? "development" });

function scheduleText(s: LaunchPlanRecord["schedule"]): string {
  if (!s) return "";
  if (s.cron) return `cron "${s.cron}"${s.timezone ? ` ${s.timezone}` : ""}`;
  if (s.everyMs) return `every ${s.everyMs} ms`;
  return "";
}

/** `tern launchplans list [name]` */
export async function listLaunchPlans(
  name: string | undefined,
  flags: RemoteFlags & { json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const path = name
    ? client.scoped(project, domain, "launchplans", name)
    : client.scoped(project, domain, "launchplans");
  const r = await client.request<{ items: LaunchPlanRecord[] }>("GET", path);
  if (flags.json) {
    await io.json(r);
    return EXIT_OK;
  }
  if (r.items.length === 0) {
    io.out(`no launch plans in ${project}/${domain}\n`);
    return EXIT_OK;
  }
  const w = Math.max(...r.items.map((l) => `${l.id.name}@${l.id.version}`.length));
  for (const l of r.items) {
    io.out(
      `${l.active ? "active  " : "inactive"}  ${pad(`${l.id.name}@${l.id.version}`, w)}  ${scheduleText(l.schedule)}`.trimEnd() +
        "\n",
    );
  }
  return EXIT_OK;
}

/** `tern launchplans activate <name> [--version v]`: the latest version when none is given. */
export async function activateLaunchPlan(
  name: string,
  flags: RemoteFlags & { version?: string; json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  let version = flags.version;
  if (!version) {
    const versions = await client.request<{ items: LaunchPlanRecord[] }>(
      "GET",
      `${client.scoped(project, domain, "launchplans", name)}?limit=1`,
    );
    version = versions.items[0].id.version;
  }
  const r = await client.request<LaunchPlanRecord>(
    "POST",
    client.scoped(project, domain, "launchplans", name, "versions", version, "activate"),
    {},
  );
  if (flags.json) await io.json(r);
  else
    io.out(`launch plan ${name}@${version} is active${r.schedule ? ` (${scheduleText(r.schedule)})` : ""}\n`);
  return EXIT_OK;
}

/** `tern launchplans deactivate <name>` */
export async function deactivateLaunchPlan(
  name: string,
  flags: RemoteFlags & { json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const r = await client.request<{ deactivated: boolean }>(
    "POST",
    client.scoped(project, domain, "launchplans", name, "deactivate"),
    {},
  );
  if (flags.json) await io.json(r);
  else io.out(r.deactivated ? `launch plan ${name} is inactive\n` : `launch plan ${name} was not active\n`);
  return EXIT_OK;
}
