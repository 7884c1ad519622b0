/**
 * The logger the executor and scheduler write to: the subset of pino's API they
 * use (`logger.warn({ execution }, "message")`), so a pino logger fits as is.
 */
export interface ExecutorLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

const noop = () => {};

/** Discards everything: the default when no logger is given. */
export const silentLogger: ExecutorLogger = { debug: noop, info: noop, warn: noop, error: noop };
