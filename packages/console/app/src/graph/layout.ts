/** Lay a level out in the layout worker; one request at a time per caller, the latest wins. */
import type { LayoutRequest, LayoutResult } from "./layout-core.js";

let worker: Worker | undefined;
let next = 1;
const waiting = new Map<number, (r: LayoutResult) => void>();

function getWorker(): Worker {
  if (!worker) {
    worker = new Worker(new URL("./layout.worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (e: MessageEvent<LayoutResult>) => {
      waiting.get(e.data.id)?.(e.data);
      waiting.delete(e.data.id);
    };
  }
  return worker;
}

export function layoutInWorker(count: number, edges: [number, number][]): Promise<LayoutResult> {
  const id = next++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    const req: LayoutRequest = { id, count, edges };
    getWorker().postMessage(req);
  });
}
