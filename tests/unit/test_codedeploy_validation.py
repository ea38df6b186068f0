import pytest

from sandbox.codedeploy.models import can_move, is_deployment_id, new_deployment_id
from sandbox.codedeploy.validation import RequestInvalid, validate


@pytest.mark.parametrize(
    ("operation", "body", "code"),
    [
        ("CreateApplication", {}, "ApplicationNameRequiredException"),
        (
            "CreateApplication",
            {"applicationName": "a", "computePlatform": "Mainframe"},
            "InvalidComputePlatformException",
        ),
        (
            "CreateDeploymentGroup",
            {"applicationName": "a", "deploymentGroupName": "g"},
            "RoleRequiredException",
        ),
        ("UpdateDeploymentGroup", {"applicationName": "a"}, "DeploymentGroupNameRequiredException"),
        ("GetDeployment", {}, "DeploymentIdRequiredException"),
        ("BatchGetDeployments", {}, "DeploymentIdRequiredException"),
        ("GetDeploymentTarget", {"deploymentId": "d-AAAAAAAAA"}, "DeploymentTargetIdRequiredException"),
        ("ListDeployments", {"includeOnlyStatuses": ["Sleeping"]}, "InvalidDeploymentStatusException"),
        (
            "PutLifecycleEventHookExecutionStatus",
            {"deploymentId": "d-AAAAAAAAA", "status": "Maybe"},
            "InvalidLifecycleEventHookExecutionStatusException",
        ),
        (
            "CreateDeployment",
            {"applicationName": "a", "revision": {"revisionType": "Floppy"}},
            "InvalidRevisionException",
        ),
        (
            "CreateDeploymentGroup",
            {
                "applicationName": "a",
                "deploymentGroupName": "g",
                "serviceRoleArn": "arn:aws:iam::1:role/r",
                "autoRollbackConfiguration": {"enabled": True, "events": ["WHENEVER"]},
            },
            "InvalidAutoRollbackConfigException",
        ),
        (
            "StopDeployment",
            {"deploymentId": "d-AAAAAAAAA", "autoRollbackEnabled": "yes"},
            "InvalidInputException",
        ),
        ("GetApplication", {"applicationName": "a", "colour": "blue"}, "InvalidInputException"),
    ],
)
def test_requests_are_checked_with_the_operations_own_codes(operation, body, code):
    with pytest.raises(RequestInvalid) as refused:
        validate(operation, body)
    assert refused.value.code == code


def test_a_valid_request_passes():
    validate(
        "CreateDeployment",
        {
            "applicationName": "a",
            "deploymentGroupName": "g",
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": "x", "sha256": "y"}},
            "autoRollbackConfiguration": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        },
    )


def test_deployment_ids_look_like_aws_ones():
    ids = {new_deployment_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_deployment_id(i) for i in ids)
    assert not is_deployment_id("d-abcdefghi")
    assert not is_deployment_id("d-ABCDEFGH")
    assert not is_deployment_id("x-ABCDEFGHI")


def test_status_transitions():
    assert can_move("Created", "InProgress")
    assert can_move("InProgress", "Stopped")
    assert not can_move("Succeeded", "Failed")
    assert not can_move("Failed", "InProgress")
