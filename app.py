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
from stacks.truststore_stack import TruststoreStack


def build_app(*, outdir: str | None = None, context: Mapping[str, Any] | None = None) -> App:
    """The CDK app for the environment selected by the ``environment`` context."""
    app = App(outdir=outdir, context={**project_context(), **(context or {})})
    settings = EnvironmentSettings.of(app)
    # The stateful stacks refuse `cdk destroy` and stack deletion where the settings say.
    protection = settings.termination_protection
    data = DataStack(
        app, settings.stack_name("data"), settings=settings, termination_protection=protection
    )
    truststore = (
        None
        if settings.custom_domain is None
        else TruststoreStack(
            app,
            settings.stack_name("truststore"),
            settings=settings,
            termination_protection=protection,
        )
    )
    service = ServiceStack(
        app, settings.stack_name("service"), data=data, settings=settings, truststore=truststore
    )
    nag.acknowledge(data, service)
    if truststore is not None:
        nag.acknowledge_truststore(truststore)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
