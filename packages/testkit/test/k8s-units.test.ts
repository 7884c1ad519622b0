/**
 * Unit tests of the fake's pure pieces: selectors, patches, quantities, the store's history.
 */
import { describe, expect, it } from "vitest";
import { StatusError } from "../src/fakes/k8s/errors.js";
import { applyPatch, jsonPatch, mergePatch, strategicMergePatch } from "../src/fakes/k8s/patch.js";
import { parseQuantity } from "../src/fakes/k8s/quantity.js";
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from "../src/fakes/k8s/selectors.js";
import { Store } from "../src/fakes/k8s/store.js";

describe("label selectors", () => {
  const match = (sel: string, labels?: Record<string, string>) =>
    matchesLabels(parseLabelSelector(sel), labels);

  it("parses and matches the whole grammar", () => {
    expect(match("", { a: "1" })).toBe(true);
    expect(match("a=1,b==2", { a: "1", b: "2" })).toBe(true);
    expect(match("a!=1", {})).toBe(true);
    expect(match("env in (prod, staging),tier notin (db)", { env: "prod", tier: "web" })).toBe(true);
    expect(match("env in (prod)", {})).toBe(false);
    expect(match("app.kubernetes.io/name=x", { "app.kubernetes.io/name": "x" })).toBe(true);
    expect(match("!gpu", { gpu: "" })).toBe(false);
    expect(match("gpu", { gpu: "" })).toBe(true);
    expect(match("count>2", { count: "3" })).toBe(true);
  });

  it("rejects garbage with a 400 Status", () => {
    const err = (() => {
      try {
        parseLabelSelector("a in b");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(400);
  });

  it("field selectors read dotted paths; absent fields compare as empty", () => {
    const pod = { metadata: { name: "p", namespace: "n" }, status: { phase: "Running" } };
    expect(matchesFields(parseFieldSelector("metadata.name=p,status.phase!=Failed"), pod)).toBe(true);
    expect(matchesFields(parseFieldSelector("spec.nodeName="), pod)).toBe(true);
    expect(matchesFields(parseFieldSelector("metadata.namespace==other"), pod)).toBe(false);
  });
});

describe("patches", () => {
  it("merge patch (RFC 7386): null deletes, objects merge, arrays replace", () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { a: null, b: { c: 9 }, l: [3] })).toEqual({
      b: { c: 9, d: 3 },
      l: [3],
    });
  });

  it("strategic merge merges lists of named or typed items by key", () => {
    const target = {
      conditions: [
        { type: "Ready", status: "False" },
        { type: "PodScheduled", status: "True" },
      ],
    };
    expect(
      strategicMergePatch(target, {
        conditions: [
          { type: "Ready", status: "True" },
          { type: "Custom", status: "True" },
        ],
      }),
    ).toEqual({
      conditions: [
        { type: "Ready", status: "True" },
        { type: "PodScheduled", status: "True" },
        { type: "Custom", status: "True" },
      ],
    });
  });

  it("JSON patch (RFC 6902): add, replace, remove, move, copy, test", () => {
    const doc = { a: { b: 1 }, list: ["x"] };
    expect(
      jsonPatch(doc, [
        { op: "add", path: "/list/-", value: "y" },
        { op: "replace", path: "/a/b", value: 2 },
        { op: "copy", from: "/a/b", path: "/c" },
        { op: "move", from: "/c", path: "/d" },
        { op: "remove", path: "/list/0" },
        { op: "test", path: "/d", value: 2 },
        { op: "add", path: "/e~1f", value: true },
      ]),
    ).toEqual({ a: { b: 2 }, list: ["y"], d: 2, "e/f": true });
    expect(doc).toEqual({ a: { b: 1 }, list: ["x"] }); // input untouched
    expect(() => jsonPatch(doc, [{ op: "test", path: "/a/b", value: 5 }])).toThrow(StatusError);
    expect(() => jsonPatch(doc, [{ op: "replace", path: "/nope", value: 5 }])).toThrow(StatusError);
  });

  it("applyPatch picks the algorithm by content type and refuses unknown ones with 415", () => {
    expect(applyPatch({ a: 1 }, { a: 2 }, "application/merge-patch+json; charset=utf-8")).toEqual({ a: 2 });
    try {
      applyPatch({}, {}, "application/apply-patch+yaml");
      expect.unreachable();
    } catch (e) {
      expect((e as StatusError).code).toBe(415);
    }
  });
});

describe("quantities", () => {
  it("parses decimal and binary suffixes, millis and exponents", () => {
    expect(parseQuantity("500m")).toBe(0.5);
    expect(parseQuantity("2")).toBe(2);
    expect(parseQuantity("1Gi")).toBe(2 ** 30);
    expect(parseQuantity("1G")).toBe(1e9);
    expect(parseQuantity("1e3")).toBe(1000);
    expect(parseQuantity(4)).toBe(4);
    expect(parseQuantity("lots")).toBeNaN();
  });
});

describe("store history", () => {
  const obj = (name: string) => ({ metadata: { name, namespace: "n" } });

  it("stamps a global resourceVersion and replays events after any retained point", () => {
    const store = new Store(3);
    store.create("core/pods", obj("a")); // rv 1
    store.create("core/pods", obj("b")); // rv 2
    store.update("core/pods", { ...obj("a"), spec: { x: 1 } }); // rv 3
    store.remove("core/pods", "n", "b"); // rv 4: drops rv 1 from the 3-event history
    expect(store.resourceVersion).toBe(4);
    expect(store.eventsSince(2)?.map((e) => `${e.type}@${e.rv}`)).toEqual(["MODIFIED@3", "DELETED@4"]);
    expect(store.eventsSince(1)?.length).toBe(3);
    expect(store.eventsSince(0)).toBeUndefined(); // event 1 is gone: 410
    store.compact();
    expect(store.eventsSince(4)).toBeUndefined(); // compaction expires every RV handed out so far
    store.create("core/pods", obj("c")); // rv 5
    expect(store.eventsSince(5)).toEqual([]);
  });

  it("delivers events to listeners in resourceVersion order even when a listener writes", () => {
    const store = new Store();
    const seen: number[] = [];
    store.subscribe((e) => {
      if (e.object.metadata.name === "first") store.create("core/pods", obj("second"));
    });
    store.subscribe((e) => seen.push(e.rv));
    store.create("core/pods", obj("first"));
    expect(seen).toEqual([1, 2]);
  });
});
