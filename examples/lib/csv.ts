/**
 * A small, strict CSV reader (RFC 4180): quoted fields may hold commas, quotes
 * (doubled: `""`) and line breaks; records end with LF, CRLF or CR. No
 * dependencies, so the examples stay runnable from one `pnpm install`.
 */

/** One record of a CSV file and the line it starts on (1-based, header included). */
export interface CsvRecord {
  line: number;
  fields: string[];
}

/** Thrown for input that is not CSV, naming the line at fault. */
export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = "CsvError";
  }
}

/**
 * Split CSV text into records. Fields are returned exactly as written (quotes
 * removed, no trimming); blank lines are skipped; a leading byte-order mark is ignored.
 */
export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let line = 1; // current line of the input
  let recordLine = 1; // line the current record started on
  let quoted = false; // inside a quoted field
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const endRecord = () => {
    fields.push(field);
    // A blank line is one empty field: skip it rather than produce a record of "".
    if (!(fields.length === 1 && fields[0] === "")) records.push({ line: recordLine, fields });
    fields = [];
    field = "";
  };

  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        // After a closing quote only a separator or the end of the record may follow.
        const next = text[i];
        if (next !== undefined && next !== "," && next !== "\n" && next !== "\r") {
          throw new CsvError(`unexpected ${JSON.stringify(next)} after a closing quote`, line);
        }
        continue;
      }
      if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      if (field !== "") throw new CsvError("a quote inside an unquoted field", line);
      quoted = true;
      i++;
    } else if (c === ",") {
      fields.push(field);
      field = "";
      i++;
    } else if (c === "\n" || c === "\r") {
      endRecord();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++;
      recordLine = line;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new CsvError("a quoted field is never closed", recordLine);
  if (field !== "" || fields.length > 0) endRecord();
  return records;
}

/** A data row keyed by column name, with the line it came from. */
export interface CsvRow {
  line: number;
  values: Record<string, string>;
}

/**
 * Parse CSV with a header row into rows keyed by column name. Every column in
 * `required` must be present in the header, and every row must have as many
 * fields as the header: a ragged row means the file is broken, not one bad value.
 */
export function readCsv(
  text: string,
  required: readonly string[] = [],
): { header: string[]; rows: CsvRow[] } {
  const [head, ...body] = parseCsv(text);
  if (!head) throw new CsvError("the file is empty (no header row)", 1);
  const header = head.fields.map((h) => h.trim());
  const missing = required.filter((c) => !header.includes(c));
  if (missing.length > 0) throw new CsvError(`missing column(s): ${missing.join(", ")}`, head.line);
  const rows = body.map((r) => {
    if (r.fields.length !== header.length) {
      throw new CsvError(`expected ${header.length} fields, found ${r.fields.length}`, r.line);
    }
    const values: Record<string, string> = {};
    header.forEach((h, i) => {
      values[h] = r.fields[i];
    });
    return { line: r.line, values };
  });
  return { header, rows };
}
