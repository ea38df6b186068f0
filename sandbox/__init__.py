"""A local AWS endpoint for Rollout: moto for state, plus a Lambda runtime, a CodeDeploy engine,
event delivery, alarm evaluation and a fast clock. Never imports `rollout` or `functions`."""
