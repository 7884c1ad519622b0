/**
 * Start-up timing marks, printed to stderr with `TERN_TIMING=1`: where a
 * `tern run` spends its time (node boot, loading the CLI and core, bundling,
 * compiling, running).
 */

/** Named time marks since process start. */
export class Timing {
  private readonly marks: [string, number][] = [];
  private last = 0;

  constructor(readonly enabled = process.env.TERN_TIMING === "1") {}

  /** Record the time since the previous mark (the first mark counts from process start). */
  mark(label: string): void {
    if (!this.enabled) return;
    const now = performance.now();
    this.marks.push([label, now - this.last]);
    this.last = now;
  }

  /** `timing: boot+cli 95ms | import core 310ms | … | total 620ms`. */
  report(): string {
    if (!this.enabled) return "";
    const parts = this.marks.map(([l, ms]) => `${l} ${ms.toFixed(0)}ms`);
    return `timing: ${parts.join(" | ")} | total ${performance.now().toFixed(0)}ms\n`;
  }
}
