"""What a Tern job needs, in the standard library only: its inputs, its output, its error.

Tern hands a job its inputs as a JSON object at TERN_INPUTS_URI (and TERN_INPUTS_PATH on a
local blob store) and reads back the JSON value written to TERN_OUTPUTS_PATH. A failure with
a message of its own goes to TERN_ERROR_PATH. Dataframes arrive as references: a `uri` to
JSON lines.
"""
import json
import os
from urllib.parse import unquote, urlparse


def local_path(uri):
    if not uri.startswith("file:"):
        raise SystemExit(f"this example reads local blobs only, not {uri}")
    return unquote(urlparse(uri).path)


def inputs():
    with open(os.environ["TERN_INPUTS_PATH"]) as f:
        return json.load(f)


def rows(ref):
    """The rows of a dataframe reference (JSON lines)."""
    with open(local_path(ref["uri"])) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_output(value):
    path = os.environ["TERN_OUTPUTS_PATH"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def fail(message):
    path = os.environ["TERN_ERROR_PATH"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"code": "TERN_E_TASK_FAILED", "kind": "user", "message": message}, f)
    raise SystemExit(1)
