"""ApiFirewall: AWS WAF in front of the REST API's stage.

A REGIONAL web ACL, associated with the stage, that allows by default and evaluates in
order: AWS's IP reputation list (addresses known for bots and reconnaissance), the known
bad inputs (Log4Shell, Java deserialization, ...), the common rule set (OWASP-style
injection, LFI/RFI, XSS), then a rate-based rule blocking any single IP address over the
environment's ``wafRateLimit`` requests per 5 minutes. Every method already requires SigV4,
so WAF's job is to keep unauthenticated floods and exploit probes away from API Gateway and
the functions (and from the account's API Gateway quotas).

The common rule set's ``SizeRestrictions_BODY`` (bodies over 8 KB) only counts: model and
dataset registrations carry per-file manifests larger than that, and API Gateway bounds
bodies at 10 MB while the functions validate them against the contracts.

Logs go to a CloudWatch log group that WAF requires to be named ``aws-waf-logs-...``, with
the environment's retention and removal policy, unencrypted with a customer key like every
other log group of the stacks (CloudWatch Logs encrypts at rest). Only requests a rule
blocked or counted are logged (the API's access log already records every request), and the
SigV4 headers (``authorization``, ``x-amz-security-token``: a session token is a bearer
credential until it expires) are redacted.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# AWS managed rule groups, in evaluation order: (name, rules whose action is only counted).
MANAGED_RULE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AWSManagedRulesAmazonIpReputationList", ()),
    ("AWSManagedRulesKnownBadInputsRuleSet", ()),
    ("AWSManagedRulesCommonRuleSet", ("SizeRestrictions_BODY",)),
)
RATE_LIMIT_RULE = "RateLimitPerIp"
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
REDACTED_HEADERS = ("authorization", "x-amz-security-token")


def waf_log_group_name(environment: str) -> str:
    return f"{WAF_LOG_GROUP_PREFIX}modelops-{environment}-api"


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )


class ApiFirewall(Construct):
    """A web ACL on ``stage``, and its logging."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: apigw.Stage,
        environment: str,
        rate_limit: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in counted
                        ]
                        or None,
                    )
                ),
                visibility_config=_visibility(name),
            )
            for priority, (name, counted) in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name=RATE_LIMIT_RULE,
                priority=len(rules),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        evaluation_window_sec=300,
                        limit=rate_limit,
                    )
                ),
                visibility_config=_visibility(RATE_LIMIT_RULE),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            # Named like its metrics (dimension WebACL), so dashboards and logs agree.
            name=f"modelops-{environment}-api",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description=f"ModelOps {environment} API: managed rule groups and a per-IP rate limit.",
            rules=rules,
            visibility_config=_visibility(f"modelops-{environment}-api"),
        )
        self.association = wafv2.CfnWebACLAssociation(
            self,
            "StageAssociation",
            resource_arn=stage.stage_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )

        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=waf_log_group_name(environment),
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            # WAF wants the group's ARN without the ":*" that LogGroup.log_group_arn ends with.
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=self.log_group.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in REDACTED_HEADERS
            ],
            logging_filter={
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [
                            {"ActionCondition": {"Action": action}}
                            for action in ("BLOCK", "COUNT", "EXCLUDED_AS_COUNT")
                        ],
                    }
                ],
            },
        )
