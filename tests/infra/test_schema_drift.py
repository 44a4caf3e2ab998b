"""schemas/ is generated from the code and committed; it must match what the code says."""

from __future__ import annotations

import json

from scripts.generate_schemas import render


def test_committed_schemas_match_the_code() -> None:
    stale = [
        str(path)
        for path, text in render().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `make schemas` and commit: {stale}"


def test_openapi_requires_sigv4_and_documents_typed_errors_on_every_operation() -> None:
    document = json.loads(
        next(text for path, text in render().items() if path.name == "openapi.json")
    )
    assert document["security"] == [{"sigv4": []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "404"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (
                    method,
                    path,
                    status,
                )
