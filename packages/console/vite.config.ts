import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The app lives in app/ and builds into dist/app/, which `consoleDir` points at.
export default defineConfig({
  root: fileURLToPath(new URL("./app/", import.meta.url)),
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("./dist/app/", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    reportCompressedSize: false,
  },
  worker: { format: "es" },
});
