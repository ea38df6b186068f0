"""Planning a stack: the checks and ordering that happen before any resource is created."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import botocore.session
import pytest

from sandbox.provision import HANDLERS, TemplateError, UnsupportedResourceError, plan_stack
from sandbox.provision.coercion import coerce_parameters
from sandbox.provision.context import generated_name
from sandbox.provision.packaging import function_zip, layer_zip

ROOT = Path(__file__).resolve().parents[2]
SLACK_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


def test_a_resource_type_without_a_handler_stops_the_stack_naming_it(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Cluster:
    Type: AWS::ECS::Cluster
""",
    )
    with pytest.raises(UnsupportedResourceError) as caught:
        plan_stack(template, "demo")
    assert caught.value.problems == [
        "resource Cluster has type AWS::ECS::Cluster, which has no local handler"
    ]


def test_an_unsupported_property_stops_the_stack_naming_it(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      CorsConfiguration: {CorsRules: []}
""",
    )
    with pytest.raises(
        UnsupportedResourceError, match=r"Bucket \(AWS::S3::Bucket\) uses property CorsConfiguration"
    ):
        plan_stack(template, "demo")


def test_order_follows_refs_getatts_sub_variables_and_depends_on(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
Resources:
  Policy:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Queues: [!Ref Queue]
      PolicyDocument: {Statement: [{Resource: !Sub "${Queue.Arn}", Effect: Allow}]}
  Queue:
    Type: AWS::SQS::Queue
    DependsOn: Topic
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub "${AWS::StackName}-topic"
""",
    )
    assert plan_stack(template, "demo").order == ["Topic", "Queue", "Policy"]


def test_conditions_skip_resources_and_refs_to_them_are_refused(tmp_path: Path) -> None:
    text = """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  ProdTopic:
    Type: AWS::SNS::Topic
    Condition: IsProd
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !If [IsProd, !GetAtt ProdTopic.TopicName, dev-queue]
"""
    plan = plan_stack(write(tmp_path, text), "demo")
    assert plan.order == ["Queue"]
    assert plan.skipped == {"ProdTopic": "IsProd"}
    assert plan_stack(write(tmp_path, text), "demo", {"Stage": "prod"}).order == ["ProdTopic", "Queue"]

    broken = text.replace(
        "!If [IsProd, !GetAtt ProdTopic.TopicName, dev-queue]", "!GetAtt ProdTopic.TopicName"
    )
    with pytest.raises(TemplateError, match="Queue needs ProdTopic, which condition IsProd leaves out"):
        plan_stack(write(tmp_path, broken), "demo")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"Stage": "qa"}, "not one of"),
        ({"Name": "has space"}, "does not match"),
        ({"Count": "0"}, "below its MinValue"),
        ({"Count": "x"}, "not a number"),
        ({"Unknown": "1"}, "Unknown are not declared"),
    ],
)
def test_parameters_are_checked_like_cloudformation(
    tmp_path: Path, parameters: dict[str, str], message: str
) -> None:
    template = write(
        tmp_path,
        """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Name: {Type: String, Default: ok, AllowedPattern: "^[a-z]+$"}
  Count: {Type: Number, Default: 2, MinValue: 1}
Resources:
  Queue: {Type: AWS::SQS::Queue}
""",
    )
    with pytest.raises(TemplateError, match=message):
        plan_stack(template, "demo", parameters)


def test_a_parameter_without_default_must_be_given(tmp_path: Path) -> None:
    template = write(
        tmp_path, "Parameters:\n  Needed: {Type: String}\nResources:\n  Q: {Type: AWS::SQS::Queue}\n"
    )
    with pytest.raises(TemplateError, match="Needed has no Default"):
        plan_stack(template, "demo")


def test_sam_functions_with_local_code_plan_into_lambda_resources(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    template = write(
        tmp_path,
        """
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.lambda_handler
      Runtime: python3.13
      Policies: [AWSXRayDaemonWriteAccess]
      Events:
        Every: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
""",
    )
    plan = plan_stack(template, "demo")
    assert plan.resource_types == {
        "FnRole": "AWS::IAM::Role",
        "Fn": "AWS::Lambda::Function",
        "FnEvery": "AWS::Events::Rule",
        "FnEveryPermission": "AWS::Lambda::Permission",
    }
    assert plan.order.index("FnRole") < plan.order.index("Fn") < plan.order.index("FnEvery")


def test_a_missing_code_folder_is_named(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: nowhere/, Handler: app.handler, Runtime: python3.13}
""",
    )
    with pytest.raises(TemplateError, match="code folder 'nowhere/' does not exist"):
        plan_stack(template, "demo")


def test_every_resource_of_the_project_template_has_a_handler() -> None:
    """A resource added to template.yaml either provisions or this fails, naming it."""
    plain = plan_stack(ROOT / "template.yaml", "rollout")
    with_slack = plan_stack(ROOT / "template.yaml", "rollout", {"SlackWebhookSecretArn": SLACK_SECRET})
    assert set(plain.resource_types.values()) <= HANDLERS.keys()
    assert "SlackNotifier" in plain.skipped
    assert with_slack.resource_types["SlackNotifier"] == "AWS::Lambda::Function"
    assert with_slack.resource_types["SlackNotifierNotification"] == "AWS::SNS::Subscription"


def test_generated_names_follow_cloudformation_and_fit_their_limit() -> None:
    name = generated_name("rollout", "LedgerTable", 255)
    assert name.startswith("rollout-LedgerTable-") and len(name) == len("rollout-LedgerTable-") + 12
    assert name == generated_name("rollout", "LedgerTable", 255)
    long = generated_name("a-very-long-stack-name-for-testing", "AnEvenLongerLogicalIdentifierForARole", 64)
    assert len(long) <= 64 and long.startswith("a-very-long")
    bucket = generated_name("Rollout", "ArtifactBucket", 63, lowercase=True)
    assert bucket == bucket.lower() and len(bucket) <= 63


def test_template_strings_become_the_types_the_api_wants() -> None:
    model = botocore.session.get_session().get_service_model("lambda").operation_model("CreateFunction")
    params = {
        "FunctionName": "f",
        "Timeout": "60",
        "MemorySize": "512",
        "Environment": {"Variables": {"N": 5}},
    }
    coerce_parameters(params, model)
    assert params == {
        "FunctionName": "f",
        "Timeout": 60,
        "MemorySize": 512,
        "Environment": {"Variables": {"N": "5"}},
    }


def _names(data: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_layer_zip_puts_the_package_under_python_and_leaves_build_files_out(tmp_path: Path) -> None:
    package = tmp_path / "rollout"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "aws.py").write_text("")
    (package / "__pycache__" / "aws.cpython-313.pyc").write_bytes(b"")
    (tmp_path / "requirements.txt").write_text("boto3\n")
    assert _names(layer_zip(tmp_path)) == ["python/rollout/__init__.py", "python/rollout/aws.py"]
    assert _names(function_zip(tmp_path)) == ["rollout/__init__.py", "rollout/aws.py"]
    assert layer_zip(tmp_path) == layer_zip(tmp_path), "same folder, same bytes, same CodeSha256"


def test_the_project_layer_zip_holds_the_rollout_package() -> None:
    names = _names(layer_zip(ROOT / "layers" / "rollout"))
    assert "python/rollout/__init__.py" in names
    assert "python/rollout/ledger.py" in names
