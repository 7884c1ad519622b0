/**
 * One container instance as a local child process.
 *
 * The process gets its own process group (`detached`), so a signal reaches everything the
 * container started (`sh -c "sleep 100"` included) — exactly like stopping a container kills its
 * whole PID namespace — and the fake can prove it leaked nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";

export interface ProcessExit {
  /** Exit status as the runtime reports it: the code, or 128 + signal number when killed. */
  exitCode: number;
  signal?: number;
  /** Set when the process never started (e.g. executable not found). */
  startError?: string;
}

export interface SpawnSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  onOutput(stream: "stdout" | "stderr", text: string): void;
  onExit(exit: ProcessExit): void;
}

/** Every live container process, so `close()` and the exit hook can kill them all. */
const live = new Set<ContainerProcess>();

let exitHookInstalled = false;

/** Last line of defence: if the host process exits without close(), do not leave containers behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of live) p.kill("SIGKILL");
  });
}

export class ContainerProcess {
  readonly #child: ChildProcess;
  #done = false;
  readonly exited: Promise<ProcessExit>;

  constructor(spec: SpawnSpec) {
    installExitHook();
    let resolveExit!: (e: ProcessExit) => void;
    this.exited = new Promise((r) => {
      resolveExit = r;
    });
    const finish = (exit: ProcessExit) => {
      if (this.#done) return;
      this.#done = true;
      live.delete(this);
      resolveExit(exit);
      spec.onExit(exit);
    };
    this.#child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    live.add(this);
    this.#child.stdout!.setEncoding("utf8");
    this.#child.stderr!.setEncoding("utf8");
    this.#child.stdout!.on("data", (text: string) => spec.onOutput("stdout", text));
    this.#child.stderr!.on("data", (text: string) => spec.onOutput("stderr", text));
    this.#child.on("error", (err) => {
      // Spawn failures (ENOENT, EACCES) are what containerd reports as StartError, exit code 128.
      if (this.#child.pid === undefined) finish({ exitCode: 128, startError: err.message });
    });
    const toExit = (code: number | null, signal: NodeJS.Signals | null): ProcessExit => {
      if (!signal) return { exitCode: code ?? 0 };
      const num = constants.signals[signal as keyof typeof constants.signals] ?? 9;
      return { exitCode: 128 + num, signal: num };
    };
    let exit: ProcessExit | undefined;
    this.#child.on("exit", (code, signal) => {
      exit = toExit(code, signal);
      // When a container's main process exits the runtime kills whatever else it started.
      this.#signalGroup("SIGKILL");
    });
    // Finish on "close" (after stdout/stderr are drained) so the log is complete.
    this.#child.on("close", (code, signal) => finish(exit ?? toExit(code, signal)));
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return !this.#done;
  }

  /** Signals the whole process group; falls back to the process alone. */
  kill(signal: NodeJS.Signals): void {
    if (this.#done) return;
    this.#signalGroup(signal);
  }

  #signalGroup(signal: NodeJS.Signals): void {
    if (this.#child.pid === undefined) return;
    try {
      process.kill(-this.#child.pid, signal);
    } catch {
      try {
        this.#child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

/** Number of container processes alive in this Node process (all fakes together). */
export function liveProcessCount(): number {
  return live.size;
}
