"""Make a provisioned sandbox stack answer CloudFormation DescribeStacks, as the `rollout` command expects.

When the sandbox already answers DescribeStacks for the stacks it provisions, this does nothing.
Otherwise it records the outputs through CloudFormation itself: a stack holding one placeholder topic and
the provisioned outputs as literal values.
"""

from __future__ import annotations

import json

import boto3
from botocore.exceptions import ClientError


def ensure_describable(endpoint_url: str, stack_name: str, outputs: dict[str, str]) -> None:
    cfn = boto3.client(
        "cloudformation",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        found = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        if found and found[0].get("Outputs"):
            return
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
