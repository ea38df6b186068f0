"""`python -m sandbox.permissions_report`: docs/PERMISSIONS.md, from template.yaml and the calls the e2e
suite makes in the sandbox with IAM enforced.

For each role of the template it lists every action the suite's calls used (allowed or refused, and which
statement allowed each) and every action the template grants; a grant no call used needs a written reason
(REASONS below). The command fails when a call was refused, when a grant is neither used nor explained,
or when a reason explains a grant that is in fact used, so the document cannot drift from the template.

    python -m sandbox.permissions_report            # run tests/e2e, then write docs/PERMISSIONS.md
    python -m sandbox.permissions_report --log F    # use access-log records already in F (JSON lines)
    python -m sandbox.permissions_report --check    # fail if docs/PERMISSIONS.md is not what it would write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
OUTPUT = ROOT / "docs" / "PERMISSIONS.md"
STACK = "permissions"

# Refusals the suite provokes on purpose: (role, action) -> why.
EXPECTED_REFUSALS: dict[tuple[str, str], str] = {
    ("ArtifactDeployerRole", "lambda:GetFunction"): (
        "the suite uploads artifacts for a function without the rollout:managed tag and for one that does "
        "not exist; IAM refuses both (the condition on aws:ResourceTag/rollout:managed), which is how the "
        "deployer rejects them (FUNCTION_NOT_MANAGED)."
    ),
    ("ReconcilerRole", "lambda:GetFunction"): (
        "version retention finds functions in the ledger, which also records uploads rejected for a "
        "function that is not managed or does not exist; IAM refuses reading those, and retention takes "
        "the refusal as 'not managed' and deletes nothing (retention.py, lambda_ops.managed_tags)."
    ),
}

# Why a grant is kept although no call of the e2e suite used it. Looked up by (role, policy, statement,
# action), then with role "*", then by action alone. A grant of a managed policy several roles share that
# another of them used needs no entry: the report says which role used it.
_SHARED_POLICY = "ReleaseStarterPolicy"
REASONS: dict[tuple[str, str, str, str], str] = {
    ("*", _SHARED_POLICY, "DeployWithinThisStacksApplication", "codedeploy:GetApplicationRevision"): (
        "The template grants it for the revision CreateDeployment registers. The Service Authorization "
        "Reference lists no dependent action for CreateDeployment and the sandbox checks none, and no "
        "starter code reads revisions: not verified here."
    ),
    ("*", _SHARED_POLICY, "ReadDeploymentConfigs", "codedeploy:GetDeploymentConfig"): (
        "The template grants it for CreateDeployment reading the group's configuration. The sandbox "
        "authorises CreateDeployment as codedeploy:CreateDeployment alone and no starter code reads "
        "configurations: not verified here."
    ),
    ("*", _SHARED_POLICY, "IdempotencyRecords", "dynamodb:GetItem"): (
        "Powertools' DynamoDB idempotency layer reads an existing record with GetItem when its conditional "
        "PutItem does not return it; no run of the suite took that path."
    ),
    ("*", _SHARED_POLICY, "IdempotencyRecords", "dynamodb:DeleteItem"): (
        "Powertools' DynamoDB idempotency layer deletes its record when the handler raises; no idempotent "
        "handler raised in the suite."
    ),
    ("*", _SHARED_POLICY, "KeepFailedInvocations", "sqs:SendMessage"): (
        "Lambda sends an asynchronous invocation that failed all its retries to the on-failure destination "
        "(UndeliveredEventsQueue) with the execution role; no such failure happened in the suite."
    ),
    ("HookFailureReporterRole", "report-dead-hooks", "KeepFailedInvocations", "sqs:SendMessage"): (
        "Lambda sends a failed asynchronous invocation of the reporter to UndeliveredEventsQueue with this "
        "role; the reporter never failed in the suite."
    ),
    ("SlackNotifierRole", "post-to-slack", "KeepFailedInvocations", "sqs:SendMessage"): (
        "Lambda sends a notification the notifier failed to post after its retries to "
        "UndeliveredEventsQueue with this role; the notifier never used up its retries in the suite."
    ),
    ("*", _SHARED_POLICY, "ReadArtifacts", "s3:GetObject"): (
        "An upload event without a version id is read unversioned (s3_ops.resolve); the bucket is "
        "versioned, so every read in the suite was s3:GetObjectVersion."
    ),
    ("*", _SHARED_POLICY, "TellMissingArtifacts", "s3:ListBucket"): (
        "S3 checks it only when a read finds no object: with it a missing artifact is 404 NoSuchKey, "
        "without it 403 (the sandbox enforces this). No artifact went missing in the suite."
    ),
    (
        "CodeDeployServiceRole",
        "shift-traffic",
        "ShiftManagedAliases",
        "lambda:GetProvisionedConcurrencyConfig",
    ): (
        "Kept from AWSCodeDeployRoleForLambda, which grants it to CodeDeploy for functions with provisioned "
        "concurrency. The sandbox's CodeDeploy models no provisioned concurrency and makes no such call."
    ),
    ("HookRole", "validate-deployments", "InvokeAndReadManagedFunctions", "lambda:GetFunction"): (
        "Reads the rollout:checks tag of a function deployed by another CodeDeploy application "
        "(hooks.find_checks, ExternalHookApplications); Rollout's own releases carry their checks."
    ),
    ("HookRole", "validate-deployments", "ReadAndRecordReleases", "dynamodb:Query"): (
        "The by-deployment index, read only to record a failure that came before the release was looked "
        "up (hooks._release_to_record_on); releases are otherwise read by key."
    ),
    (
        "HookFailureReporterRole",
        "report-dead-hooks",
        "ReportThisStacksDeployments",
        "codedeploy:GetDeployment",
    ): (
        "Reads the deployment's description when the by-deployment index does not know the deployment yet "
        "(a hook that died a moment after its deployment started: Ledger.of_deployment)."
    ),
    ("HookRole", "validate-deployments", "ReadChecksDocuments", "s3:GetObject"): (
        "Reads a rollout:checks document (hooks.find_checks) or an S3 AppSpec revision "
        "(hooks.appspec_content) of a deployment Rollout did not start; the suite has neither."
    ),
    ("HookRole", "validate-deployments", "ReadChecksDocuments", "s3:GetObjectVersion"): (
        "An S3 AppSpec revision pinned to a version (hooks.appspec_content); the suite has none."
    ),
}
# Grants only a fault or a race exercises (a failed invocation, a release looked up after a failure): a run
# of the suite may or may not take those paths, so whether they show as used is not a finding either way.
PATH_DEPENDENT: frozenset[tuple[str, str, str, str]] = frozenset(
    {
        ("*", _SHARED_POLICY, "IdempotencyRecords", "dynamodb:GetItem"),
        ("*", _SHARED_POLICY, "IdempotencyRecords", "dynamodb:DeleteItem"),
        ("*", _SHARED_POLICY, "KeepFailedInvocations", "sqs:SendMessage"),
        ("HookFailureReporterRole", "report-dead-hooks", "KeepFailedInvocations", "sqs:SendMessage"),
        ("SlackNotifierRole", "post-to-slack", "KeepFailedInvocations", "sqs:SendMessage"),
        ("HookRole", "validate-deployments", "InvokeAndReadManagedFunctions", "lambda:GetFunction"),
        ("HookRole", "validate-deployments", "ReadAndRecordReleases", "dynamodb:Query"),
        (
            "HookFailureReporterRole",
            "report-dead-hooks",
            "ReportThisStacksDeployments",
            "codedeploy:GetDeployment",
        ),
    }
)


def _shared_key(key: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
    return ("*", *key[1:])


REASONS_BY_ACTION: dict[str, str] = {
    "xray:PutTraceSegments": (
        "Lambda's X-Ray integration (Tracing: Active) sends trace segments with the execution role; the "
        "sandbox runs no X-Ray daemon, so no call of the suite can use it."
    ),
    "xray:PutTelemetryRecords": (
        "Lambda's X-Ray integration (Tracing: Active) sends telemetry with the execution role; the "
        "sandbox runs no X-Ray daemon, so no call of the suite can use it."
    ),
}


@dataclass
class Grant:
    role: str
    policy: str
    sid: str
    index: int
    action: str
    resources: list[str]
    condition: dict[str, Any] | None

    @property
    def statement(self) -> str:
        return self.sid or f"#{self.index}"


@dataclass
class Usage:
    allowed: int = 0
    refused: int = 0
    statements: set[tuple[str, str]] = field(default_factory=set)  # (policy, Sid or #index)
    resources: set[str] = field(default_factory=set)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def template_grants() -> tuple[dict[str, list[Grant]], dict[str, str]]:
    """Each role's granted actions, resolved by provisioning the template into a scratch sandbox; and
    the logical id of each managed policy ARN."""
    import boto3

    from sandbox import Sandbox
    from sandbox.iam import state
    from sandbox.provision import provision_stack

    with Sandbox(speed=1) as sb:
        # The parameters the e2e suite provisions with: Slack on (a secret holding the webhook URL) and,
        # as tests/e2e/test_gates.py does, Slack's buttons (a signing secret), so that the roles that
        # exist only with interactivity (SlackInteractionsRole) are listed too.
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=sb.endpoint_url,
            region_name=sb.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the sandbox operator's fake keys
        )
        webhook = secrets.create_secret(
            Name=f"{STACK}/slack-webhook", SecretString='{"webhook_url": "http://127.0.0.1:9/"}'
        )
        signing = secrets.create_secret(
            Name=f"{STACK}/slack-signing",
            SecretString='{"signing_secret": "0123456789abcdef"}',
        )
        parameters = {
            "SlackWebhookSecretArn": webhook["ARN"],
            "SlackSigningSecretArn": signing["ARN"],
            "SlackApprovers": "U0PERMISSIONS",
        }
        stack = provision_stack(sb.endpoint_url, TEMPLATE, STACK, parameters, region=sb.region)
        documents: dict[str, tuple[str, dict[str, Any]]] = {}
        for logical_id, resource in stack.resources.items():
            if resource.resource_type == "AWS::IAM::ManagedPolicy":
                documents[resource.physical_id] = (logical_id, resource.properties["PolicyDocument"])
        grants: dict[str, list[Grant]] = {}
        for logical_id, resource in stack.resources.items():
            if resource.resource_type != "AWS::IAM::Role":
                continue
            found: list[Grant] = []
            for inline in resource.properties.get("Policies") or []:
                found += _grants(logical_id, str(inline["PolicyName"]), inline["PolicyDocument"])
            for arn in resource.properties.get("ManagedPolicyArns") or []:
                if arn in documents:
                    name, document = documents[arn]
                else:
                    data = state.aws_managed_policy_data(arn)
                    if data is None:
                        continue
                    name, document = arn, data[1]["Document"]
                found += _grants(logical_id, name, document)
            grants[logical_id] = found
        names = {arn: logical for arn, (logical, _) in documents.items()}
    return grants, names


def _grants(role: str, policy: str, document: dict[str, Any]) -> list[Grant]:
    found: list[Grant] = []
    statements = document.get("Statement", [])
    for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action")):
            found.append(
                Grant(
                    role,
                    policy,
                    str(statement.get("Sid", "")),
                    index,
                    str(action),
                    [str(r) for r in _as_list(statement.get("Resource"))],
                    statement.get("Condition"),
                )
            )
    return found


def role_of(principal: str, roles: set[str]) -> str | None:
    """The template's logical id of a role the provisioner named <stack>-<LogicalId>-<SUFFIX>."""
    if ":role/" not in principal:
        return None
    parts = principal.rsplit("/", 1)[1].rsplit("-", 2)
    return parts[1] if len(parts) == 3 and parts[1] in roles else None


def read_log(
    path: Path, policy_names: dict[str, str], roles: set[str]
) -> tuple[dict[str, dict[str, Usage]], dict[str, Usage]]:
    """(role logical id -> action -> usage) for the template's roles; other principals by name."""
    by_role: dict[str, dict[str, Usage]] = defaultdict(lambda: defaultdict(Usage))
    others: dict[str, Usage] = defaultdict(Usage)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        role = role_of(record["principal"], roles)
        usage = (
            by_role[role][record["action"]]
            if role
            else others[f"{_who(record['principal'])} {record['action']}"]
        )
        if record["allowed"]:
            usage.allowed += record["count"]
        else:
            usage.refused += record["count"]
            usage.resources.add(record["resource"])
        for policy, index, sid in record["statements"]:
            name = policy_names.get(policy) or _managed_logical_id(policy)
            usage.statements.add((name.removeprefix("inline:"), sid or f"#{index}"))
    return by_role, others


def _managed_logical_id(policy: str) -> str:
    """A customer managed policy the provisioner named <stack>-<LogicalId>-<SUFFIX> -> its logical id."""
    if ":policy/" not in policy or policy.startswith("arn:aws:iam::aws:"):
        return policy
    parts = policy.rsplit("/", 1)[1].rsplit("-", 2)
    return parts[1] if len(parts) == 3 else policy


def _who(principal: str) -> str:
    if ":role/" in principal:
        return "a test-made role"
    return principal


def _matches(pattern: str, action: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def render(
    grants: dict[str, list[Grant]], by_role: dict[str, dict[str, Usage]], others: dict[str, Usage]
) -> tuple[str, list[str]]:
    """The document, and every problem that makes the command fail."""
    problems: list[str] = []
    checked = sum(u.allowed + u.refused for actions in by_role.values() for u in actions.values())
    checked += sum(u.allowed + u.refused for u in others.values())
    refused = sum(u.refused for actions in by_role.values() for u in actions.values())
    lines = [
        "# Permissions",
        "",
        "Generated by `.venv/bin/python -m sandbox.permissions_report` (do not edit by hand): every role of",
        "`template.yaml`, the actions the end-to-end suite (`tests/e2e`) used with it while the sandbox enforced",
        "IAM, and every action the template grants it. A grant that no call used carries the reason it is kept.",
        "",
        f"Calls authorised during the run: {checked}; refused for the template's roles: {refused}.",
        "",
    ]
    for role in sorted(grants):
        used = by_role.get(role, {})
        lines += [f"## {role}", "", "### Actions used", ""]
        if used:
            lines += ["| action | allowed | refused | allowed by |", "|---|---|---|---|"]
            for action in sorted(used):
                usage = used[action]
                allowed_by = ", ".join(f"{p} / {s}" for p, s in sorted(usage.statements)) or "-"
                lines.append(f"| `{action}` | {usage.allowed} | {usage.refused} | {allowed_by} |")
                if usage.refused and (role, action) not in EXPECTED_REFUSALS:
                    problems.append(f"{role}: {action} was refused on {sorted(usage.resources)}")
        else:
            lines.append("None: no call of the suite ran with this role.")
        for (refused_role, action), why in sorted(EXPECTED_REFUSALS.items()):
            if refused_role == role and used.get(action) and used[action].refused:
                lines += ["", f"Refusals of `{action}` are expected: {why}"]
        lines += [
            "",
            "### Grants",
            "",
            "| policy / statement | action | resource | used | reason |",
            "|---|---|---|---|---|",
        ]
        for grant in grants[role]:
            hits = _hit(grant, used)
            key = (role, grant.policy, grant.statement, grant.action)
            reason = (
                REASONS.get(key)
                or REASONS.get(("*", grant.policy, grant.statement, grant.action))
                or REASONS_BY_ACTION.get(grant.action)
                or _used_by_another(grant, grants, by_role)
                or ""
            )
            if hits and (
                reason.startswith("Shared ") or key in PATH_DEPENDENT or _shared_key(key) in PATH_DEPENDENT
            ):
                reason = ""
            if hits and reason:
                problems.append(f"{key}: has a reason but is used ({', '.join(hits)})")
            if not hits and not reason:
                problems.append(f"{key}: granted, unused, and no reason is written")
            resource = "<br>".join(f"`{r}`" for r in grant.resources)
            if grant.condition:
                resource += f"<br>if `{json.dumps(grant.condition, separators=(',', ':'))}`"
            lines.append(
                f"| {grant.policy} / {grant.statement} | `{grant.action}` | {resource} | "
                f"{'yes' if hits else 'no'} | {reason} |"
            )
        lines.append("")
    if others:
        lines += [
            "## Other principals",
            "",
            "Service principals (through the resources' policies) and the roles the suite makes for its own",
            "target functions.",
            "",
            "| principal and action | allowed | refused |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {u.allowed} | {u.refused} |" for name, u in sorted(others.items())]
        lines.append("")
    return "\n".join(lines), problems


def _hit(grant: Grant, used: dict[str, Usage]) -> list[str]:
    return [
        action
        for action, usage in used.items()
        if _matches(grant.action, action)
        and (grant.policy, grant.statement) in usage.statements
        and usage.allowed
    ]


def _used_by_another(
    grant: Grant, grants: dict[str, list[Grant]], by_role: dict[str, dict[str, Usage]]
) -> str:
    """A shared managed policy's grant that another role used: the policy is one document on purpose."""
    others = sorted(
        role
        for role, role_grants in grants.items()
        if role != grant.role
        and any(
            g.policy == grant.policy and g.statement == grant.statement and g.action == grant.action
            for g in role_grants
        )
        and _hit(grant, by_role.get(role, {}))
    )
    if not others:
        return ""
    return (
        f"Shared {grant.policy} (one document for every role that starts releases): used by "
        f"{', '.join(others)}, not by this role."
    )


def run_e2e(log: Path) -> int:
    env = {**os.environ, "SANDBOX_ACCESS_LOG": str(log)}
    command = [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode  # noqa: S603 - our own test run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.permissions_report", description=__doc__)
    parser.add_argument(
        "--log", type=Path, help="access-log records (JSON lines) instead of running tests/e2e"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with docs/PERMISSIONS.md instead of writing"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        log = args.log
        if log is None:
            log = Path(scratch) / "access.jsonl"
            status = run_e2e(log)
            if status != 0:
                print(f"tests/e2e failed (exit {status}); no report written", file=sys.stderr)
                return status
        grants, names = template_grants()
        by_role, others = read_log(log, names, set(grants))
    document, problems = render(grants, by_role, others)
    for problem in problems:
        print(f"permissions: {problem}", file=sys.stderr)
    if args.check:
        if not args.output.exists() or args.output.read_text() != document + "\n":
            print(f"{args.output} is out of date", file=sys.stderr)
            return 1
    else:
        args.output.write_text(document + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
