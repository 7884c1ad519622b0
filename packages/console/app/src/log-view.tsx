/**
 * A node's full log: every line (never truncated), drawn as a virtual list so
 * a million lines scroll like ten; search highlights matches and jumps between
 * them; while the node runs the log is read again every second and follows
 * the end unless the reader scrolled up.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { get } from "./api.js";
import { ErrorBox } from "./util.js";

const LINE = 18;
const HEIGHT = 320;
const FOLLOW_MS = 1000;

export function LogView({ path, attempt, live }: { path: string; attempt?: number; live: boolean }) {
  const [lines, setLines] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const [loaded, setLoaded] = useState(false);
  const [follow, setFollow] = useState(true);
  const [query, setQuery] = useState("");
  const [hit, setHit] = useState(0);
  const [top, setTop] = useState(0);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const r = await get<{ lines: string[] }>(`${path}${attempt ? `?attempt=${attempt}` : ""}`);
        if (stop) return;
        setLines((old) =>
          old.length === r.lines.length && old[old.length - 1] === r.lines[r.lines.length - 1]
            ? old
            : r.lines,
        );
        setError(undefined);
      } catch (e) {
        if (!stop) setError(e);
      }
      if (!stop) setLoaded(true);
      if (!stop && live) timer = setTimeout(load, FOLLOW_MS);
    };
    void load();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [path, attempt, live]);

  const matches = useMemo(() => {
    if (!query) return [] as number[];
    const q = query.toLowerCase();
    const out: number[] = [];
    for (let i = 0; i < lines.length; i++) if (lines[i].toLowerCase().includes(q)) out.push(i);
    return out;
  }, [lines, query]);

  // Follow the end while new lines come.
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);

  const jump = (k: number) => {
    if (!matches.length) return;
    const i = ((k % matches.length) + matches.length) % matches.length;
    setHit(i);
    setFollow(false);
    if (box.current) box.current.scrollTop = Math.max(0, matches[i] * LINE - HEIGHT / 2);
  };

  const first = Math.max(0, Math.floor(top / LINE) - 20);
  const last = Math.min(lines.length, Math.ceil((top + HEIGHT) / LINE) + 20);
  const current = matches[hit];
  const q = query.toLowerCase();
  const mark = (text: string) => {
    if (!q) return text;
    const at = text.toLowerCase().indexOf(q);
    if (at < 0) return text;
    return (
      <>
        {text.slice(0, at)}
        <mark>{text.slice(at, at + q.length)}</mark>
        {text.slice(at + q.length)}
      </>
    );
  };
  return (
    <div class="log">
      <div class="log-bar">
        <input
          type="search"
          placeholder="Search the log"
          aria-label="Search the log"
          value={query}
          onInput={(e) => {
            setQuery((e.currentTarget as HTMLInputElement).value);
            setHit(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              jump(
                e.shiftKey ? hit - 1 : query && matches.length ? hit + (current !== undefined ? 1 : 0) : 0,
              );
            }
          }}
        />
        <button
          type="button"
          onClick={() => jump(hit - 1)}
          disabled={!matches.length}
          aria-label="Previous match"
        >
          ↑
        </button>
        <button
          type="button"
          onClick={() => jump(hit + 1)}
          disabled={!matches.length}
          aria-label="Next match"
        >
          ↓
        </button>
        <span class="small muted" aria-live="polite">
          {query ? `${matches.length ? hit + 1 : 0} of ${matches.length} matches · ` : ""}
          {lines.length} lines{live ? " · live" : ""}
        </span>
        <label class="small">
          <input
            type="checkbox"
            checked={follow}
            onChange={(e) => setFollow((e.currentTarget as HTMLInputElement).checked)}
          />{" "}
          follow
        </label>
      </div>
      <ErrorBox error={error} />
      <div
        class="log-lines"
        ref={box}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable log must take focus to scroll with the keyboard
        tabIndex={0}
        role="log"
        aria-label="Log lines"
        style={{ height: `${HEIGHT}px` }}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLDivElement;
          setTop(el.scrollTop);
          const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE;
          if (!atEnd && follow) setFollow(false);
        }}
      >
        <div style={{ height: `${lines.length * LINE}px`, position: "relative" }}>
          {lines.slice(first, last).map((l, k) => {
            const i = first + k;
            return (
              <div
                key={i}
                class={`log-line${i === current ? " current" : ""}`}
                style={{ top: `${i * LINE}px` }}
                data-line={i + 1}
              >
                <span class="ln">{i + 1}</span>
                {mark(l)}
              </div>
            );
          })}
        </div>
        {loaded && lines.length === 0 && <div class="muted small pad">No log lines{live ? " yet" : ""}.</div>}
      </div>
    </div>
  );
}
