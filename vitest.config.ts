import { defineConfig } from "vitest/config";

// vitest 5's reporter calls Map.groupBy (Node 21+) when it prints failures; on Node 20
// that crash hides the real error. Polyfill it in the main process.
if (!(Map as unknown as { groupBy?: unknown }).groupBy) {
  (Map as unknown as { groupBy: unknown }).groupBy = <K, V>(
    items: Iterable<V>,
    key: (v: V, i: number) => K,
  ) => {
    const m = new Map<K, V[]>();
    let i = 0;
    for (const v of items) {
      const k = key(v, i++);
      const list = m.get(k);
      if (list) list.push(v);
      else m.set(k, [v]);
    }
    return m;
  };
}

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Tests spawn worker processes of their own; two test files at once fit 2 cores.
    maxWorkers: 2,
  },
});
