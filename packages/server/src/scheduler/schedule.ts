/**
 * Launch plan schedules as tick sources: a cron expression (croner, optionally in an
 * IANA timezone) or a fixed rate. Both are pure functions of time, so every replica
 * computes the same ticks:
 *
 * - cron: croner's runs, in the schedule's timezone (UTC when none is given);
 * - fixed rate (`everyMs`): the multiples of the period since the Unix epoch.
 */

import { ErrorCodes, type Schedule, TernError } from "@tern/core";
import { Cron } from "croner";

/** The ticks of a schedule, as epoch milliseconds. */
export interface TickSchedule {
  /** The latest tick at or before `t`, or undefined when there is none. */
  latestAtOrBefore(t: number): number | undefined;
  /** The first tick strictly after `t`, or undefined when there is none. */
  nextAfter(t: number): number | undefined;
  /** How the schedule reads (for logs). */
  readonly text: string;
}

/**
 * Read a launch plan's schedule. Throws `TERN_E_SPEC_INVALID` (the API answers 400)
 * for an invalid cron expression or timezone, a cron that never fires, or a rate that
 * is not a positive whole number of milliseconds.
 *
 * @example
 * parseSchedule({ cron: "0 3 * * *", timezone: "Europe/Paris" }).nextAfter(Date.now());
 */
export function parseSchedule(schedule: unknown, plan = "the launch plan"): TickSchedule {
  const s = schedule as Partial<Schedule> & Record<string, unknown>;
  if (s && typeof s === "object" && "everyMs" in s) {
    const every = s.everyMs;
    if (typeof every !== "number" || !Number.isInteger(every) || every <= 0) {
      throw invalid(
        plan,
        `a fixed-rate schedule needs a positive whole number of milliseconds, not ${JSON.stringify(every)}`,
        { everyMs: every },
      );
    }
    return {
      text: `every ${every} ms`,
      latestAtOrBefore: (t) => Math.floor(t / every) * every,
      nextAfter: (t) => (Math.floor(t / every) + 1) * every,
    };
  }
  if (!s || typeof s !== "object" || typeof s.cron !== "string") {
    throw invalid(
      plan,
      `a schedule is { cron, timezone? } or { everyMs }, not ${JSON.stringify(schedule)}`,
      {},
    );
  }
  const { cron, timezone } = s as { cron: string; timezone?: string };
  if (timezone !== undefined && !isTimeZone(timezone)) {
    throw invalid(plan, `unknown timezone "${timezone}"`, { cron, timezone });
  }
  let job: Cron;
  try {
    job = new Cron(cron, { paused: true, ...(timezone ? { timezone } : { timezone: "UTC" }) });
  } catch (e) {
    throw invalid(
      plan,
      `invalid cron expression "${cron}": ${(e as Error).message.replace(/^CronPattern: /, "")}`,
      { cron, timezone },
    );
  }
  if (!job.nextRun(new Date(0)))
    throw invalid(plan, `the cron expression "${cron}" never fires`, { cron, timezone });
  return {
    text: `cron "${cron}"${timezone ? ` (${timezone})` : " (UTC)"}`,
    latestAtOrBefore: (t) => job.previousRuns(1, new Date(t + 1))[0]?.getTime(),
    nextAfter: (t) => job.nextRun(new Date(t))?.getTime(),
  };
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function invalid(plan: string, why: string, details: Record<string, unknown>): TernError {
  return new TernError(ErrorCodes.SPEC_INVALID, `${plan} has an invalid schedule: ${why}`, {
    hint: 'use a cron expression of 5 or 6 fields (e.g. "0 3 * * *") with an IANA timezone (e.g. "Europe/Paris"), or { everyMs: 60000 }',
    details: { field: "schedule", ...details },
  });
}
