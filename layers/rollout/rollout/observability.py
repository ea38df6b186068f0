"""Logger, Tracer and Metrics, set up the same way for every function.

Tracing stays behind Powertools' Tracer (so it can move off the X-Ray SDK, whose support ends in
February 2027) and patches only botocore: Tracer's default patches every library it knows, which
roughly doubles cold-start import time.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "rollout")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Rollout")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, patch_modules=["botocore"])
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
