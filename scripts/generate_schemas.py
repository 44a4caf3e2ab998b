"""Generate ``schemas/`` from the code: the OpenAPI document of every REST function (by the
Powertools resolver), JSON Schemas of the contracts, and the error-code table.

``make schemas`` writes them; tests/infra/test_schema_drift.py fails when they drift.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelops import platform
from modelops.contracts import registry
from modelops.errors import ERROR_STATUS

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
TITLE = "ILLUVRSE ModelOps API"
API_VERSION = "0.1.0"
SIGV4 = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": "AWS Signature Version 4 (service execute-api): IAM principals only.",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
}


def openapi() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "functions"))
    document: dict[str, Any] = {}
    for fn in platform.FUNCTIONS:
        if not fn.api_routes:
            continue
        module = importlib.import_module(fn.handler.rsplit(".", 1)[0])
        part = json.loads(
            module.app.get_openapi_json_schema(
                title=TITLE,
                version=API_VERSION,
                description="Registry, lineage, training, serving and audit for ILLUVRSE models.",
                security_schemes=SIGV4,
                security=[{"sigv4": []}],
            )
        )
        if not document:
            document = part
            continue
        document["paths"].update(part["paths"])
        document["components"]["schemas"].update(part["components"]["schemas"])
    document["components"]["schemas"]["ErrorResponse"] = registry.ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, schema in document["components"]["schemas"]["ErrorResponse"].pop("$defs", {}).items():
        document["components"]["schemas"].setdefault(name, schema)
    return document


def contracts() -> dict[str, dict[str, Any]]:
    models = {
        name: value
        for name, value in vars(registry).items()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == registry.__name__
    }
    return {name: model.model_json_schema() for name, model in sorted(models.items())}


def render() -> dict[Path, str]:
    files = {
        SCHEMAS / "openapi.json": openapi(),
        SCHEMAS / "errors.json": dict(sorted(ERROR_STATUS.items())),
    }
    for name, schema in contracts().items():
        files[SCHEMAS / "contracts" / f"{name}.json"] = schema
    return {
        path: json.dumps(value, indent=2, sort_keys=True) + "\n" for path, value in files.items()
    }


def main() -> int:
    rendered = render()
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(rendered)} schema files to {SCHEMAS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
