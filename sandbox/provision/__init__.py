"""Provision a stack from its SAM/CloudFormation template against the sandbox's local AWS endpoint.

`provision_stack(endpoint_url, Path("template.yaml"), "rollout")` transforms the template with
aws-sam-translator, then creates every resource through the AWS APIs, in dependency order, with
intrinsic functions and conditions resolved. A resource type or property with no handler stops the
stack before anything is created, naming the resource.
"""

from sandbox.provision.errors import (
    ProvisionError,
    ResourceCreationError,
    TemplateError,
    UnsupportedResourceError,
)
from sandbox.provision.resources import HANDLERS
from sandbox.provision.stack import (
    ProvisionedResource,
    ProvisionedStack,
    StackOutputs,
    StackPlan,
    plan_stack,
    provision_stack,
)

__all__ = [
    "HANDLERS",
    "ProvisionError",
    "ProvisionedResource",
    "ProvisionedStack",
    "ResourceCreationError",
    "StackOutputs",
    "StackPlan",
    "TemplateError",
    "UnsupportedResourceError",
    "plan_stack",
    "provision_stack",
]
