"""Generate ``schemas/`` from the code: the OpenAPI document of every REST function (by the
Powertools resolver), JSON Schemas of the contracts, and the error-code table.

``make schemas`` writes them; tests/infra/test_schema_drift.py fails when they drift.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelops import contracts as contracts_package
from modelops import platform
from modelops.adapters.eventbridge import SOURCE
from modelops.contracts import registry
from modelops.contracts.events import EVENTS
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
        merge_openapi(document, part, fn.name)
    document["components"]["schemas"]["ErrorResponse"] = registry.ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, schema in document["components"]["schemas"]["ErrorResponse"].pop("$defs", {}).items():
        document["components"]["schemas"].setdefault(name, schema)
    return document


def merge_openapi(document: dict[str, Any], part: dict[str, Any], function: str) -> None:
    """Add another function's paths and component schemas to ``document``. A path belongs to
    one function; a schema name two functions use must mean the same schema."""
    paths = document.setdefault("paths", {})
    for path, operations in part.get("paths", {}).items():
        if path in paths:
            raise ValueError(f"{function} serves {path}, which another function serves too")
        paths[path] = operations
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in part.get("components", {}).get("schemas", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"{function} defines schema {name} unlike another function")


def contracts() -> dict[str, dict[str, Any]]:
    """JSON Schema of every contract model, from every module of modelops.contracts."""
    models: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(contracts_package.__path__):
        module = importlib.import_module(f"{contracts_package.__name__}.{info.name}")
        models |= {
            name: value
            for name, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, BaseModel)
            and value.__module__ == module.__name__
        }
    return {name: model.model_json_schema() for name, model in sorted(models.items())}


def render() -> dict[Path, str]:
    files = {
        SCHEMAS / "openapi.json": openapi(),
        SCHEMAS / "errors.json": dict(sorted(ERROR_STATUS.items())),
    }
    for name, schema in contracts().items():
        files[SCHEMAS / "contracts" / f"{name}.json"] = schema
    for detail_type, model in EVENTS.items():
        schema = {
            "title": detail_type,
            "x-source": SOURCE,
            **model.model_json_schema(mode="serialization"),
        }
        files[SCHEMAS / "events" / f"{detail_type.lower().replace(' ', '-')}.json"] = schema
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
