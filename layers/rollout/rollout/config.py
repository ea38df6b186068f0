"""Settings the functions read from their environment (set by template.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple


class Settings(NamedTuple):
    """What a function reads from its environment (template.yaml sets it): tables, topic, bucket,
    CodeDeploy, hooks and the other functions of the stack."""

    stack_name: str
    ledger_table: str
    idempotency_table: str
    topic_arn: str
    artifact_bucket: str
    codedeploy_application: str
    codedeploy_role_arn: str
    pre_traffic_hook: str
    post_traffic_hook: str
    default_deployment_config: str
    region: str
    # Per-release canary alarms are named <prefix>-<function>-v<version>-<metric>; IAM scopes on it.
    canary_alarm_prefix: str = "rollout-canary"
    # What the reconciler hands lost work back to, and where undelivered events wait.
    artifact_deployer_function: str = ""
    deployment_events_function: str = ""
    reconciler_function: str = ""
    undelivered_events_queue_url: str = ""
    # What answers approval gates (and what the reconciler hands expired gates to).
    deployment_actions_function: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        return cls.from_mapping(os.environ)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Settings from environment variables: this function's own, or (for the `rollout` command,
        which acts as the control plane does) the artifact deployer's, read from Lambda."""
        stack_name = env.get("STACK_NAME", "rollout")
        return cls(
            stack_name=stack_name,
            ledger_table=env.get("LEDGER_TABLE", ""),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
            topic_arn=env.get("NOTIFICATION_TOPIC_ARN", ""),
            artifact_bucket=env.get("ARTIFACT_BUCKET", ""),
            codedeploy_application=env.get("CODEDEPLOY_APPLICATION", ""),
            codedeploy_role_arn=env.get("CODEDEPLOY_ROLE_ARN", ""),
            pre_traffic_hook=env.get("PRE_TRAFFIC_HOOK", ""),
            post_traffic_hook=env.get("POST_TRAFFIC_HOOK", ""),
            default_deployment_config=env.get("DEFAULT_DEPLOYMENT_CONFIG", "Canary10Percent5Minutes"),
            canary_alarm_prefix=env.get("CANARY_ALARM_PREFIX") or f"{stack_name}-canary",
            artifact_deployer_function=env.get("ARTIFACT_DEPLOYER_FUNCTION", ""),
            deployment_events_function=env.get("DEPLOYMENT_EVENTS_FUNCTION", ""),
            reconciler_function=env.get("RECONCILER_FUNCTION", ""),
            undelivered_events_queue_url=env.get("UNDELIVERED_EVENTS_QUEUE_URL", ""),
            deployment_actions_function=env.get("DEPLOYMENT_ACTIONS_FUNCTION", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
