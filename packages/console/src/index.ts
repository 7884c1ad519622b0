/**
 * @tern/console — the Tern web console, built by vite into static files that
 * `@tern/server` serves at `/console/`.
 *
 * @example
 * import { consoleDir } from "@tern/console";
 * // serve consoleDir as static files, with index.html for every other path
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Directory of the built single-page app (`index.html` and `assets/`). */
export const consoleDir: string = fileURLToPath(new URL("./app/", import.meta.url));

/** True when the app has been built (`pnpm --filter @tern/console build`). */
export function consoleBuilt(): boolean {
  return existsSync(fileURLToPath(new URL("./app/index.html", import.meta.url)));
}
