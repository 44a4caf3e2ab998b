"""docs/api.md and docs/events.md are generated from schemas/ and committed; they must match
what scripts/generate_docs.py writes now (as schemas/ must match the code)."""

from __future__ import annotations

import json

from scripts.generate_docs import METHODS, SCHEMAS, render, route_anchor


def test_committed_docs_match_the_schemas() -> None:
    stale = [
        str(path)
        for path, text in render().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `python scripts/generate_docs.py` (make docs) and commit: {stale}"


def test_every_route_and_error_code_is_in_the_api_reference() -> None:
    api = next(text for path, text in render().items() if path.name == "api.md")
    document = json.loads((SCHEMAS / "openapi.json").read_text())
    missing = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
        and (f"### `{method.upper()} {path}`" not in api or route_anchor(method, path) not in api)
    ]
    assert missing == []
    errors = json.loads((SCHEMAS / "errors.json").read_text())
    assert [code for code in errors if f"| `{code}` | {errors[code]} |" not in api] == []


def test_every_event_schema_is_in_the_catalogue() -> None:
    events = next(text for path, text in render().items() if path.name == "events.md")
    for schema_file in sorted((SCHEMAS / "events").glob("*.json")):
        schema = json.loads(schema_file.read_text())
        assert f'<a id="event-{schema_file.stem}"></a>' in events, schema_file.name
        for field in schema.get("properties", {}):
            assert f"| `{field}` |" in events, (schema_file.name, field)


def test_rendering_is_deterministic() -> None:
    assert render() == render()
