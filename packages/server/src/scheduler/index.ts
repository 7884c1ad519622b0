/**
 * The scheduler and launch plan notifications.
 *
 * @example
 * const scheduler = new Scheduler({ store, launcher: executor });
 * scheduler.start();
 * const notifier = new Notifier({ store, source: executor });
 *
 * @module
 */
export { type NotificationBody, Notifier, type NotifierOptions } from "./notifier.js";
export { parseSchedule, type TickSchedule } from "./schedule.js";
export {
  BASELINE_MARK,
  DEACTIVATED_MARK,
  type RoundReport,
  Scheduler,
  type SchedulerOptions,
  tickExecutionId,
} from "./scheduler.js";
