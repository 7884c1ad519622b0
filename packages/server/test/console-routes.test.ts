/**
 * The console's static files: index.html for every client-side route (deep
 * links open on a fresh load), hashed assets with their content types and a
 * year of caching, 404 for a missing asset, nothing outside the build, the
 * redirects to /console/, and a page naming the fix when the app is not built.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { consoleDir } from "@tern/console";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleRoutes } from "../src/api/routes/console.js";
import type { ControlPlane } from "../src/serve.js";
import { makeProject, startPlane } from "./helpers/api.js";

let dir: string;
let plane: ControlPlane;

beforeAll(async () => {
  if (!fs.existsSync(path.join(consoleDir, "index.html"))) {
    throw new Error(
      `the console is not built (${consoleDir}): run pnpm build (or pnpm --filter @tern/console build)`,
    );
  }
  dir = makeProject("tern-console-routes-");
  plane = await startPlane(dir, { runExecutor: false });
});

afterAll(async () => {
  await plane?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const get = (url: string) => plane.app.inject({ method: "GET", url });

describe("console routes", () => {
  it("answers every client-side route with the app's page", async () => {
    for (const url of [
      "/console/",
      "/console/projects/default/domains/development/executions/x2abc",
      "/console/projects/my.project/domains/development/workflows/hello/versions/v1.2",
    ]) {
      const r = await get(url);
      expect(r.statusCode, url).toBe(200);
      expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(r.headers["cache-control"]).toBe("no-cache");
      expect(r.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(r.body).toContain('<div id="app">');
    }
  });

  it("serves hashed assets with their content type, cached for a year", async () => {
    const html = (await get("/console/")).body;
    const js = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/console\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    expect(css).toBeDefined();
    const r = await get(js!);
    expect(r.statusCode).toBe(200);
    expect(r.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(r.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(r.body).toBe(fs.readFileSync(path.join(consoleDir, js!.slice("/console/".length)), "utf8"));
    expect((await get(css!)).headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("answers 404 for a missing asset and never serves a file outside the build", async () => {
    const missing = await get("/console/assets/index-gone.js");
    expect(missing.statusCode).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe("TERN_E_NOT_FOUND");
    for (const url of [
      "/console/..%2f..%2fpackage.json",
      "/console/%2e%2e/%2e%2e/package.json",
      "/console/../package.json",
    ]) {
      const r = await get(url);
      expect(r.body, url).not.toContain('"name": "@tern/console"');
      expect(r.body, url).not.toContain('"@tern/console"');
    }
  });

  it("redirects / and /console to /console/", async () => {
    const root = await get("/");
    expect(root.statusCode).toBe(302);
    expect(root.headers.location).toBe("/console/");
    const bare = await get("/console");
    expect(bare.statusCode).toBe(301);
    expect(bare.headers.location).toBe("/console/");
  });

  it("keeps the API's 404 for unknown API routes", async () => {
    const r = await get("/api/v1/nope");
    expect(r.statusCode).toBe(404);
    expect(JSON.parse(r.body).error.code).toBe("TERN_E_ROUTE_NOT_FOUND");
  });

  it("says how to build the console when it is not built", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "tern-console-empty-"));
    const app = Fastify();
    await app.register(consoleRoutes(plane.ctx, { dir: empty }));
    const r = await app.inject({ method: "GET", url: "/console/projects/default" });
    expect(r.statusCode).toBe(503);
    expect(r.body).toContain("pnpm build");
    await app.close();
    fs.rmSync(empty, { recursive: true, force: true });
  });
});
