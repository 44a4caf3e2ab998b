"""CDK entry point: builds the stacks and applies cdk-nag. No logic lives here.

``npx cdk synth`` runs this file (see ``cdk.json``); tests call ``build_app()`` in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from stacks import nag
from stacks.data_stack import DataStack
from stacks.environment import EnvironmentSettings, project_context
from stacks.service_stack import ServiceStack


def build_app(*, outdir: str | None = None, context: Mapping[str, Any] | None = None) -> App:
    """The CDK app for the environment selected by the ``environment`` context."""
    app = App(outdir=outdir, context={**project_context(), **(context or {})})
    settings = EnvironmentSettings.of(app)
    data = DataStack(app, settings.stack_name("data"), settings=settings)
    service = ServiceStack(app, settings.stack_name("service"), data=data, settings=settings)
    nag.acknowledge(data, service)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
