"""Powertools Logger, Tracer and Metrics, configured the same way for every function."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

# X-Ray subsegments for every AWS SDK call. Patching everything X-Ray knows would also
# import requests and friends, which handlers never use: 40 ms of cold start for nothing.
TRACED_MODULES = ("botocore",)


def instruments() -> tuple[Logger, Tracer, Metrics]:
    return Logger(), Tracer(patch_modules=TRACED_MODULES), Metrics()
