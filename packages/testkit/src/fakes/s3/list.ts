/** ListObjectsV2 semantics: prefix, delimiter grouping, max-keys and continuation. */

export interface ListParams {
  prefix: string;
  delimiter?: string;
  maxKeys: number;
  continuationToken?: string;
  startAfter?: string;
}

export interface ListPage {
  keys: string[];
  commonPrefixes: string[];
  truncated: boolean;
  nextToken?: string;
}

/** The token says where the previous page stopped: after a key, or after a whole common prefix. */
interface Token {
  after: string;
  prefix: boolean;
}

export function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t)).toString("base64");
}

export function decodeToken(s: string): Token | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, "base64").toString("utf8")) as Token;
    return typeof t.after === "string" ? t : undefined;
  } catch {
    return undefined;
  }
}

/** One page over `sortedKeys` (ascending). Throws on an unreadable continuation token. */
export function listPage(sortedKeys: readonly string[], p: ListParams): ListPage {
  const token = p.continuationToken === undefined ? undefined : decodeToken(p.continuationToken);
  if (p.continuationToken !== undefined && !token) throw new Error("InvalidArgument");
  const keys: string[] = [];
  const commonPrefixes: string[] = [];
  let last: Token | undefined;
  for (const key of sortedKeys) {
    if (!key.startsWith(p.prefix)) continue;
    if (token) {
      if (token.prefix ? key.startsWith(token.after) || key <= token.after : key <= token.after) continue;
    } else if (p.startAfter !== undefined && key <= p.startAfter) continue;
    let group: string | undefined;
    if (p.delimiter) {
      const i = key.indexOf(p.delimiter, p.prefix.length);
      if (i >= 0) group = key.slice(0, i + p.delimiter.length);
    }
    if (group !== undefined && commonPrefixes[commonPrefixes.length - 1] === group) continue;
    if (keys.length + commonPrefixes.length >= p.maxKeys) {
      return { keys, commonPrefixes, truncated: true, nextToken: last ? encodeToken(last) : undefined };
    }
    if (group !== undefined) {
      commonPrefixes.push(group);
      last = { after: group, prefix: true };
    } else {
      keys.push(key);
      last = { after: key, prefix: false };
    }
  }
  return { keys, commonPrefixes, truncated: false };
}
