"""The versioned JSON Schema of result.json, generated from the dataclasses.

``python -m callsense.result.schema --write`` regenerates the shipped file; tests fail when the
shipped schema and the dataclasses disagree, so a change to the result is always a visible change
to the schema (bump ``SCHEMA_VERSION`` for incompatible ones).
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

from callsense.result.model import SCHEMA_VERSION

SCHEMA_FILE = f"call-analysis-{SCHEMA_VERSION}.json"


def generate_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from callsense.result.model import CallAnalysis

    schema = TypeAdapter(CallAnalysis).json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://callsense.dev/schema/{SCHEMA_FILE}"
    schema["title"] = f"callsense CallAnalysis {SCHEMA_VERSION}"
    return schema


def load_schema() -> dict[str, Any]:
    """The schema shipped in the package."""
    text = resources.files("callsense.result").joinpath("schema", SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def validate(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``data`` does not follow the shipped schema."""
    import jsonschema

    jsonschema.validate(data, load_schema())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = json.dumps(generate_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if "--write" in argv:
        target = resources.files("callsense.result").joinpath("schema", SCHEMA_FILE)
        with resources.as_file(target) as path:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
