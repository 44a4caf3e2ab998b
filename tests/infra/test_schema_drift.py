"""schemas/ is generated from the code and committed; it must match what the code says."""

from __future__ import annotations

import json

import pytest

from modelops import platform
from scripts.generate_schemas import merge_openapi, openapi, render


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


def test_openapi_merges_every_rest_function_and_refuses_conflicts() -> None:
    document = openapi()
    for fn in platform.FUNCTIONS:
        for segment in fn.api_routes:
            assert any(path.startswith(f"/{segment}") for path in document["paths"]), segment
    assert {"VerifyResponse", "ExportResponse", "ErrorResponse"} <= set(
        document["components"]["schemas"]
    )
    part = {"paths": {"/audit/verify": {}}, "components": {"schemas": {}}}
    with pytest.raises(ValueError, match="/audit/verify"):
        merge_openapi(document, part, "other-api")
    part = {"paths": {}, "components": {"schemas": {"VerifyResponse": {"type": "string"}}}}
    with pytest.raises(ValueError, match="VerifyResponse"):
        merge_openapi(document, part, "other-api")
