/**
 * The web console: `@tern/console`'s static assets at `/console/`, with the
 * single-page app's `index.html` for every other `/console/*` path (deep links
 * such as `/console/projects/p/domains/d/executions/<id>` open on a fresh
 * load), and `/` redirecting there.
 *
 * Hashed assets (`/console/assets/*`) are cached for a year; `index.html` is
 * revalidated on every load so a new build shows at once. The pages are public:
 * the app asks for a token when the API answers 401, and the API checks it.
 */
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { consoleDir } from "@tern/console";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import type { ApiContext } from "../context.js";
import { notFound } from "../errors.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** What the app's pages may load: its own scripts, styles and workers, and the API on the same origin. */
const CSP =
  "default-src 'self'; script-src 'self'; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'";

const NOT_BUILT_PAGE = `<!doctype html><meta charset="utf-8"><title>Tern console not built</title>
<p>The Tern console has not been built: run <code>pnpm build</code> (or <code>pnpm --filter @tern/console build</code>) in the repository, then reload.</p>`;

/** Options of {@link consoleRoutes}. */
export interface ConsoleRoutesOptions {
  /** Directory of the built app. @default `consoleDir` of `@tern/console` */
  dir?: string;
}

export function consoleRoutes(_ctx: ApiContext, opts: ConsoleRoutesOptions = {}): FastifyPluginAsync {
  const root = path.resolve(opts.dir ?? consoleDir);
  let indexHtml: Promise<Buffer | undefined> | undefined;
  const readIndex = () =>
    (indexHtml ??= fs.readFile(path.join(root, "index.html")).catch(() => {
      indexHtml = undefined; // built later: try again on the next request
      return undefined;
    }));

  const sendIndex = async (reply: FastifyReply) => {
    const html = await readIndex();
    reply.header("content-security-policy", CSP).header("x-content-type-options", "nosniff");
    if (!html) return reply.status(503).type("text/html; charset=utf-8").send(NOT_BUILT_PAGE);
    return reply.header("cache-control", "no-cache").type("text/html; charset=utf-8").send(html);
  };

  return async (app) => {
    const hidden = { schema: { hide: true } };
    app.get("/", hidden, async (_req, reply) => reply.redirect("/console/", 302));
    // The router ignores trailing slashes: `/console/` lands here too, and gets the app.
    app.get("/console", hidden, async (req, reply) =>
      req.url.split("?")[0] === "/console" ? reply.redirect("/console/", 301) : sendIndex(reply),
    );
    app.get<{ Params: { "*": string } }>("/console/*", hidden, async (req, reply) => {
      let rel: string;
      try {
        rel = decodeURIComponent(req.params["*"] ?? "");
      } catch {
        rel = "";
      }
      // A file of the build (never outside it), else the app's page for client-side routes.
      const file = path.resolve(root, rel);
      const inside = file.startsWith(root + path.sep) && !rel.includes("\0");
      const ext = path.extname(file).toLowerCase();
      if (inside && ext && ext !== ".html") {
        const st = await fs.stat(file).catch(() => undefined);
        if (st?.isFile()) {
          const immutable = rel.startsWith("assets/");
          return reply
            .header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache")
            .header("x-content-type-options", "nosniff")
            .header("content-length", st.size)
            .type(TYPES[ext] ?? "application/octet-stream")
            .send(createReadStream(file));
        }
        if (rel.startsWith("assets/")) {
          throw notFound(`no console asset "${rel.slice(0, 200)}"`, "reload the console: it was rebuilt");
        }
      }
      return sendIndex(reply);
    });
  };
}
