/**
 * `custom` of a `spark` task: its shape, and the checks made before anything is sent to a
 * cluster. Every problem is a `TERN_E_SPEC_INVALID` error naming the task and the field,
 * with what to write instead.
 */
import { ErrorCodes, type TaskSpec, TernError, unknownTemplateInputs } from "@tern/core";
import { isQuantity, parseQuantity, secretsOf } from "@tern/plugin-k8s";
import type { ResolvedSparkOptions } from "./options.js";

/** What a `spark` task's `custom` holds. */
export interface SparkTaskConfig {
  /**
   * The application's language. Inferred from `mainApplicationFile` when left out:
   * `.py` → Python, `.R` → R, `.jar` → Scala (Java and Scala are submitted alike).
   */
  type?: SparkApplicationType;
  /**
   * The main file, as a URI: `local:///opt/app/main.py` (a path inside the image),
   * `s3a://bucket/app.jar`, `file:///…`. Templates allowed (`{{.inputs.x}}`).
   */
  mainApplicationFile: string;
  /** Main class of a JVM application (else the jar's manifest decides). */
  mainClass?: string;
  /**
   * Application arguments. Templates: `{{.inputs.<name>}}` (strings as they are, files as
   * their URI, anything else as JSON), `{{.inputsUri}}`, `{{.outputsUri}}`, `{{.outputPrefix}}`.
   */
  arguments?: string[];
  /** Image of driver and executors; else the task's `image`, else the plugin's `defaultImage`. */
  image?: string;
  /** `spec.sparkVersion`. @default the plugin's `sparkVersion` */
  sparkVersion?: string;
  /** Spark properties (`spark.*` keys). Numbers and booleans are written as strings. */
  sparkConf?: Record<string, string | number | boolean>;
  /** Hadoop properties (without the `spark.hadoop.` prefix). */
  hadoopConf?: Record<string, string | number | boolean>;
  driver?: SparkDriverConfig;
  executor?: SparkExecutorConfig;
  /** Extra jars, files, Python files and Maven packages. */
  deps?: SparkDeps;
  /** The operator deletes the finished application after this many seconds. */
  timeToLiveSeconds?: number;
  /** Routing label of the cluster pool (see `k8s()` `routing.byLabel`). */
  clusterLabel?: string;
}

export type SparkApplicationType = "Scala" | "Java" | "Python" | "R";

/** Sizing and environment common to the driver and the executors. */
export interface SparkPodConfig {
  /** Whole CPU cores (≥ 1). @default 1 */
  cores?: number;
  /** Hard CPU limit of the pod, a Kubernetes quantity ("1200m", "2"). */
  coreLimit?: string;
  /** JVM heap in Spark's format: "512m", "2g" (not Kubernetes' "2Gi"). @default "512m" */
  memory?: string;
  /** Off-heap memory added to the pod, in the same format. */
  memoryOverhead?: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  javaOptions?: string;
}

export interface SparkDriverConfig extends SparkPodConfig {
  /** Service account of the driver pod (it creates the executors). @default the plugin's `serviceAccount` */
  serviceAccount?: string;
}

export interface SparkExecutorConfig extends SparkPodConfig {
  /** Executors (≥ 1). @default 1 */
  instances?: number;
}

export interface SparkDeps {
  jars?: string[];
  files?: string[];
  pyFiles?: string[];
  packages?: string[];
  excludePackages?: string[];
  repositories?: string[];
}

/** A checked configuration, with defaults and strings where the CRD wants strings. */
export interface ResolvedSparkConfig {
  type: SparkApplicationType;
  mainApplicationFile: string;
  mainClass?: string;
  arguments: string[];
  image: string;
  sparkVersion: string;
  sparkConf: Record<string, string>;
  hadoopConf: Record<string, string>;
  driver: SparkDriverConfig & { cores: number; memory: string };
  executor: SparkExecutorConfig & { cores: number; memory: string; instances: number };
  deps?: SparkDeps;
  timeToLiveSeconds?: number;
}

const TYPES: readonly SparkApplicationType[] = ["Scala", "Java", "Python", "R"];
const KNOWN_KEYS = new Set([
  "type",
  "mainApplicationFile",
  "mainClass",
  "arguments",
  "image",
  "sparkVersion",
  "sparkConf",
  "hadoopConf",
  "driver",
  "executor",
  "deps",
  "timeToLiveSeconds",
  "clusterLabel",
]);
const POD_KEYS = [
  "cores",
  "coreLimit",
  "memory",
  "memoryOverhead",
  "env",
  "labels",
  "annotations",
  "javaOptions",
];
const DEP_KEYS = ["jars", "files", "pyFiles", "packages", "excludePackages", "repositories"] as const;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
/** A URI with a scheme (`local://`, `s3a://`, `file://`…) or an absolute path. */
const FILE_URI = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/.+|\/.+)$/;
/** Spark's byte strings: a whole number and an optional unit (`JavaUtils.byteStringAs`). */
const JVM_SIZE = /^(\d+)(b|k|kb|m|mb|g|gb|t|tb|p|pb)?$/i;
const UNIT: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** Bytes of a Spark memory string ("512m", "2g", "1024" = MiB), or undefined when malformed. */
export function parseSparkMemory(s: unknown): number | undefined {
  if (typeof s !== "string") return undefined;
  const m = JVM_SIZE.exec(s);
  if (!m) return undefined;
  const unit = (m[2] ?? "m").toLowerCase().replace(/b$/, "") || "b";
  return Number(m[1]) * UNIT[unit];
}

/** Spark properties whose values Spark parses, and how (a typo fails the task here, not in the driver). */
const CONF_TYPES: Record<string, "int" | "posint" | "bool" | "size"> = {
  "spark.executor.instances": "int",
  "spark.driver.cores": "posint",
  "spark.executor.cores": "posint",
  "spark.task.cpus": "posint",
  "spark.driver.memory": "size",
  "spark.executor.memory": "size",
  "spark.driver.memoryOverhead": "size",
  "spark.executor.memoryOverhead": "size",
  "spark.driver.maxResultSize": "size",
  "spark.sql.shuffle.partitions": "posint",
  "spark.default.parallelism": "posint",
  "spark.dynamicAllocation.enabled": "bool",
  "spark.dynamicAllocation.minExecutors": "int",
  "spark.dynamicAllocation.maxExecutors": "int",
  "spark.dynamicAllocation.initialExecutors": "int",
  "spark.sql.adaptive.enabled": "bool",
  "spark.eventLog.enabled": "bool",
  "spark.speculation": "bool",
};

export function specError(
  task: TaskSpec,
  field: string,
  message: string,
  hint: string,
  details: Record<string, unknown> = {},
): TernError {
  return new TernError(ErrorCodes.SPEC_INVALID, `task "${task.id.name}": ${field} ${message}`, {
    hint,
    kind: "user",
    details: { task: task.id.name, field, ...details },
  });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function strings(task: TaskSpec, v: unknown, field: string, example: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
    throw specError(task, field, "must be a list of strings", `e.g. ${field.split(".").pop()}: ${example}`);
  return v as string[];
}

function stringRecord(task: TaskSpec, v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string"))
    throw specError(
      task,
      field,
      "must map names to strings",
      `e.g. ${field.split(".").pop()}: { NAME: "value" }`,
    );
  return v as Record<string, string>;
}

function confValue(task: TaskSpec, field: string, key: string, v: unknown): string {
  if (typeof v === "string") return v;
  if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") return String(v);
  throw specError(
    task,
    `${field}["${key}"]`,
    `must be a string, number or boolean, not ${describe(v)}`,
    "Spark properties are flat strings: write nested settings as separate dotted keys",
    { key },
  );
}

function checkConfType(task: TaskSpec, key: string, value: string): void {
  const t = CONF_TYPES[key];
  if (!t) return;
  const field = `custom.sparkConf["${key}"]`;
  if ((t === "int" || t === "posint") && !(/^\d+$/.test(value) && (t === "int" || Number(value) >= 1)))
    throw specError(
      task,
      field,
      `must be a whole number${t === "posint" ? " ≥ 1" : ""}, not "${value}"`,
      `e.g. "${key}": "2"`,
      { key, value },
    );
  if (t === "bool" && value !== "true" && value !== "false")
    throw specError(task, field, `must be true or false, not "${value}"`, `e.g. "${key}": "true"`, {
      key,
      value,
    });
  if (t === "size" && !(parseSparkMemory(value)! > 0))
    throw specError(
      task,
      field,
      `"${value}" is not a Spark size`,
      'write sizes as Spark does: "512m", "2g", "4096k"',
      { key, value },
    );
}

function confMap(
  task: TaskSpec,
  v: unknown,
  field: "custom.sparkConf" | "custom.hadoopConf",
): Record<string, string> {
  if (v === undefined) return {};
  if (!isObject(v))
    throw specError(
      task,
      field,
      `must be an object of properties, not ${describe(v)}`,
      'e.g. { "spark.sql.shuffle.partitions": "8" }',
    );
  const out: Record<string, string> = {};
  for (const [key, raw] of Object.entries(v)) {
    if (!key.trim()) throw specError(task, field, "has an empty property name", "remove it");
    const value = confValue(task, field, key, raw);
    if (field === "custom.sparkConf") {
      if (key.startsWith("spark.hadoop."))
        throw specError(
          task,
          `${field}["${key}"]`,
          "is a Hadoop property",
          `put it in custom.hadoopConf as "${key.slice("spark.hadoop.".length)}"`,
          { key },
        );
      if (!key.startsWith("spark."))
        throw specError(
          task,
          `${field}["${key}"]`,
          'is not a Spark property (Spark ignores keys that do not start with "spark.")',
          "use a spark.* key; Hadoop settings go in custom.hadoopConf",
          { key },
        );
      checkConfType(task, key, value);
    }
    out[key] = value;
  }
  return out;
}

function podConfig(
  task: TaskSpec,
  v: unknown,
  role: "driver" | "executor",
): SparkPodConfig & { instances?: number; serviceAccount?: string } {
  const field = `custom.${role}`;
  if (v === undefined) return {};
  if (!isObject(v))
    throw specError(
      task,
      field,
      `must be an object, not ${describe(v)}`,
      `e.g. ${role}: { cores: 1, memory: "1g" }`,
    );
  const allowed = new Set([...POD_KEYS, role === "driver" ? "serviceAccount" : "instances"]);
  for (const k of Object.keys(v))
    if (!allowed.has(k))
      throw specError(
        task,
        `${field}.${k}`,
        "is not a known field",
        `${role} takes: ${[...allowed].join(", ")}`,
      );
  if (v.cores !== undefined && !(Number.isInteger(v.cores) && (v.cores as number) >= 1))
    throw specError(
      task,
      `${field}.cores`,
      `must be a whole number of cores ≥ 1, not ${JSON.stringify(v.cores)}`,
      'for a fraction of a core, set coreLimit (e.g. "500m") instead',
    );
  if (
    v.coreLimit !== undefined &&
    !(typeof v.coreLimit === "string" && isQuantity(v.coreLimit) && parseQuantity(v.coreLimit)! > 0)
  )
    throw specError(
      task,
      `${field}.coreLimit`,
      `${JSON.stringify(v.coreLimit)} is not a positive CPU quantity`,
      'write it as Kubernetes does: "500m", "1200m", "2"',
    );
  for (const k of ["memory", "memoryOverhead"] as const) {
    const m = v[k];
    if (m === undefined) continue;
    if (!(parseSparkMemory(m)! > 0)) {
      const k8sStyle = typeof m === "string" && /^\d+(\.\d+)?(Ki|Mi|Gi|Ti)$/.test(m);
      throw specError(
        task,
        `${field}.${k}`,
        `${JSON.stringify(m)} is not a positive size in Spark's format`,
        k8sStyle
          ? `Spark sizes use JVM units, not Kubernetes ones: write "${m.replace(/(\d+(?:\.\d+)?)(\w)i$/, (_s, n, u) => `${Math.round(Number(n))}${u.toLowerCase()}`)}"`
          : 'write a whole number and a unit: "512m", "2g"',
        { value: m },
      );
    }
  }
  if (
    role === "executor" &&
    v.instances !== undefined &&
    !(Number.isInteger(v.instances) && (v.instances as number) >= 1)
  )
    throw specError(
      task,
      `${field}.instances`,
      `must be a whole number ≥ 1, not ${JSON.stringify(v.instances)}`,
      "e.g. executor: { instances: 2 }",
    );
  const env = stringRecord(task, v.env, `${field}.env`);
  for (const name of Object.keys(env ?? {}))
    if (!ENV_NAME.test(name))
      throw specError(
        task,
        `${field}.env.${name}`,
        "is not a valid environment variable name",
        "use letters, digits and _",
      );
  stringRecord(task, v.labels, `${field}.labels`);
  stringRecord(task, v.annotations, `${field}.annotations`);
  for (const k of ["javaOptions", "serviceAccount"] as const)
    if (v[k] !== undefined && typeof v[k] !== "string")
      throw specError(task, `${field}.${k}`, "must be a string", `e.g. ${k}: "…"`);
  return v as SparkPodConfig;
}

function inferType(file: string): SparkApplicationType | undefined {
  const path = file.replace(/[?#].*$/, "");
  if (/\.py$/i.test(path)) return "Python";
  if (/\.r$/i.test(path)) return "R";
  if (/\.jar$/i.test(path)) return "Scala";
  return undefined;
}

/**
 * Checks `custom` of a `spark` task (and the options it falls back on) and returns it with
 * defaults applied. Throws a `TERN_E_SPEC_INVALID` error naming the task and field.
 */
export function sparkConfig(task: TaskSpec, opts: ResolvedSparkOptions): ResolvedSparkConfig {
  // A null field is an unset one (what a JSON round trip makes of `undefined`).
  const c = Object.fromEntries(Object.entries(task.custom ?? {}).filter(([, v]) => v !== null));
  for (const k of Object.keys(c))
    if (!KNOWN_KEYS.has(k))
      throw specError(
        task,
        `custom.${k}`,
        "is not a field of a spark task",
        `fields: ${[...KNOWN_KEYS].join(", ")}${k === "restartPolicy" ? " (Tern retries attempts itself; the application always has restartPolicy Never)" : ""}`,
      );
  const file = c.mainApplicationFile;
  if (file === undefined || file === "")
    throw specError(
      task,
      "custom.mainApplicationFile",
      "is missing: Spark needs the application's main file",
      'give custom: { mainApplicationFile: "local:///opt/app/main.py" } (a path inside the image, or s3a://…, file://…)',
    );
  if (typeof file !== "string" || !FILE_URI.test(file))
    throw specError(
      task,
      "custom.mainApplicationFile",
      `${JSON.stringify(file)} is not a URI or absolute path`,
      "write local:///opt/app/main.py for a file in the image, or a remote URI such as s3a://bucket/app.jar",
      { value: file },
    );
  let type = c.type as SparkApplicationType | undefined;
  if (type !== undefined && !TYPES.includes(type))
    throw specError(
      task,
      "custom.type",
      `${JSON.stringify(type)} is not a Spark application type`,
      `use one of ${TYPES.join(", ")}`,
    );
  type ??= inferType(file);
  if (!type)
    throw specError(
      task,
      "custom.type",
      `is missing and cannot be told from "${file}"`,
      `give custom.type: one of ${TYPES.join(", ")}`,
    );
  if (c.mainClass !== undefined && (typeof c.mainClass !== "string" || !c.mainClass))
    throw specError(task, "custom.mainClass", "must be a class name", 'e.g. mainClass: "org.acme.Main"');
  if (c.mainClass !== undefined && (type === "Python" || type === "R"))
    throw specError(
      task,
      "custom.mainClass",
      `is set but the application is ${type}`,
      "mainClass only applies to Scala and Java applications: remove it, or fix custom.type",
    );
  const args = strings(task, c.arguments, "custom.arguments", '["--date", "{{.inputs.date}}"]') ?? [];
  const image = c.image ?? task.metadata.image ?? opts.defaultImage;
  if (image !== undefined && (typeof image !== "string" || !image))
    throw specError(task, "custom.image", "must be an image name", 'e.g. image: "apache/spark:3.5.1"');
  if (!image)
    throw specError(
      task,
      "image",
      "is not set and the spark plugin has no defaultImage",
      "give custom.image (or the task's image), or defaultImage in the spark() options",
    );
  const sparkVersion = c.sparkVersion ?? opts.sparkVersion;
  if (typeof sparkVersion !== "string" || !/^\d+\.\d+(\.\d+)?/.test(sparkVersion))
    throw specError(
      task,
      "custom.sparkVersion",
      `${JSON.stringify(sparkVersion)} is not a Spark version`,
      'e.g. sparkVersion: "3.5.1"',
    );
  const sparkConf = { ...opts.sparkConf, ...confMap(task, c.sparkConf, "custom.sparkConf") };
  const hadoopConf = { ...opts.hadoopConf, ...confMap(task, c.hadoopConf, "custom.hadoopConf") };
  const driver = podConfig(task, c.driver, "driver");
  const executor = podConfig(task, c.executor, "executor");
  let deps: SparkDeps | undefined;
  if (c.deps !== undefined) {
    if (!isObject(c.deps))
      throw specError(
        task,
        "custom.deps",
        "must be an object",
        'e.g. deps: { jars: ["local:///opt/jars/x.jar"] }',
      );
    for (const k of Object.keys(c.deps))
      if (!(DEP_KEYS as readonly string[]).includes(k))
        throw specError(
          task,
          `custom.deps.${k}`,
          "is not a known dependency list",
          `deps takes: ${DEP_KEYS.join(", ")}`,
        );
    deps = {};
    for (const k of DEP_KEYS) {
      const list = strings(task, c.deps[k], `custom.deps.${k}`, '["…"]');
      if (list) deps[k] = list;
    }
    for (const p of deps.packages ?? [])
      if (!/^[^:\s]+:[^:\s]+:[^:\s]+$/.test(p))
        throw specError(
          task,
          "custom.deps.packages",
          `"${p}" is not a Maven coordinate`,
          'write group:artifact:version, e.g. "org.apache.spark:spark-avro_2.12:3.5.1"',
        );
  }
  if (
    c.timeToLiveSeconds !== undefined &&
    !(Number.isInteger(c.timeToLiveSeconds) && (c.timeToLiveSeconds as number) >= 0)
  )
    throw specError(
      task,
      "custom.timeToLiveSeconds",
      "must be a whole number of seconds ≥ 0",
      "e.g. timeToLiveSeconds: 3600",
    );
  if (task.metadata.resources !== undefined)
    throw specError(
      task,
      "resources",
      "is not used by spark tasks",
      "size the driver and executors with custom.driver and custom.executor (cores, coreLimit, memory, instances)",
    );
  for (const k of Object.keys(task.metadata.env))
    if (!ENV_NAME.test(k))
      throw specError(
        task,
        `env.${k}`,
        "is not a valid environment variable name",
        "use letters, digits and _",
      );
  secretsOf(task);
  const templated: [string, string[]][] = [
    ["custom.mainApplicationFile", [file]],
    ["custom.arguments", args],
    ["custom.sparkConf", Object.values(sparkConf)],
    ["custom.hadoopConf", Object.values(hadoopConf)],
  ];
  for (const [field, list] of templated) {
    const unknown = unknownTemplateInputs(task, list);
    if (unknown.length === 0) continue;
    const inputs = Object.keys(task.interface.inputs);
    throw specError(
      task,
      field,
      `refers to {{.inputs.${unknown[0]}}}, which is not an input of the task`,
      `inputs are: ${inputs.join(", ") || "(none)"}`,
      { input: unknown[0] },
    );
  }
  return {
    type,
    mainApplicationFile: file,
    mainClass: c.mainClass as string | undefined,
    arguments: args,
    image,
    sparkVersion,
    sparkConf,
    hadoopConf,
    driver: { ...driver, cores: driver.cores ?? 1, memory: driver.memory ?? "512m" },
    executor: {
      ...executor,
      cores: executor.cores ?? 1,
      memory: executor.memory ?? "512m",
      instances: (executor as SparkExecutorConfig).instances ?? 1,
    },
    deps,
    timeToLiveSeconds: c.timeToLiveSeconds as number | undefined,
  };
}
