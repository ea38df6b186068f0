"""Errors raised while provisioning a stack; each names the resource (and property) at fault."""

from __future__ import annotations


class ProvisionError(Exception):
    """The stack could not be provisioned. The message names what failed and why."""


class TemplateError(ProvisionError):
    """The template is invalid or uses something this provisioner cannot honour."""


class UnsupportedResourceError(TemplateError):
    """One or more resources have a type, or a property, the provisioner has no handler for."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cannot provision: " + "; ".join(problems))


class ResourceCreationError(ProvisionError):
    """Creating one resource failed; `created` lists the logical ids created before it."""

    def __init__(self, logical_id: str, resource_type: str, cause: BaseException, created: list[str]) -> None:
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.created = created
        super().__init__(f"creating {logical_id} ({resource_type}) failed: {cause}")
