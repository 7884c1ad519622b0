/** Just enough XML for S3: escaping, element builders and the two request bodies S3 parses. */

export function esc(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

export function unesc(s: string): string {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(Number.parseInt(h, 16)))
    .replace(/&amp;/g, "&");
}

/** `<name>text</name>`, or nothing when `value` is undefined. */
export function el(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? "" : `<${name}>${esc(String(value))}</${name}>`;
}

export const S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/";

export function doc(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_NS}">${inner}</${root}>`;
}

/** Text of every `<tag>…</tag>` directly found in `xml` (no nesting of the same tag). */
export function all(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g");
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(m[1]);
  return out;
}

export function first(xml: string, tag: string): string | undefined {
  const v = all(xml, tag)[0];
  return v === undefined ? undefined : unesc(v);
}

/** `<CompleteMultipartUpload><Part><PartNumber/><ETag/></Part>…`. */
export function parseCompleteParts(xml: string): { partNumber: number; etag: string }[] {
  return all(xml, "Part").map((p) => ({
    partNumber: Number(first(p, "PartNumber")),
    etag: first(p, "ETag") ?? "",
  }));
}

/** `<Delete><Quiet/><Object><Key/></Object>…`. */
export function parseDelete(xml: string): { quiet: boolean; keys: string[] } {
  return {
    quiet: first(xml, "Quiet") === "true",
    keys: all(xml, "Object").map((o) => first(o, "Key") ?? ""),
  };
}
