/// <reference lib="webworker" />
import { type LayoutRequest, layout } from "./layout-core.js";

self.onmessage = (e: MessageEvent<LayoutRequest>) => {
  const result = layout(e.data);
  (self as unknown as Worker).postMessage(result, [result.xy.buffer]);
};
