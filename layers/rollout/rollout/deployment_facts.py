"""What CodeDeploy, Lambda and CloudWatch say about a deployment, read for the deployment events'
`apply_state` and for the reconciler's every run.

Apart from `deployment_events` so that the reconciler loads the applying side only when it repairs.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout import aws, codedeploy_ops, lambda_ops
from rollout.observability import logger
from rollout.targets import AliasRouting


class DeploymentFacts:
    """What CodeDeploy, Lambda and CloudWatch say about a deployment (read-only, through the adapters).

    Reads that fail are logged and answered with "unknown" (None or empty): the outcome is then
    decided on what is known, and the reconciler looks again later.
    """

    def deployment(self, deployment_id: str) -> dict[str, Any] | None:
        try:
            return codedeploy_ops.get_deployment(deployment_id)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "could not read the deployment",
                extra={"deployment_id": deployment_id, "error_code": aws.error_code(exc), "error": str(exc)},
            )
            return None

    def deployments(self, deployment_ids: list[str]) -> dict[str, dict[str, Any]]:
        """deploymentInfo by id; ids CodeDeploy does not know are absent."""
        return codedeploy_ops.get_deployments(deployment_ids)

    def alias(self, function: str, alias: str) -> AliasRouting | None:
        try:
            return lambda_ops.get_alias(function, alias or "live")
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not read the alias", extra={"function": function, "error": str(exc)})
            return None

    def firing_alarms(self, names: list[str]) -> list[str]:
        from rollout import canary_alarms  # read only for a deployment an alarm stopped

        try:
            return canary_alarms.alarms_in_alarm(names)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not read alarm states", extra={"error": str(exc)})
            return []
