"""What a security reviewer checks in template.yaml, on the template as written and as SAM translates it."""

from __future__ import annotations

import ast
import copy
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from tests.support import aws_stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Actions AWS authorizes only on "*": they name no resource a policy could narrow to.
#   xray:PutTraceSegments, xray:PutTelemetryRecords: trace data has no resource ARN (Tracing: Active).
#   cloudwatch:GetMetricData: metrics are not resources; the canary analysis reads AWS/Lambda metrics.
#   lambda:ListEventSourceMappings: no resource type in the Service Authorization Reference; version
#   retention reads which versions a mapping invokes.
ACTIONS_THAT_NEED_STAR = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "cloudwatch:GetMetricData",
        "lambda:ListEventSourceMappings",
    }
)

# Lambda actions that read or change a target function: only functions that opted in may be touched.
TARGET_FUNCTION_ACTIONS = frozenset(
    {
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:ListTags",
        "lambda:GetAlias",
        "lambda:CreateAlias",
        "lambda:UpdateAlias",
        "lambda:DeleteAlias",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:InvokeFunction",
        "lambda:GetProvisionedConcurrencyConfig",
        "lambda:ListVersionsByFunction",
        "lambda:ListAliases",
        "lambda:ListProvisionedConcurrencyConfigs",
        "lambda:DeleteFunction",
    }
)
MANAGED_TAG_CONDITION = {"StringEquals": {"aws:ResourceTag/rollout:managed": "true"}}

FUNCTION_DIRS = {
    "ArtifactDeployer": "artifact_deployer",
    "PreTrafficHook": "pre_traffic_hook",
    "PostTrafficHook": "post_traffic_hook",
    "HookFailureReporter": "hook_failure_reporter",
    "DeploymentEvents": "deployment_events",
    "Reconciler": "reconciler",
    "SlackNotifier": "slack_notifier",
    "DeploymentActions": "deployment_actions",
    "SlackInteractions": "slack_interactions",
}


class _NoManagedPolicies(ManagedPolicyLoader):
    """The template names no AWS managed policy; a lookup would mean one slipped in."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


def _plain(node: Any) -> Any:
    """cfn-lint's YAML nodes as plain dicts, lists and strings."""
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _plain(cfn_yaml.load(str(TEMPLATE_PATH)))


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    # The translator asks boto3 for a region to pick the partition; module fixtures run before the
    # per-test fake environment exists.
    packaged = copy.deepcopy(template)
    # What `sam package` does before the transform runs: local code folders become S3 objects.
    for res in packaged["Resources"].values():
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://rollout-packaging/{props[key].strip('/')}.zip"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", aws_stack.REGION)
        return transform(packaged, {}, _NoManagedPolicies())


def resources_of(tpl: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in tpl["Resources"].items() if res["Type"] == rtype}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flatten_statements(statements: Any) -> Iterator[dict[str, Any]]:
    """Statements of a policy document, with both branches of any Fn::If."""
    for stmt in as_list(statements):
        if isinstance(stmt, dict) and "Fn::If" in stmt:
            for branch in stmt["Fn::If"][1:]:
                if branch != {"Ref": "AWS::NoValue"}:
                    yield from flatten_statements(branch)
        else:
            yield stmt


def policy_statements(tpl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every identity-policy statement in the template."""
    for name, res in tpl["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for stmt in flatten_statements(policy["PolicyDocument"]["Statement"]):
                    yield name, stmt
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            for stmt in flatten_statements(props["PolicyDocument"]["Statement"]):
                yield name, stmt


def allow_statements(tpl: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(owner, s) for owner, s in policy_statements(tpl) if s["Effect"] == "Allow"]


def role_statements(tpl: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Everything a role is allowed: its inline policies and the managed policies of this template."""
    props = tpl["Resources"][role]["Properties"]
    owners = {role} | {arn["Ref"] for arn in props.get("ManagedPolicyArns", [])}
    return [s for owner, s in allow_statements(tpl) if owner in owners]


def actions_of(stmt: dict[str, Any]) -> set[str]:
    return set(as_list(stmt["Action"]))


def allowed(tpl: dict[str, Any], role: str, action: str) -> list[dict[str, Any]]:
    return [s for s in role_statements(tpl, role) if action in actions_of(s)]


def mentions(value: Any, name: str) -> bool:
    """Whether a Ref/GetAtt/Sub anywhere in value names the resource or parameter `name`."""
    text = json.dumps(value)
    return bool(
        re.search(rf'"Ref": "{name}"', text)
        or re.search(rf'"Fn::GetAtt": \["{name}"', text)
        or re.search(rf"\$\{{{name}(\.[A-Za-z]+)?\}}", text)
    )


def deployment_actions_by_name(tpl: dict[str, Any]) -> dict[str, str]:
    """DeploymentActions' ARN built from its fixed name: the roles that may invoke it name it so, since
    it lists them among Rollout's own roles (a GetAtt back would be a dependency cycle)."""
    name = tpl["Resources"]["DeploymentActions"]["Properties"]["FunctionName"]
    assert name == {"Fn::Sub": "${AWS::StackName}-DeploymentActions"}
    return {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name["Fn::Sub"]
    }


def function_role(tpl: dict[str, Any], function: str) -> str:
    role = tpl["Resources"][function]["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


# --- translation ------------------------------------------------------------------------------


def test_sam_translator_turns_the_template_into_plain_cloudformation(translated: dict[str, Any]) -> None:
    types = {res["Type"] for res in translated["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert "AWS::Lambda::Function" in types
    assert "AWS::Lambda::LayerVersion" in types
    assert "Transform" not in translated


def test_translation_adds_no_aws_managed_policy(translated: dict[str, Any]) -> None:
    # SAM adds AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess (Resource "*") to roles it makes;
    # every function here has its own role with narrowed log and trace permissions instead.
    for name, role in resources_of(translated, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert arn == {"Ref": "ReleaseStarterPolicy"}, f"{name} has managed policy {arn}"
    for name, fn in resources_of(translated, "AWS::Lambda::Function").items():
        assert "Fn::GetAtt" in fn["Properties"]["Role"], f"{name} uses a role SAM generated"


# --- artifact bucket ----------------------------------------------------------------------------


def test_artifact_bucket_is_versioned_encrypted_private_and_sends_events(template: dict[str, Any]) -> None:
    props = template["Resources"]["ArtifactBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules and all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")
        for r in rules
    )
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert template["Resources"]["ArtifactBucket"]["DeletionPolicy"] == "Retain"


def test_artifact_bucket_expires_old_versions_and_abandoned_uploads(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    enabled = [r for r in rules if r["Status"] == "Enabled"]
    assert any(
        r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        == {"Ref": "NoncurrentVersionExpirationDays"}
        for r in enabled
    )
    assert any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation", 0) > 0 for r in enabled)


def test_artifact_bucket_policy_denies_requests_without_tls(template: dict[str, Any]) -> None:
    policy = resources_of(template, "AWS::S3::BucketPolicy")
    (bucket_policy,) = (p for p in policy.values() if p["Properties"]["Bucket"] == {"Ref": "ArtifactBucket"})
    denials = [
        s
        for s in bucket_policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert denials, "no statement denies aws:SecureTransport=false"
    (deny,) = denials
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert {"Fn::GetAtt": ["ArtifactBucket", "Arn"]} in deny["Resource"]
    assert {"Fn::Sub": "${ArtifactBucket.Arn}/*"} in deny["Resource"]


def test_uploads_to_the_artifact_bucket_are_access_logged_to_a_private_retained_bucket(
    template: dict[str, Any],
) -> None:
    # An upload is a release: the access log says which principal made it.
    buckets = resources_of(template, "AWS::S3::Bucket")
    logging = buckets["ArtifactBucket"]["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    log_bucket = buckets["AccessLogBucket"]
    assert log_bucket["DeletionPolicy"] == "Retain"
    properties = log_bucket["Properties"]
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # log delivery needs SSE-S3

    policies = resources_of(template, "AWS::S3::BucketPolicy")
    (policy,) = (p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": "AccessLogBucket"})
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [(s["Principal"], s["Action"]) for s in allows] == [
        ({"Service": "logging.s3.amazonaws.com"}, "s3:PutObject")
    ]
    assert allows[0]["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    assert allows[0]["Resource"] == {"Fn::Sub": "${AccessLogBucket.Arn}/" + logging["LogFilePrefix"] + "*"}


def test_only_zip_uploads_to_the_artifact_bucket_reach_the_deployer(translated: dict[str, Any]) -> None:
    rules = resources_of(translated, "AWS::Events::Rule")
    (rule,) = (
        r
        for r in rules.values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ArtifactDeployer", "Arn"]}
    )
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "ArtifactBucket"}]
    assert pattern["detail"]["object"]["key"] == [{"suffix": ".zip"}]
    target = rule["Properties"]["Targets"][0]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_deployment_events_hear_only_this_stacks_application(translated: dict[str, Any]) -> None:
    rules = resources_of(translated, "AWS::Events::Rule")
    (rule,) = (
        r
        for r in rules.values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["DeploymentEvents", "Arn"]}
    )
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.codedeploy"]
    assert pattern["detail-type"] == ["CodeDeploy Deployment State-change Notification"]
    assert pattern["detail"]["application"] == [{"Ref": "CodeDeployApplication"}]
    assert "DeadLetterConfig" in rule["Properties"]["Targets"][0]


def test_rules_may_dead_letter_into_the_queue_and_nothing_else_may(template: dict[str, Any]) -> None:
    policy = template["Resources"]["UndeliveredEventsQueuePolicy"]["Properties"]["PolicyDocument"]
    (allow,) = (s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    rule_names = {
        (event["Properties"].get("RuleName") or event["Properties"].get("Name"))["Fn::Sub"]
        for fn in ("ArtifactDeployer", "DeploymentEvents", "Reconciler")
        for event in template["Resources"][fn]["Properties"]["Events"].values()
    }
    assert len(rule_names) == 3
    source_arns = {arn["Fn::Sub"] for arn in allow["Condition"]["ArnEquals"]["aws:SourceArn"]}
    rule_arn = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    assert source_arns == {rule_arn + name for name in rule_names}


# --- hooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "suffix"), [("PreTrafficHook", "PreTraffic"), ("PostTrafficHook", "PostTraffic")]
)
def test_hooks_have_the_names_codedeploy_and_the_deployer_expect(
    template: dict[str, Any], function: str, suffix: str
) -> None:
    name = {"Fn::Sub": f"CodeDeployHook_${{AWS::StackName}}_{suffix}"}
    assert template["Resources"][function]["Properties"]["FunctionName"] == name
    variable = "PRE_TRAFFIC_HOOK" if suffix == "PreTraffic" else "POST_TRAFFIC_HOOK"
    assert template["Globals"]["Function"]["Environment"]["Variables"][variable] == name


@pytest.mark.parametrize("function", ["PreTrafficHook", "PostTrafficHook"])
def test_a_dead_hook_is_never_retried_and_goes_to_the_failure_reporter(
    translated: dict[str, Any], function: str
) -> None:
    configs = [
        c["Properties"]
        for c in resources_of(translated, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": function}
    ]
    assert len(configs) == 1
    (config,) = configs
    assert config["MaximumRetryAttempts"] == 0
    # An event older than this is failed to the reporter rather than left to CodeDeploy's one-hour timeout.
    assert config["MaximumEventAgeInSeconds"] < 3600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["HookFailureReporter", "Arn"]
    }
    # Lambda calls the destination with the hook's own role.
    role = function_role(translated, function)
    grants = allowed(translated, role, "lambda:InvokeFunction")
    assert any(s["Resource"] == {"Fn::GetAtt": ["HookFailureReporter", "Arn"]} for s in grants)


def test_an_action_never_run_is_kept_for_people_not_lost(translated: dict[str, Any]) -> None:
    # A Slack click handed to DeploymentActions that Lambda never ran would otherwise vanish unanswered.
    (config,) = [
        c["Properties"]
        for c in resources_of(translated, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "DeploymentActions"}
    ]
    assert config["MaximumRetryAttempts"] == 0, "an action must never run twice"
    queue = {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == queue
    role = function_role(translated, "DeploymentActions")
    assert any(s["Resource"] == queue for s in allowed(translated, role, "sqs:SendMessage"))


@pytest.mark.parametrize("role", ["HookRole", "HookFailureReporterRole"])
def test_hooks_report_only_on_this_stacks_deployment_groups(translated: dict[str, Any], role: str) -> None:
    grants = allowed(translated, role, "codedeploy:PutLifecycleEventHookExecutionStatus")
    assert grants
    own = "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:${CodeDeployApplication}/*"
    external = own.replace("${CodeDeployApplication}", "${ExternalHookApplications}")
    for stmt in grants:
        for resource in as_list(stmt["Resource"]):
            assert resource["Fn::Sub"] in (own, external)
    # Other applications' deployments only when the operator names them.
    for policy in translated["Resources"][role]["Properties"]["Policies"]:
        for stmt in policy["PolicyDocument"]["Statement"]:
            if mentions(stmt, "ExternalHookApplications"):
                assert stmt["Fn::If"][0] == "HasExternalHookApplications"
                assert stmt["Fn::If"][2] == {"Ref": "AWS::NoValue"}


def test_codedeploy_role_invokes_only_this_stacks_hooks_and_shifts_only_managed_aliases(
    template: dict[str, Any],
) -> None:
    role = template["Resources"]["CodeDeployServiceRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "codedeploy.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    invoke = allowed(template, "CodeDeployServiceRole", "lambda:InvokeFunction")
    invoked = {r["Fn::Sub"].split(":function:")[1] for s in invoke for r in as_list(s["Resource"])}
    assert invoked == {
        "CodeDeployHook_${AWS::StackName}_PreTraffic",
        "CodeDeployHook_${AWS::StackName}_PostTraffic",
    }
    for action in ("lambda:UpdateAlias", "lambda:GetAlias"):
        for stmt in allowed(template, "CodeDeployServiceRole", action):
            assert stmt["Condition"] == MANAGED_TAG_CONDITION


# --- IAM, least privilege -------------------------------------------------------------------------


def test_only_actions_aws_cannot_scope_are_granted_on_star(translated: dict[str, Any]) -> None:
    assert len(ACTIONS_THAT_NEED_STAR) <= 4
    on_star: set[str] = set()
    for owner, stmt in allow_statements(translated):
        if "*" in as_list(stmt["Resource"]):
            extra = actions_of(stmt) - ACTIONS_THAT_NEED_STAR
            assert not extra, f"{owner} grants {sorted(extra)} on '*'"
            on_star |= actions_of(stmt)
    assert on_star == ACTIONS_THAT_NEED_STAR


def test_no_statement_grants_wildcard_actions(translated: dict[str, Any]) -> None:
    for owner, stmt in allow_statements(translated):
        for action in actions_of(stmt):
            assert "*" not in action, f"{owner} grants {action}"
        assert "NotAction" not in stmt and "NotResource" not in stmt


def test_actions_on_target_functions_require_the_managed_tag(translated: dict[str, Any]) -> None:
    own_functions = (
        "HookFailureReporter",
        "CodeDeployHook_${AWS::StackName}_",
        # The reconciler hands lost work back to these two (it may invoke them, never change them).
        '"ArtifactDeployer"',
        '"DeploymentEvents"',
        # The reconciler and the Slack endpoint hand gate answers to it (by name: see
        # deployment_actions_by_name).
        "${AWS::StackName}-DeploymentActions",
    )
    checked = 0
    for owner, stmt in allow_statements(translated):
        lambda_actions = actions_of(stmt) & TARGET_FUNCTION_ACTIONS
        if not lambda_actions:
            continue
        names_own = all(any(f in json.dumps(r) for f in own_functions) for r in as_list(stmt["Resource"]))
        if names_own:
            assert lambda_actions == {"lambda:InvokeFunction"}, f"{owner} may change its own functions"
            continue
        assert stmt.get("Condition") == MANAGED_TAG_CONDITION, (
            f"{owner}: {sorted(lambda_actions)} without the tag"
        )
        checked += 1
    assert checked >= 3  # the release starters, the hooks and CodeDeploy's role


def test_only_the_hooks_and_deployment_actions_may_report_a_hooks_verdict(template: dict[str, Any]) -> None:
    action = "codedeploy:PutLifecycleEventHookExecutionStatus"
    roles = {r for r in resources_of(template, "AWS::IAM::Role") if allowed(template, r, action)}
    assert roles == {"HookRole", "HookFailureReporterRole", "DeploymentActionsRole"}
    # Gates exist only on this stack's deployments: DeploymentActions never reports for other applications.
    (grant,) = allowed(template, "DeploymentActionsRole", action)
    assert grant["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:${CodeDeployApplication}/*"
    }


def test_the_slack_endpoint_acts_only_through_deployment_actions(template: dict[str, Any]) -> None:
    role = "SlackInteractionsRole"
    actions = {a for s in role_statements(template, role) for a in actions_of(s)}
    assert not {a for a in actions if a.startswith("codedeploy:")}
    (invoke,) = allowed(template, role, "lambda:InvokeFunction")
    assert invoke["Resource"] == deployment_actions_by_name(template)
    (remember,) = allowed(template, role, "dynamodb:PutItem")
    assert remember["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["SEEN"]}}
    assert actions == {
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "lambda:InvokeFunction",
        "dynamodb:PutItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    props = template["Resources"]["SlackInteractions"]["Properties"]
    assert props["FunctionUrlConfig"] == {"AuthType": "NONE"}  # Slack cannot sign with AWS credentials
    variables = props["Environment"]["Variables"]
    assert variables["SLACK_ALLOWED_USERS"] == {"Ref": "SlackApprovers"}
    assert template["Parameters"]["SlackApprovers"]["Default"] == ""  # nobody, until the operator says


def test_deployment_actions_knows_every_role_the_stack_creates(translated: dict[str, Any]) -> None:
    """An identity proof signed with one of the stack's roles is Rollout, not a person: DeploymentActions
    refuses it, so every role the stack creates (as SAM translates it) must be in its list, each only
    under the condition that creates it, and without a Path (a session's ARN names the role without it)."""
    roles = resources_of(translated, "AWS::IAM::Role")
    variables = translated["Resources"]["DeploymentActions"]["Properties"]["Environment"]["Variables"]
    separator, listed = variables["ROLLOUT_ROLE_ARNS"]["Fn::Join"]
    assert separator == " "  # role ARNs hold no space
    found = {}
    for item in listed:
        condition = None
        if "Fn::If" in item:
            condition, item, otherwise = item["Fn::If"]
            assert otherwise == ""
        role, attribute = item["Fn::GetAtt"]
        assert attribute == "Arn"
        found[role] = condition
    assert found == {name: role.get("Condition") for name, role in roles.items()}
    assert {"ReconcilerRole", "SlackInteractionsRole", "DeploymentActionsRole"} <= set(found)
    assert all(role["Properties"].get("Path", "/") == "/" for role in roles.values())


def test_the_stack_has_no_dependency_loop_with_every_option_on() -> None:
    """cfn-lint skips loops through SAM resources; the sandbox's planner orders the translated stack and
    names any loop (the roles DeploymentActions lists may not refer back to it)."""
    from sandbox.provision import plan_stack

    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf"
    every_option = {
        "SlackWebhookSecretArn": secret,
        "SlackSigningSecretArn": secret,
        "SlackSecretKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "AlarmEmail": "ops@example.com",
        "ExternalHookApplications": "payments-*",
    }
    for parameters in ({}, every_option):
        plan = plan_stack(TEMPLATE_PATH, "rollout", parameters)
        assert plan.order.index("ReconcilerRole") < plan.order.index("DeploymentActions")
    assert plan.order.index("SlackInteractionsRole") < plan.order.index("DeploymentActions")


def test_the_deployer_can_publish_and_bootstrap_but_not_move_traffic(template: dict[str, Any]) -> None:
    for action in (
        "lambda:UpdateFunctionCode",
        "lambda:PublishVersion",
        "lambda:CreateAlias",
        "lambda:GetFunction",
    ):
        assert allowed(template, "ArtifactDeployerRole", action), action
    # Traffic moves only through CodeDeploy, which rolls back on alarms.
    assert not allowed(template, "ArtifactDeployerRole", "lambda:UpdateAlias")
    # It invokes only managed functions: a first release's checks run before its alias exists.
    (invoke,) = allowed(template, "ArtifactDeployerRole", "lambda:InvokeFunction")
    assert invoke["Condition"] == MANAGED_TAG_CONDITION


def test_the_reconciler_hands_lost_work_only_to_the_deployer_deployment_events_and_gates(
    template: dict[str, Any],
) -> None:
    invokes = allowed(template, "ReconcilerRole", "lambda:InvokeFunction")
    # Besides a first release's checks on managed functions (ReleaseStarterPolicy), which any start may run.
    targets = [
        r for s in invokes if s.get("Condition") != MANAGED_TAG_CONDITION for r in as_list(s["Resource"])
    ]
    assert targets == [
        {"Fn::GetAtt": ["ArtifactDeployer", "Arn"]},
        {"Fn::GetAtt": ["DeploymentEvents", "Arn"]},
        deployment_actions_by_name(template),
    ]
    # Expired gates are reported by DeploymentActions: the reconciler never reports a verdict itself.
    assert not allowed(template, "ReconcilerRole", "codedeploy:PutLifecycleEventHookExecutionStatus")
    variables = template["Resources"]["Reconciler"]["Properties"]["Environment"]["Variables"]
    assert variables["ARTIFACT_DEPLOYER_FUNCTION"] == {"Ref": "ArtifactDeployer"}
    assert variables["DEPLOYMENT_EVENTS_FUNCTION"] == {"Ref": "DeploymentEvents"}
    assert variables["UNDELIVERED_EVENTS_QUEUE_URL"] == {"Ref": "UndeliveredEventsQueue"}
    name = template["Resources"]["Reconciler"]["Properties"]["FunctionName"]
    assert variables["RECONCILER_FUNCTION"] == name


def test_only_the_reconciler_lists_artifact_versions_and_reads_the_undelivered_events(
    template: dict[str, Any],
) -> None:
    for action, resource in (
        ("s3:ListBucketVersions", {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}),
        ("sqs:ReceiveMessage", {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}),
        ("sqs:DeleteMessage", {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}),
        ("sqs:ChangeMessageVisibility", {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}),
    ):
        grantees = {
            role for role in resources_of(template, "AWS::IAM::Role") if allowed(template, role, action)
        }
        assert grantees == {"ReconcilerRole"}, action
        (stmt,) = allowed(template, "ReconcilerRole", action)
        assert stmt["Resource"] == resource, action


def test_pass_role_hands_over_only_the_codedeploy_role_to_codedeploy(translated: dict[str, Any]) -> None:
    grants = [
        (o, s) for o, s in allow_statements(translated) if any(a.startswith("iam:") for a in actions_of(s))
    ]
    assert grants
    for owner, stmt in grants:
        assert actions_of(stmt) == {"iam:PassRole"}, owner
        assert stmt["Resource"] == {"Fn::GetAtt": ["CodeDeployServiceRole", "Arn"]}, owner
        assert stmt.get("Condition") == {
            "StringEquals": {"iam:PassedToService": "codedeploy.amazonaws.com"}
        }, owner


def test_codedeploy_actions_stay_within_this_stacks_application(translated: dict[str, Any]) -> None:
    own = re.compile(
        r"^arn:\$\{AWS::Partition\}:codedeploy:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
        r"(application:\$\{(CodeDeployApplication|ExternalHookApplications)\}"
        r"|deploymentgroup:\$\{(CodeDeployApplication|ExternalHookApplications)\}/\*"
        r"|deploymentconfig:\*)$"
    )
    for owner, stmt in allow_statements(translated):
        if any(a.startswith("codedeploy:") for a in actions_of(stmt)):
            for resource in as_list(stmt["Resource"]):
                assert own.match(resource["Fn::Sub"]), f"{owner}: {resource}"
            if "deploymentconfig:*" in json.dumps(stmt["Resource"]):
                assert actions_of(stmt) == {"codedeploy:GetDeploymentConfig"}, owner


def test_canary_alarms_are_managed_only_under_the_stacks_prefix(template: dict[str, Any]) -> None:
    prefix = template["Globals"]["Function"]["Environment"]["Variables"]["CANARY_ALARM_PREFIX"]
    assert prefix == {"Fn::Sub": "${AWS::StackName}-canary"}
    writers = [
        s
        for _, s in allow_statements(template)
        if actions_of(s) & {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"}
    ]
    assert writers
    for stmt in writers:
        assert stmt["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-canary-*"
        }


@pytest.mark.parametrize(
    ("prefix", "allowed_resources"),
    [
        ("dynamodb:", {"LedgerTable", "IdempotencyTable"}),
        ("s3:", {"ArtifactBucket"}),
        ("sns:", {"NotificationTopic"}),
        ("sqs:", {"UndeliveredEventsQueue"}),
        ("secretsmanager:", {"SlackWebhookSecretArn", "SlackSigningSecretArn"}),
        (
            "logs:",
            {
                f"{fn}LogGroup"
                for fn in [
                    "ArtifactDeployer",
                    "HookFailureReporter",
                    "DeploymentEvents",
                    "Reconciler",
                    "SlackNotifier",
                    "PreTrafficHook",
                    "PostTrafficHook",
                    "DeploymentActions",
                    "SlackInteractions",
                ]
            },
        ),
    ],
)
def test_data_access_stays_on_the_stacks_own_resources(
    translated: dict[str, Any], prefix: str, allowed_resources: set[str]
) -> None:
    grants = [
        (o, s) for o, s in allow_statements(translated) if any(a.startswith(prefix) for a in actions_of(s))
    ]
    assert grants
    for owner, stmt in grants:
        for resource in as_list(stmt["Resource"]):
            assert any(mentions(resource, name) for name in allowed_resources), f"{owner}: {resource}"


def test_each_function_writes_only_its_own_log_group_with_retention(template: dict[str, Any]) -> None:
    for function in FUNCTION_DIRS:
        props = template["Resources"][function]["Properties"]
        log_group = template["Resources"][f"{function}LogGroup"]
        name = log_group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert name == "/aws/lambda/" + props["FunctionName"]["Fn::Sub"]
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        writes = allowed(template, function_role(template, function), "logs:PutLogEvents")
        resources = [r for s in writes for r in as_list(s["Resource"])]
        assert {"Fn::GetAtt": [f"{function}LogGroup", "Arn"]} in resources
        assert not allowed(template, function_role(template, function), "logs:CreateLogGroup")


def test_only_the_control_plane_may_publish_notifications(template: dict[str, Any]) -> None:
    topic = template["Resources"]["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"]
    statements = template["Resources"]["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny_others,) = (s for s in statements if "ArnNotEquals" in s.get("Condition", {}))
    assert deny_others["Effect"] == "Deny" and deny_others["Action"] == "sns:Publish"
    publishers = {r["Fn::GetAtt"][0] for r in deny_others["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
    roles_that_publish = {
        role for role in resources_of(template, "AWS::IAM::Role") if allowed(template, role, "sns:Publish")
    }
    assert publishers == roles_that_publish
    assert any(
        s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" for s in statements
    )


def test_the_undelivered_events_alarm_tells_the_operations_topic(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["UndeliveredEventsAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]
    assert alarm["OKActions"] == [{"Ref": "OperationsTopic"}]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["UndeliveredEventsQueue", "QueueName"]}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert "OperationsTopicArn" in template["Outputs"]


def test_the_operations_topic_uses_a_stack_key_cloudwatch_may_use_and_nothing_else_may(
    template: dict[str, Any],
) -> None:
    topic = template["Resources"]["OperationsTopic"]["Properties"]
    # An AWS managed key (alias/aws/...) cannot let CloudWatch encrypt: alarms would be dropped.
    assert topic["KmsMasterKeyId"] == {"Ref": "OperationsKey"}
    key = template["Resources"]["OperationsKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s["Principal"]]
    assert [(s["Principal"]["Service"], sorted(as_list(s["Action"]))) for s in services] == [
        ("cloudwatch.amazonaws.com", ["kms:Decrypt", "kms:GenerateDataKey*"])
    ]
    accounts = [s for s in statements if "AWS" in s["Principal"]]
    assert [s["Principal"]["AWS"] for s in accounts] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    ]
    assert all(s["Effect"] == "Allow" for s in statements) and len(statements) == 2


def test_only_this_stacks_alarms_may_publish_to_the_operations_topic(template: dict[str, Any]) -> None:
    policy = template["Resources"]["OperationsTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "OperationsTopic"}]
    statements = policy["PolicyDocument"]["Statement"]
    (allow,) = (s for s in statements if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"
    }
    assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    alarm_name = template["Resources"]["UndeliveredEventsAlarm"]["Properties"]["AlarmName"]["Fn::Sub"]
    assert alarm_name.startswith("${AWS::StackName}-"), "the alarm falls under the policy's pattern"
    assert any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in statements
    )
    assert not any(
        mentions(r, "OperationsTopic")
        for _, s in allow_statements(template)
        if "sns:Publish" in actions_of(s)
        for r in as_list(s["Resource"])
    ), "no role of the stack publishes there: it carries CloudWatch's alarms only"


def test_the_alarm_email_hears_errors_critical_notifications_and_the_operations_topic(
    template: dict[str, Any],
) -> None:
    releases = template["Resources"]["AlarmEmailSubscription"]
    assert releases["Properties"]["FilterPolicy"] == {"severity": ["error", "critical"]}
    operations = template["Resources"]["OperationsEmailSubscription"]
    assert operations["Condition"] == "HasAlarmEmail"
    assert operations["Properties"]["TopicArn"] == {"Ref": "OperationsTopic"}
    assert operations["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


# --- tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["LedgerTable", "IdempotencyTable"])
def test_tables_are_encrypted_with_point_in_time_recovery(template: dict[str, Any], table: str) -> None:
    props = template["Resources"][table]["Properties"]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_idempotency_records_expire(template: dict[str, Any]) -> None:
    props = template["Resources"]["IdempotencyTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_the_ledgers_short_lived_records_expire(template: dict[str, Any]) -> None:
    props = template["Resources"]["LedgerTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_ledger_table_matches_the_one_the_tests_run_against(template: dict[str, Any], moto: None) -> None:
    aws_stack.create_ledger_table()
    described = boto3.client("dynamodb", region_name=aws_stack.REGION).describe_table(
        TableName=aws_stack.LEDGER_TABLE
    )["Table"]
    props = template["Resources"]["LedgerTable"]["Properties"]

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {i[key]: i for i in items}

    assert by_name(props["AttributeDefinitions"], "AttributeName") == by_name(
        described["AttributeDefinitions"], "AttributeName"
    )
    assert props["KeySchema"] == described["KeySchema"]
    declared = {
        g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"])
        for g in props["GlobalSecondaryIndexes"]
    }
    created = {
        g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"])
        for g in described["GlobalSecondaryIndexes"]
    }
    assert declared == created


# --- functions, globals, layer ---------------------------------------------------------------------


def test_every_function_runs_python313_on_arm64_traced_with_the_layer(translated: dict[str, Any]) -> None:
    functions = resources_of(translated, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTION_DIRS)
    for name, fn in functions.items():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["Handler"] == "app.lambda_handler", name
        assert any("RolloutLayer" in json.dumps(layer) for layer in props["Layers"]), name


def test_functions_get_the_environment_the_code_reads(translated: dict[str, Any]) -> None:
    stack = aws_stack.StackUnderTest(
        bucket="", topic_arn="", queue_url="", function_role_arn="", codedeploy_role_arn=""
    )
    expected = set(aws_stack.stack_environment(stack)) | {"CANARY_ALARM_PREFIX", "POWERTOOLS_LOG_LEVEL"}
    for name, fn in resources_of(translated, "AWS::Lambda::Function").items():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert expected <= set(variables), f"{name} lacks {sorted(expected - set(variables))}"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Rollout"
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    slack = translated["Resources"]["SlackNotifier"]["Properties"]["Environment"]["Variables"]
    assert slack["SLACK_WEBHOOK_SECRET_ARN"] == {"Ref": "SlackWebhookSecretArn"}


def test_each_function_folder_has_a_handler(template: dict[str, Any]) -> None:
    for function, folder in FUNCTION_DIRS.items():
        assert template["Resources"][function]["Properties"]["CodeUri"] == f"functions/{folder}/"
        source = (ROOT / "functions" / folder / "app.py").read_text()
        names = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
        assert "lambda_handler" in names, folder


def test_layer_is_built_for_the_runtime_from_the_package(template: dict[str, Any]) -> None:
    layer = template["Resources"]["RolloutLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/rollout/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # Built by layers/rollout/Makefile: the python3.13 method ships no bytecode (tests/unit/test_layer_bytecode.py).
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert (ROOT / "layers/rollout/Makefile").is_file()
    assert (ROOT / "layers/rollout/rollout/__init__.py").is_file()


def test_layer_requirements_carry_the_runtime_pins_with_a_matching_sdk() -> None:
    def pins(path: Path) -> set[str]:
        lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
        return {line for line in lines if line}

    layer = pins(ROOT / "layers/rollout/requirements.txt")
    assert layer == pins(ROOT / "requirements/runtime.txt")
    assert all("==" in pin for pin in layer)
    # aws-xray-sdk brings botocore into the layer, where it shadows the runtime's: pin boto3 with it.
    sdk = {pin.split("==")[0]: pin.split("==")[1] for pin in layer if re.match(r"(boto3|botocore)==", pin)}
    assert set(sdk) == {"boto3", "botocore"}
    assert sdk["boto3"] == sdk["botocore"]


# --- optional parts ------------------------------------------------------------------------------


def without_branches(value: Any, conditions: set[str]) -> Any:
    """`value` with every Fn::If on one of `conditions` replaced by its other branch: what is left when
    those conditions are false."""
    if isinstance(value, list):
        return [without_branches(v, conditions) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::If" in value and value["Fn::If"][0] in conditions:
        return without_branches(value["Fn::If"][2], conditions)
    return {k: without_branches(v, conditions) for k, v in value.items()}


def test_slack_resources_exist_only_with_a_webhook_secret(translated: dict[str, Any]) -> None:
    slack = {n: r for n, r in translated["Resources"].items() if "Slack" in n}
    assert {"SlackNotifier", "SlackNotifierRole", "SlackNotifierLogGroup"} <= set(slack)
    assert any(r["Type"] == "AWS::SNS::Subscription" for r in slack.values())
    # The buttons' endpoint also needs a signing secret (HasSlackInteractivity implies HasSlack).
    conditions = {"HasSlack", "HasSlackInteractivity"}
    for name, res in slack.items():
        want = "HasSlackInteractivity" if name.startswith("SlackInteractions") else "HasSlack"
        assert res.get("Condition") == want, name
    for name, res in translated["Resources"].items():
        if res.get("Condition") not in conditions:
            unguarded = without_branches(res, conditions)
            assert not any(mentions(unguarded, s) for s in slack), f"{name} needs a Slack resource"
    for name, output in translated["Outputs"].items():
        if any(mentions(output, s) for s in slack):
            assert output.get("Condition") in conditions, name
    assert translated["Conditions"]["HasSlackInteractivity"]["Fn::And"][0] == {"Condition": "HasSlack"}
    assert translated["Conditions"]["HasSlack"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SlackWebhookSecretArn"}, ""]}]
    }
    assert translated["Parameters"]["SlackWebhookSecretArn"]["Default"] == ""


def test_outputs_name_what_operators_and_the_cli_need(template: dict[str, Any]) -> None:
    required = {
        "ArtifactBucketName",
        "NotificationTopicArn",
        "LedgerTableName",
        "IdempotencyTableName",
        "CodeDeployApplicationName",
        "CodeDeployServiceRoleArn",
        "PreTrafficHookName",
        "PostTrafficHookName",
        "ArtifactDeployerArn",
        "OperationsTopicArn",
    }
    assert required <= set(template["Outputs"])


# --- samconfig -------------------------------------------------------------------------------------


def test_samconfig_deploys_dev_by_default_and_prod_with_a_changeset_review() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    dev = config["default"]["deploy"]["parameters"]
    prod = config["prod"]["deploy"]["parameters"]
    assert dev["stack_name"] == "rollout-dev" and prod["stack_name"] == "rollout-prod"
    assert 'Stage="dev"' in dev["parameter_overrides"] and 'Stage="prod"' in prod["parameter_overrides"]
    assert prod["confirm_changeset"] is True
    for env in (dev, prod):
        assert env["resolve_s3"] is True
        # Roles are unnamed, so CAPABILITY_NAMED_IAM would grant more than the template needs.
        assert env["capabilities"] == "CAPABILITY_IAM"
    assert config["default"]["build"]["parameters"] == {"cached": True, "parallel": True}


def test_the_slack_notifier_posts_only_to_the_origin_the_stack_names(translated: dict[str, Any]) -> None:
    parameter = translated["Parameters"]["SlackWebhookOrigin"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert parameter["Default"] == "https://hooks.slack.com/"
    for allowed in ("https://hooks.slack.com/", "https://chat.example.com:8443/", "http://127.0.0.1:41234/"):
        assert pattern.fullmatch(allowed), allowed
    for refused in ("*", "", "http://hooks.slack.com/", "http://10.0.0.1:80/", "https://hooks.slack.com/x/"):
        assert not pattern.fullmatch(refused), refused
    slack = translated["Resources"]["SlackNotifier"]["Properties"]["Environment"]["Variables"]
    assert slack["SLACK_WEBHOOK_ORIGIN"] == {"Ref": "SlackWebhookOrigin"}


def test_kms_decrypt_only_for_a_customer_key_and_only_through_secrets_manager(
    template: dict[str, Any],
) -> None:
    statements = template["Resources"]["SlackNotifierRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    conditional = [s for s in statements if isinstance(s, dict) and "Fn::If" in s]
    assert len(conditional) == 1
    condition, granted, otherwise = conditional[0]["Fn::If"]
    assert condition == "HasSlackSecretKey" and otherwise == {"Ref": "AWS::NoValue"}
    assert granted["Action"] == "kms:Decrypt"
    assert granted["Resource"] == {"Ref": "SlackSecretKmsKeyArn"}
    assert "kms:ViaService" in granted["Condition"]["StringEquals"]
    plain = [s for s in statements if isinstance(s, dict) and "Fn::If" not in s]
    assert not any("kms:" in str(s.get("Action")) for s in plain)
    assert template["Parameters"]["SlackSecretKmsKeyArn"]["Default"] == ""


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("", True), ("payments-app", True), ("payments-*", True), ("*", False), ("a*", False), ("**", False)],
)
def test_external_hook_applications_must_be_named(
    template: dict[str, Any], value: str, accepted: bool
) -> None:
    pattern = template["Parameters"]["ExternalHookApplications"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


def test_version_retention_may_list_what_invokes_a_version_and_delete_only_managed_functions(
    template: dict[str, Any],
) -> None:
    for action in ("lambda:ListProvisionedConcurrencyConfigs", "lambda:DeleteFunction"):
        (stmt,) = allowed(template, "ReconcilerRole", action)
        assert stmt["Condition"] == MANAGED_TAG_CONDITION, action
    # No resource type exists for it (Service Authorization Reference): "*" and nothing more.
    (stmt,) = allowed(template, "ReconcilerRole", "lambda:ListEventSourceMappings")
    assert stmt["Resource"] == "*" and actions_of(stmt) == {"lambda:ListEventSourceMappings"}
    grantees = {
        r for r in resources_of(template, "AWS::IAM::Role") if allowed(template, r, "lambda:DeleteFunction")
    }
    assert grantees == {"ReconcilerRole"}
