/**
 * What the console needs from the API beyond the rest of it: `GET /whoami`
 * (who the token is and its grants, so the console shows only what the role
 * allows) and downloading an execution's file values, with auth on both.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/serve.js";
import { client, compilePayload, makeProject, startPlane, waitForExecution } from "./helpers/api.js";

const ADMIN = "console-admin-0123456789";
const VIEWER = "console-viewer-0123456789";
const PROD_VIEWER = "console-prodview-0123456789";
const S = "/api/v1/projects/default/domains/development";

const FILES = `
import * as fs from "node:fs";
import * as path from "node:path";
import { file, t, task, workflow } from "@tern/core";
import { z } from "zod";
export const writeReport = task(
  { name: "write_report", inputs: { title: z.string() }, output: t.file({ format: "txt" }) },
  async ({ title }, ctx) => {
    const p = path.join(ctx.scratchDir, "report.txt");
    fs.writeFileSync(p, "report: " + title + "\\n");
    return file(p);
  },
);
export const report = workflow(
  { name: "report", inputs: { title: z.string() }, output: t.file({ format: "txt" }) },
  ({ title }) => writeReport({ title }),
);
`;

let dir: string;
let plane: ControlPlane;
let open: ControlPlane;

beforeAll(async () => {
  dir = makeProject("tern-console-api-");
  fs.writeFileSync(path.join(dir, "files.ts"), FILES);
  const payload = await compilePayload(dir, { file: "files.ts" });
  plane = await startPlane(dir, {
    dataDir: path.join(dir, ".tern-auth"),
    tokens: [
      { name: "ops", token: ADMIN, grants: [{ project: "*", domain: "*", role: "admin" }] },
      {
        name: "watcher",
        token: VIEWER,
        grants: [{ project: "default", domain: "development", role: "viewer" }],
      },
      {
        name: "prod",
        token: PROD_VIEWER,
        grants: [{ project: "default", domain: "production", role: "viewer" }],
      },
    ],
  });
  expect((await client(plane, ADMIN)("POST", "/api/v1/register", payload)).status).toBe(200);
  open = await startPlane(dir, { dataDir: path.join(dir, ".tern-open"), runExecutor: false });
});

afterAll(async () => {
  await plane?.close();
  await open?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("GET /whoami", () => {
  it("names the token and its grants, never the secret", async () => {
    const r = await client(plane, VIEWER)("GET", "/api/v1/whoami");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      name: "watcher",
      anonymous: false,
      authRequired: true,
      grants: [{ project: "default", domain: "development", role: "viewer" }],
    });
    expect(r.text).not.toContain(VIEWER);
  });

  it("answers 401 without a token when the server has tokens", async () => {
    const r = await client(plane)("GET", "/api/v1/whoami");
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe("TERN_E_UNAUTHORIZED");
  });

  it("says the open sandbox needs no token", async () => {
    const r = await client(open)("GET", "/api/v1/whoami");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: "anonymous", anonymous: true, authRequired: false });
    expect(r.body.grants).toEqual([{ project: "*", domain: "*", role: "admin" }]);
  });
});

describe("GET …/executions/:id/blob", () => {
  let id: string;
  let uri: string;

  beforeAll(async () => {
    const admin = client(plane, ADMIN);
    const r = await admin("POST", `${S}/executions`, {
      workflow: { name: "report" },
      inputs: { title: "Q3" },
    });
    expect(r.status).toBe(201);
    id = r.body.id;
    const done = await waitForExecution(admin, S, id);
    expect(done.phase).toBe("succeeded");
    uri = done.outputs.uri;
    expect(done.outputs.$tern).toBe("file");
  });

  it("downloads a file value of the execution for a viewer", async () => {
    const r = await client(plane, VIEWER)("GET", `${S}/executions/${id}/blob?uri=${encodeURIComponent(uri)}`);
    expect(r.status).toBe(200);
    expect(r.text).toBe("report: Q3\n");
    expect(r.headers["content-type"]).toBe("application/octet-stream");
    expect(String(r.headers["content-disposition"])).toMatch(/^attachment; filename="[\w.@+-]+"$/);
  });

  it("answers 404 for a uri the execution does not hold", async () => {
    for (const other of [`${uri}.other`, "file:///etc/passwd", plane.blobs.uri("bundles/x.mjs")]) {
      const r = await client(plane, VIEWER)(
        "GET",
        `${S}/executions/${id}/blob?uri=${encodeURIComponent(other)}`,
      );
      expect(r.status, other).toBe(404);
      expect(r.body.error.code).toBe("TERN_E_NOT_FOUND");
      expect(r.body.error.message).toContain("has no file or dataframe value");
    }
    const missing = await client(plane, VIEWER)("GET", `${S}/executions/${id}/blob`);
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain("uri");
  });

  it("checks the token's role in the execution's domain", async () => {
    const q = `${S}/executions/${id}/blob?uri=${encodeURIComponent(uri)}`;
    expect((await client(plane)("GET", q)).status).toBe(401);
    const r = await client(plane, PROD_VIEWER)("GET", q);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe("TERN_E_FORBIDDEN");
    // The same execution id under another domain is a 404, as if it did not exist.
    const elsewhere = await client(plane, PROD_VIEWER)(
      "GET",
      `/api/v1/projects/default/domains/production/executions/${id}/blob?uri=${encodeURIComponent(uri)}`,
    );
    expect(elsewhere.status).toBe(404);
  });
});
