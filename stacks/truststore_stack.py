"""TruststoreStack: the bucket holding the API's mutual TLS truststore.

Built only for an environment with a ``customDomain``. API Gateway reads the truststore
(a PEM bundle of the CA certificates whose client certificates the API accepts) from S3
when the custom domain is created or updated, so the object must exist before the service
stack's domain does. The bucket therefore lives in a stack of its own, deployed (and
filled by an operator) before the service stack: it is stateful (kept, and termination
protected, outside dev, like the data stack), and the service stack stays replaceable on
its own. The data stack is not used, so that enabling mTLS never touches the registry's
stack.

The bucket is versioned (a domain can pin ``truststoreVersion``; an earlier truststore can
be restored), SSL-only, private, and encrypted with SSE-S3: it holds public CA certificates,
not secrets, and S3-managed encryption needs no key grant to API Gateway.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.environment import EnvironmentSettings

BUCKET_LOGICAL_ID = "TruststoreBucket"


class TruststoreStack(Stack):
    """The truststore bucket, exported by name for the service stack's custom domain."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if settings.custom_domain is None:
            raise ValueError(f"environment {settings.name!r} has no customDomain")
        self.bucket = s3.Bucket(
            self,
            BUCKET_LOGICAL_ID,
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=settings.removal_policy,
        )
        CfnOutput(
            self,
            f"{BUCKET_LOGICAL_ID}Name",
            value=self.bucket.bucket_name,
            export_name=self.export_name(),
            description="Upload the mTLS truststore (PEM CA bundle) here as "
            f"{settings.custom_domain.truststore_key} before deploying the service stack.",
        )

    def export_name(self) -> str:
        """The CloudFormation export publishing the bucket's name."""
        return f"{self.stack_name}:{BUCKET_LOGICAL_ID}:Name"
