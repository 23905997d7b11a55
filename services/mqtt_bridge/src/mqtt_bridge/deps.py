"""Typed dependencies: what routes reach of the lifespan's resources.

They are ``async`` because they do no I/O: FastAPI would run plain functions on a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mqtt_bridge.bridge import Bridge
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.outbox import Outbox
from mqtt_bridge.publishing import PublishPolicy


async def get_outbox(request: Request) -> Outbox:
    """The durable outbox."""
    bridge: Bridge = request.state.bridge
    return bridge.outbox


async def get_publish_policy(request: Request) -> PublishPolicy:
    """What ``POST /v1/publish`` may publish to."""
    bridge: Bridge = request.state.bridge
    return bridge.publish_policy


async def get_metrics(request: Request) -> BridgeMetrics:
    """The bridge's metrics."""
    metrics: BridgeMetrics = request.app.state.bridge_metrics
    return metrics


OutboxDep = Annotated[Outbox, Depends(get_outbox)]
MetricsDep = Annotated[BridgeMetrics, Depends(get_metrics)]
PublishPolicyDep = Annotated[PublishPolicy, Depends(get_publish_policy)]
