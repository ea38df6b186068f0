"""moto's per-request work cut by the sandbox (sandbox/moto_speed.py) gives moto's own answers."""

from __future__ import annotations

import random

import pytest
from moto.core import responses, utils
from moto.core.responses import BaseResponse
from moto.sqs import models as sqs_models

from sandbox import moto_speed
from tests.support.sandbox_support import client, sb, unique  # noqa: F401 - module fixture


def response_classes() -> list[type]:
    import moto.backends  # noqa: F401 - the services the sandbox serves import their response classes
    from moto.awslambda.responses import LambdaResponse
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.responses import S3Response
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse

    return [
        LambdaResponse,
        CloudWatchResponse,
        DynamoHandler,
        S3Response,
        SNSResponse,
        SQSResponse,
        BaseResponse,
    ]


def test_a_response_class_has_the_methods_moto_lists(sb) -> None:  # noqa: F811
    class Odd(BaseResponse):
        as_static = staticmethod(lambda: None)
        as_class = classmethod(lambda cls: None)
        as_property = property(lambda self: None)
        as_lambda = lambda self: None  # noqa: E731 - a function that is no def

        def put_item(self) -> None: ...

    rng = random.Random(7)
    for cls in [*response_classes(), Odd]:
        listed = utils.method_names_from_class(cls)
        names = set(dir(cls)) | {"get_item", "no_such_method", "describe_alarms", "__init__", "", "x" * 3}
        found = responses.method_names_from_class(cls)
        assert isinstance(found, moto_speed.MethodNames)
        for name in rng.sample(sorted(names), min(len(names), 400)):
            assert (name in found) == (name in listed), (cls, name)
        assert sorted(found) == sorted(listed)


def test_queue_counts_are_moto_s_at_one_instant(sb, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sqs = client(sb, "sqs")
    url = sqs.create_queue(QueueName=unique("counts"))["QueueUrl"]
    for index in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=str(index), DelaySeconds=[0, 0, 0, 5, 60][index % 5])
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=7, VisibilityTimeout=30)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=1)
    queue = sqs_models.sqs_backends[sb.account_id][sb.region].queues[url.rsplit("/", 1)[-1]]
    moments = sorted(m.visible_at for m in queue._messages) + sorted(m.delayed_until for m in queue._messages)
    names = (
        "approximate_number_of_messages",
        "approximate_number_of_messages_not_visible",
        "approximate_number_of_messages_delayed",
    )
    for instant in {*moments, *(m + 0.5 for m in moments), *(m - 0.5 for m in moments)}:
        monkeypatch.setattr(sqs_models, "unix_time_millis", lambda instant=instant: instant)
        expected = {
            "approximate_number_of_messages": len(
                [m for m in queue._messages if m.visible and not m.delayed]
            ),
            "approximate_number_of_messages_not_visible": len([m for m in queue._messages if not m.visible]),
            "approximate_number_of_messages_delayed": len([m for m in queue._messages if m.delayed]),
        }
        assert {name: getattr(queue, name) for name in names} == expected


def test_flask_s_debug_files_behave_as_flask_makes_them(sb) -> None:  # noqa: F811
    """moto's apps run Flask in debug mode, which gives each request's `files` a class that explains a
    missing file sent as a form field; the sandbox's shared class explains it in the same words."""
    from flask import Flask, debughelpers, request

    app = Flask("debug-files")
    app.debug = True
    flask_s_own = debughelpers.attach_enctype_error_multidict.original  # type: ignore[attr-defined]
    seen = []
    for attach in (flask_s_own, debughelpers.attach_enctype_error_multidict):
        outcome = []
        for form in ({"upload": "a name, not a file"}, {"other": "x"}):
            with app.test_request_context("/", method="POST", data=form):
                files = request.files
                oldcls = type(files)
                attach(request._get_current_object())  # type: ignore[attr-defined]
                newcls = type(request.files)
                with pytest.raises(KeyError) as missing:
                    request.files["upload"]
                outcome.append(
                    (
                        type(missing.value).__name__,
                        str(missing.value),
                        newcls.__name__,
                        newcls.__qualname__,
                        newcls.__module__,
                        newcls.__mro__[1] is oldcls,
                        request.files is files and dict(request.files) == {},
                    )
                )
        seen.append(outcome)
    assert seen[0] == seen[1]
    assert seen[0][0][0] == "DebugFilesKeyError" and seen[0][1][0] == "BadRequestKeyError"
