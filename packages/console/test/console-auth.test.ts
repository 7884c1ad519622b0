/**
 * The console on a server with tokens, in a real browser: it asks for a
 * token, keeps it for the tab, and shows only what the token's role allows
 * (a viewer sees executions but no launch, relaunch or terminate; a runner
 * launches; a token without grants in a domain gets the server's 403).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { collectPageErrors, launchChromium, shot } from "./helpers/browser.js";
import { type ConsoleServer, removeFixtures, startConsoleServer } from "./helpers/server.js";

const ADMIN = "admin-token-0123456789abcdef";
const VIEWER = "viewer-token-0123456789abcdef";
const RUNNER = "runner-token-0123456789abcdef";
const S = "/api/v1/projects/default/domains/development";
const C = "/console/projects/default/domains/development";

let browser: Browser;
let srv: ConsoleServer;
let page: Page;
let errors: string[];
let done: string;

beforeAll(async () => {
  [browser, srv] = await Promise.all([
    launchChromium(),
    startConsoleServer({
      adminToken: ADMIN,
      tokens: [
        { name: "ops", token: ADMIN, grants: [{ project: "*", domain: "*", role: "admin" }] },
        {
          name: "watcher",
          token: VIEWER,
          grants: [{ project: "default", domain: "development", role: "viewer" }],
        },
        {
          name: "ci",
          token: RUNNER,
          grants: [{ project: "default", domain: "development", role: "runner" }],
        },
      ],
    }),
  ]);
  const e = await srv.api("POST", `${S}/executions`, {
    workflow: { name: "hello" },
    inputs: { name: "Tok" },
  });
  done = e.id;
  for (let i = 0; i < 200; i++) {
    if ((await srv.api("GET", `${S}/executions/${done}`)).phase === "succeeded") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  page = await browser.newPage({ viewport: { width: 1300, height: 850 } });
  errors = collectPageErrors(page);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  removeFixtures();
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail" && page)
    await shot(page, `failed-auth-${ctx.task.name.slice(0, 30).replace(/\W+/g, "-")}`);
});

const url = (p: string) => `${srv.server.url}${p}`;

/**
 * The header's phase comes from the watch stream, which can answer before the
 * execution's record has loaded; the actions depend on the record, so wait for
 * it (its workflow link) before looking at them.
 */
async function recordShown() {
  await expect.poll(() => page.locator('.exec-head a[href*="/workflows/hello"]').count()).toBe(1);
}

async function signIn(token: string) {
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
}

describe("console with tokens", () => {
  it("asks for a token, and refuses an unknown one", async () => {
    await page.goto(url("/console/"));
    await expect.poll(() => page.locator(".dialog").textContent()).toContain("needs a token");
    await signIn("not-a-token-this-server-knows");
    await expect.poll(() => page.locator(".dialog").textContent()).toContain("not known to this server");
  });

  it("shows a viewer executions, but no launch or relaunch", async () => {
    await signIn(VIEWER);
    await expect.poll(() => page.locator(".who").textContent()).toContain("signed in as watcher");
    await expect.poll(() => page.locator(".card h2").allTextContents()).toEqual(["default"]);
    await page.goto(url(`${C}/executions/${done}`));
    await expect
      .poll(() => page.locator(".exec-head h1 .phase").getAttribute("data-phase"))
      .toBe("succeeded");
    await recordShown();
    expect(await page.getByRole("button", { name: "Relaunch" }).count()).toBe(0);
    expect(await page.locator(".actions").textContent()).toContain("read-only");
    expect(await page.locator(".role").textContent()).toContain("viewer");
    await page.goto(url(`${C}/workflows/hello`));
    await expect.poll(() => page.getByRole("button", { name: "Launch" }).isDisabled()).toBe(true);
    expect(await page.locator(".launch-form").textContent()).toContain("needs runner");
    await shot(page, "06-viewer-read-only");
    // Another domain: the server's 403, shown as is.
    await page.goto(url("/console/projects/default/domains/production/executions"));
    await expect.poll(() => page.locator(".errorbox").first().textContent()).toContain("TERN_E_FORBIDDEN");
  });

  it("lets a runner launch after signing out and in again", async () => {
    await page.goto(url(`${C}/workflows/hello`));
    await page.getByRole("button", { name: "sign out" }).click();
    await signIn(RUNNER);
    await expect.poll(() => page.locator(".who").textContent()).toContain("signed in as ci");
    await page.getByLabel(/^name/).fill("Runner");
    await expect.poll(() => page.getByRole("button", { name: "Launch" }).isDisabled()).toBe(false);
    await page.getByRole("button", { name: "Launch" }).click();
    await page.waitForURL(/\/executions\/[A-Za-z0-9_-]+$/);
    await expect
      .poll(() => page.locator(".exec-head h1 .phase").getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("succeeded");
    await recordShown();
    expect(await page.getByRole("button", { name: "Relaunch" }).count()).toBe(1);
  });

  it("keeps the token for the tab only", async () => {
    const stored = await page.evaluate(() => sessionStorage.getItem("tern.token"));
    expect(stored).toBe(RUNNER);
    const other = await browser.newPage();
    await other.goto(url("/console/"));
    await expect.poll(() => other.locator(".dialog").count()).toBe(1);
    await other.close();
  });

  it("shows no page errors", () => {
    expect(errors).toEqual([]);
  });
});
