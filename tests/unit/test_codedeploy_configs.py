import pytest

from sandbox.codedeploy.configs import (
    BUILTIN_CONFIGS,
    LAMBDA_BUILTINS,
    ConfigError,
    ShiftStep,
    shifting_seconds,
    validate_traffic_routing,
    weight_schedule,
)


def test_the_nine_lambda_builtins_exist():
    assert (
        sorted(
            [
                "CodeDeployDefault.LambdaAllAtOnce",
                "CodeDeployDefault.LambdaCanary10Percent5Minutes",
                "CodeDeployDefault.LambdaCanary10Percent10Minutes",
                "CodeDeployDefault.LambdaCanary10Percent15Minutes",
                "CodeDeployDefault.LambdaCanary10Percent30Minutes",
                "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
                "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes",
                "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
                "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
            ]
        )
        == LAMBDA_BUILTINS
    )


def test_canary_is_p_for_one_interval_then_everything():
    routing = BUILTIN_CONFIGS["CodeDeployDefault.LambdaCanary10Percent5Minutes"].traffic_routing
    assert routing is not None
    assert weight_schedule(routing) == [ShiftStep(0.0, 0.1), ShiftStep(300.0, 1.0)]
    assert shifting_seconds(routing) == 300.0


def test_linear_steps_by_p_each_interval_until_one():
    routing = BUILTIN_CONFIGS["CodeDeployDefault.LambdaLinear10PercentEvery2Minutes"].traffic_routing
    assert routing is not None
    schedule = weight_schedule(routing)
    assert [s.weight for s in schedule] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert [s.offset for s in schedule] == [k * 120.0 for k in range(10)]


def test_linear_with_uneven_percentage_caps_the_last_step_at_one():
    schedule = weight_schedule(
        validate_traffic_routing(
            {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 30, "linearInterval": 1}}
        )
    )
    assert [s.weight for s in schedule] == [0.3, 0.6, 0.9, 1.0]


def test_all_at_once_is_one_step():
    assert weight_schedule({"type": "AllAtOnce"}) == [ShiftStep(0.0, 1.0)]


@pytest.mark.parametrize(
    "routing",
    [
        None,
        {},
        {"type": "TimeBasedCanary"},
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 0, "canaryInterval": 5}},
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 100, "canaryInterval": 5}},
        {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 0}},
        {"type": "TimeBasedLinear", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 5}},
        {"type": "Sideways"},
    ],
)
def test_invalid_custom_routing_is_refused(routing):
    with pytest.raises(ConfigError) as refused:
        validate_traffic_routing(routing)
    assert refused.value.code == "InvalidTrafficRoutingConfigurationException"


def test_custom_routing_is_normalised_to_its_type():
    routing = validate_traffic_routing(
        {
            "type": "TimeBasedCanary",
            "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 2},
            "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 1},
        }
    )
    assert routing == {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 2},
    }


def test_builtin_info_has_the_aws_shape():
    info = BUILTIN_CONFIGS["CodeDeployDefault.LambdaAllAtOnce"].to_info()
    assert info["computePlatform"] == "Lambda"
    assert info["trafficRoutingConfig"] == {"type": "AllAtOnce"}
    assert set(info) >= {"deploymentConfigId", "deploymentConfigName", "createTime"}
