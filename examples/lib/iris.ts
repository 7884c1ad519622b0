/**
 * The iris dataset as typed rows: four measurements (cm) and a species.
 */
import { z } from "zod";
import { readCsv } from "./csv.js";

export const FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"] as const;

export const IrisRowSchema = z.object({
  sepal_length: z.number(),
  sepal_width: z.number(),
  petal_length: z.number(),
  petal_width: z.number(),
  species: z.string(),
});
export type IrisRow = z.infer<typeof IrisRowSchema>;

/** Parse iris CSV (header `sepal_length,sepal_width,petal_length,petal_width,species`). */
export function parseIris(csv: string): IrisRow[] {
  const { rows } = readCsv(csv, [...FEATURES, "species"]);
  return rows.map(({ line, values }) => {
    const measure = (name: (typeof FEATURES)[number]) => {
      const v = Number(values[name]);
      if (values[name].trim() === "" || !Number.isFinite(v)) {
        throw new Error(`line ${line}: ${name} is not a number: ${JSON.stringify(values[name])}`);
      }
      return v;
    };
    return {
      sepal_length: measure("sepal_length"),
      sepal_width: measure("sepal_width"),
      petal_length: measure("petal_length"),
      petal_width: measure("petal_width"),
      species: values.species.trim(),
    };
  });
}

/** The feature vector of a row, in `FEATURES` order. */
export const featuresOf = (r: IrisRow): number[] => FEATURES.map((f) => r[f]);
