/**
 * The console in a real browser (Debian's Chromium through playwright-core)
 * against a real server running the fixture flows on worker processes:
 * launch from the generated form, watch it succeed live, open a node's log,
 * relaunch, approve a gate, download a file output, filter executions, manage
 * launch plans, move through the graph with the keyboard, and open a
 * 10,000-node execution (time to first render and frame times while panning,
 * written to test-artifacts/measurements.json).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, collectPageErrors, launchChromium, shot } from "./helpers/browser.js";
import { type ConsoleServer, removeFixtures, startConsoleServer } from "./helpers/server.js";

let browser: Browser;
let srv: ConsoleServer;
let page: Page;
let errors: string[];
const S = "/api/v1/projects/default/domains/development";
const C = "/console/projects/default/domains/development";
const measurements: Record<string, unknown> = {};

beforeAll(async () => {
  [browser, srv] = await Promise.all([launchChromium(), startConsoleServer()]);
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  errors = collectPageErrors(page);
}, 120_000);

afterAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, "measurements.json"), `${JSON.stringify(measurements, null, 2)}\n`);
  await browser?.close();
  await srv?.close();
  removeFixtures();
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail" && page)
    await shot(page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, "-")}`);
});

const url = (p: string) => `${srv.server.url}${p}`;
const headerPhase = (p: Page) => p.locator(".exec-head h1 .phase");

describe("console flows", () => {
  it("launches from the generated form, validating as the user types, and shows the run succeed", async () => {
    await page.goto(url(`${C}/workflows/hello`));
    const name = page.getByLabel(/^name/);
    const times = page.getByLabel(/^times/);
    await expect.poll(() => name.inputValue()).toBe("world");
    await times.fill("many");
    await expect.poll(() => page.locator("#input-times-err").textContent()).toContain("is not a number");
    expect(await page.getByRole("button", { name: "Launch" }).isDisabled()).toBe(true);
    await times.fill("9000");
    await expect.poll(() => page.locator("#input-times-err").textContent()).toContain("≤ 5000");
    await name.fill("");
    // Left empty, a defaulted input is left out and the server uses its default.
    await expect.poll(() => page.locator("#input-name-err").textContent()).toBe("");
    await name.fill("Ada");
    await times.fill("1200");
    await page.getByRole("button", { name: "Launch" }).click();
    await page.waitForURL(/\/executions\/[A-Za-z0-9_-]+$/);
    await expect
      .poll(() => headerPhase(page).getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("succeeded");
    await expect.poll(() => page.locator(".io").textContent()).toContain("Hello, Ada!");
    await shot(page, "01-launched-hello");
  });

  it("opens a node's full log, searchable", async () => {
    const node = page.locator(".gnode").first();
    await node.click();
    const panel = page.locator("aside.panel");
    await expect.poll(() => panel.locator(".phase").first().getAttribute("data-phase")).toBe("succeeded");
    // 1,200 greeting lines plus the last one: all of them, none cut.
    await expect
      .poll(() => panel.locator(".log-bar").textContent(), { timeout: 10_000 })
      .toMatch(/1201 lines|120\d lines/);
    await panel.getByLabel("Search the log").fill("line 1187 of");
    await panel.getByLabel("Search the log").press("Enter");
    await expect.poll(() => panel.locator(".log-bar").textContent()).toContain("1 of 1 matches");
    await expect
      .poll(() => panel.locator(".log-line.current").textContent())
      .toContain("line 1187 of the greeting for Ada");
    expect(await panel.textContent()).toContain('"name": "Ada"');
    await shot(page, "02-node-log");
  });

  it("relaunches the execution as a new one", async () => {
    const before = page.url();
    await page.getByRole("button", { name: "Relaunch" }).click();
    await page.waitForURL((u) => u.toString() !== before && /\/executions\//.test(u.toString()));
    await expect
      .poll(() => headerPhase(page).getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("succeeded");
    const id = page.url().split("/").pop()!;
    const rec = await srv.api("GET", `${S}/executions/${id}`);
    expect(rec.inputs).toEqual({ name: "Ada", times: 1200 });
  });

  it("approves a gate from the node panel", async () => {
    const e = await srv.api("POST", `${S}/executions`, {
      workflow: { name: "approval" },
      inputs: { name: "Grace" },
    });
    // A fresh page load of the deep link the CLI prints.
    await page.goto(url(`${C}/executions/${e.id}`));
    const gateNode = page.locator('.gnode[data-id="review"]');
    await expect.poll(() => gateNode.getAttribute("data-phase"), { timeout: 20_000 }).toBe("running");
    await gateNode.click();
    await page.locator("aside.panel").getByRole("button", { name: "Approve" }).click();
    await expect
      .poll(() => headerPhase(page).getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("succeeded");
    const rec = await srv.api("GET", `${S}/executions/${e.id}`);
    expect(rec.outputs).toBe("Hello, Grace!");
    await shot(page, "03-gate-approved");
  });

  it("downloads a file output", async () => {
    const e = await srv.api("POST", `${S}/executions`, {
      workflow: { name: "report" },
      inputs: { title: "Q3" },
    });
    await page.goto(url(`${C}/executions/${e.id}`));
    await expect
      .poll(() => headerPhase(page).getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("succeeded");
    const [dl] = await Promise.all([
      page.waitForEvent("download"),
      page
        .locator(".io")
        .getByRole("button", { name: /Download file/ })
        .click(),
    ]);
    const file = path.join(ARTIFACTS, "downloaded-report.txt");
    await dl.saveAs(file);
    expect(fs.readFileSync(file, "utf8")).toBe("report: Q3\n");
  });

  it("moves through the graph with the keyboard", async () => {
    await page.goto(url(`${C}/workflows/approval`));
    await page.getByLabel(/^name/).fill("Keys");
    await page.getByRole("button", { name: "Launch" }).click();
    await page.waitForURL(/\/executions\//);
    const graph = page.locator(".graph");
    await expect.poll(() => page.locator(".graph-host").getAttribute("data-ready")).toBe("root");
    await graph.focus();
    await page.keyboard.press("ArrowRight"); // selects the first node
    await page.keyboard.press("ArrowRight"); // follows its edge downstream
    await expect.poll(() => page.locator("aside.panel h2").textContent()).toBe("review");
    await page.keyboard.press("ArrowLeft");
    await expect.poll(() => page.locator("aside.panel h2").textContent()).not.toBe("review");
    await page.keyboard.press("Escape");
    expect(await page.locator("aside.panel").count()).toBe(0);
    await page.getByRole("button", { name: "Terminate" }).click();
    await page.getByRole("button", { name: "Confirm terminate" }).click();
    await expect
      .poll(() => headerPhase(page).getAttribute("data-phase"), { timeout: 20_000 })
      .toBe("aborted");
    expect(await page.getByRole("button", { name: "Recover" }).count()).toBe(1);
  });

  it("filters executions by phase and workflow, and shows new ones without a reload", async () => {
    await page.goto(url(`${C}/executions`));
    await page.getByLabel("Phase").selectOption("aborted");
    await expect.poll(() => page.locator("tr[data-execution]").count()).toBe(1);
    await page.getByLabel("Phase").selectOption("");
    await page.getByLabel("Workflow").selectOption("report");
    await expect.poll(() => page.locator("tr[data-execution]").count()).toBe(1);
    const e = await srv.api("POST", `${S}/executions`, {
      workflow: { name: "report" },
      inputs: { title: "live" },
    });
    await expect
      .poll(() => page.locator(`tr[data-execution="${e.id}"]`).count(), { timeout: 10_000 })
      .toBe(1);
    expect(page.url()).toContain("workflow=report");
  });

  it("opens a 10,000-node execution and pans it smoothly", async () => {
    const e = await srv.api("POST", `${S}/executions`, { workflow: { name: "big" }, inputs: {} });
    await page.goto(url(`${C}/executions/${e.id}`));
    await expect
      .poll(() => page.locator(".graph-host").getAttribute("data-ready"), { timeout: 30_000 })
      .toBe("root");
    const top = await page.evaluate(() => ({ ...window.__tern!.metrics }));
    expect(top.levelNodes).toBe(100);
    // The whole execution, flattened: 10,000 tasks and 100 group nodes.
    await page.getByRole("button", { name: /Show every node/ }).click();
    await expect
      .poll(() => page.locator(".graph-host").getAttribute("data-ready"), { timeout: 30_000 })
      .toBe("flat");
    const flat = await page.evaluate(() => ({ ...window.__tern!.metrics }));
    expect(flat.levelNodes).toBe(10_100);
    // Off-screen nodes are not in the DOM.
    const mounted = await page.locator(".gnode").count();
    expect(mounted).toBeGreaterThan(0);
    expect(mounted).toBeLessThan(400);
    // Pan with the mouse while the page records every frame.
    await page.evaluate(() => {
      const w = window as any;
      w.__frames = [];
      let last = performance.now();
      const loop = (t: number) => {
        w.__frames.push(t - last);
        last = t;
        if (w.__frames.length < 100000) w.__raf = requestAnimationFrame(loop);
      };
      w.__raf = requestAnimationFrame(loop);
      window.__tern!.graph!.stats.renderMs.length = 0;
    });
    const box = (await page.locator(".graph").boundingBox())!;
    await page.mouse.move(box.x + box.width - 50, box.y + box.height - 50);
    await page.mouse.down();
    for (let i = 0; i < 60; i++)
      await page.mouse.move(box.x + box.width - 50 - i * 15, box.y + box.height - 50 - i * 6);
    await page.mouse.up();
    const pan = await page.evaluate(() => {
      const w = window as any;
      cancelAnimationFrame(w.__raf);
      const frames: number[] = w.__frames.slice(1);
      const render: number[] = [...window.__tern!.graph!.stats.renderMs];
      const q = (xs: number[], p: number) =>
        [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
      return {
        frames: frames.length,
        frameP50: q(frames, 0.5),
        frameP95: q(frames, 0.95),
        frameMax: Math.max(...frames),
        renders: render.length,
        renderP50: q(render, 0.5),
        renderP95: q(render, 0.95),
        renderMax: Math.max(...render),
      };
    });
    measurements.big = { execution: e.id, top, flat, mountedNodes: mounted, pan };
    expect(pan.renders).toBeGreaterThan(10);
    // Generous bounds for a shared 2-core machine; the measured numbers are in measurements.json.
    expect(pan.renderP95).toBeLessThan(50);
    expect(pan.frameP95).toBeLessThan(200);
    await shot(page, "04-big-flat");
    // Zoomed out, nodes become canvas cells: still none in the DOM.
    await page.locator(".graph").focus();
    for (let i = 0; i < 12; i++) await page.keyboard.press("-");
    await expect.poll(() => page.locator(".graph").getAttribute("data-lod")).toBe("true");
    expect(await page.locator(".gnode").count()).toBe(0);
    await shot(page, "05-big-zoomed-out");
    // Back to groups; open one with the keyboard and look at a node inside.
    await page.getByRole("button", { name: "Show groups collapsed" }).click();
    await expect.poll(() => page.locator(".graph-host").getAttribute("data-ready")).toBe("root");
    await page.locator(".graph").focus();
    await page.keyboard.press("ArrowRight");
    const group = await page.locator("aside.panel h2").textContent();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator(".graph-host").getAttribute("data-ready")).toBe(group);
    expect(await page.evaluate(() => window.__tern!.metrics.levelNodes)).toBe(100);
    await page.locator(".gnode").nth(5).click();
    await expect.poll(() => page.locator("aside.panel h2").textContent()).toContain(`${group}/`);
    await shot(page, "06-big-block-open");
    await srv.api("POST", `${S}/executions/${e.id}/terminate`, {});
  });

  it("lists launch plans with their schedules, and activates and deactivates one", async () => {
    await page.goto(url(`${C}/launchplans`));
    const row = page.locator('tr[data-plan="nightly"]');
    await expect.poll(() => row.textContent()).toContain("cron 0 3 * * * (UTC)");
    expect(await row.textContent()).toContain("inactive");
    await row.getByRole("button", { name: "Activate" }).click();
    await expect.poll(() => row.locator("strong").textContent()).toBe("active");
    const active = await srv.api("GET", `${S}/launchplans/nightly/active`);
    expect(active.id.name).toBe("nightly");
    await row.getByRole("button", { name: "Deactivate" }).click();
    await expect.poll(() => row.textContent()).toContain("inactive");
    expect(await row.getByRole("button", { name: "Activate" }).count()).toBe(1);
  });

  it("shows no page errors", () => {
    expect(errors).toEqual([]);
  });
});
