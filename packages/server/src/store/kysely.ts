/**
 * Kysely's runtime values, for the store's modules: they import them from here, never from
 * "kysely" itself (types still come from the package).
 *
 * kysely ships as about 250 ES modules. Loading them was the largest part of the control
 * plane's start-up, which a restarted server spends before it can resume any work: 240 ms
 * of a 500 ms import on an idle 2-core machine, 440 ms while that machine ran tests. The
 * build (`scripts/bundle-kysely.mjs`, run after `tsc -b`) replaces this module's output
 * with one file that holds kysely, which loads in 30-60 ms.
 */
export {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  sql,
} from "kysely";
