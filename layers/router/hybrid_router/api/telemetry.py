"""What the API reports about its decisions. In Lambda: Powertools EMF metrics (namespace HybridRouter)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from hybrid_router.decision import DecisionRecord

log = logging.getLogger("hybrid_router.api")


class Telemetry(Protocol):
    def decision(self, record: DecisionRecord, source: str) -> None:
        """One decision answered here (`source` "chat") or newly stored from a device's upload (`source` "device";
        a re-sent record, already stored, is not counted again)."""

    def route_only(self, route: str, router_latency_ms: float) -> None:
        """One POST /v1/route decision (no answer, no record here)."""

    def batch(self, accepted: int, duplicates: int, failed: int) -> None: ...

    def store_failure(self, operation: str, error: str, record: DecisionRecord | None = None) -> None:
        """A store call failed; `record`, when given, is logged whole so it can be replayed from the logs."""


class LogTelemetry:
    """Plain logging; used under uvicorn and in tests."""

    def decision(self, record: DecisionRecord, source: str) -> None:
        log.info(
            "decision %s source=%s route=%s reason=%s cost=%.6f",
            record.decision_id,
            source,
            record.route,
            record.reason,
            record.cost_usd,
        )

    def route_only(self, route: str, router_latency_ms: float) -> None:
        log.info("route-only decision route=%s latency_ms=%.2f", route, router_latency_ms)

    def batch(self, accepted: int, duplicates: int, failed: int) -> None:
        log.info("decision batch accepted=%d duplicates=%d failed=%d", accepted, duplicates, failed)

    def store_failure(self, operation: str, error: str, record: DecisionRecord | None = None) -> None:
        log.error(
            "decision store %s failed: %s; record: %s",
            operation,
            error,
            record.model_dump_json() if record is not None else "-",
        )


class PowertoolsTelemetry:
    """EMF metrics through a Powertools `Metrics` object (flushed by its `log_metrics` handler decorator).

    StrongShare is 100 for a strong answer and 0 for a weak one: its Average statistic is the strong share.
    """

    def __init__(self, metrics: Any, logger: Any | None = None):
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics = metrics
        self._logger = logger
        self._unit = MetricUnit

    def _add(self, name: str, unit: Any, value: float) -> None:
        self._metrics.add_metric(name=name, unit=unit, value=value)

    def decision(self, record: DecisionRecord, source: str) -> None:
        unit = self._unit
        prefix = "Device" if source == "device" else ""
        self._add(f"{prefix}Requests", unit.Count, 1)
        self._add(f"{prefix}{record.route.capitalize()}Requests", unit.Count, 1)
        self._add(f"{prefix}StrongShare", unit.Percent, 100.0 if record.route == "strong" else 0.0)
        self._add(f"{prefix}CostUSD", unit.NoUnit, record.cost_usd)
        self._add(f"{prefix}SavingsUSD", unit.NoUnit, record.saving_usd)
        self._add(f"{prefix}RouterLatency", unit.Milliseconds, record.router_latency_ms)
        if record.status != "ok":
            self._add(f"{prefix}FailedRequests", unit.Count, 1)
        if self._logger is not None and source == "chat":
            self._logger.info(
                "decision",
                extra={
                    "decision_id": record.decision_id,
                    "route": record.route,
                    "reason": record.reason,
                    "cost_usd": record.cost_usd,
                },
            )

    def route_only(self, route: str, router_latency_ms: float) -> None:
        unit = self._unit
        self._add("RouteOnlyRequests", unit.Count, 1)
        self._add(f"RouteOnly{route.capitalize()}Requests", unit.Count, 1)
        self._add("RouteOnlyStrongShare", unit.Percent, 100.0 if route == "strong" else 0.0)
        self._add("RouterLatency", unit.Milliseconds, router_latency_ms)

    def batch(self, accepted: int, duplicates: int, failed: int) -> None:
        unit = self._unit
        self._add("RecordsAccepted", unit.Count, accepted)
        self._add("RecordsDuplicate", unit.Count, duplicates)
        self._add("RecordsFailed", unit.Count, failed)

    def store_failure(self, operation: str, error: str, record: DecisionRecord | None = None) -> None:
        self._add("DecisionStoreFailures", self._unit.Count, 1)
        if self._logger is not None:
            unstored = record.model_dump(mode="json") if record is not None else None
            self._logger.error(
                "decision store failure", extra={"operation": operation, "error": error, "unstored_record": unstored}
            )


class FlushingPowertoolsTelemetry(PowertoolsTelemetry):
    """For an app with no handler around each invocation to flush its metrics (the chat function, run by the Lambda
    Web Adapter): every event's metrics are written (EMF lines on stdout, read by CloudWatch) as soon as they are
    added, a streamed answer's when its record is written."""

    def _flush(self) -> None:
        self._metrics.flush_metrics(raise_on_empty_metrics=False)

    def decision(self, record: DecisionRecord, source: str) -> None:
        super().decision(record, source)
        self._flush()

    def route_only(self, route: str, router_latency_ms: float) -> None:
        super().route_only(route, router_latency_ms)
        self._flush()

    def batch(self, accepted: int, duplicates: int, failed: int) -> None:
        super().batch(accepted, duplicates, failed)
        self._flush()

    def store_failure(self, operation: str, error: str, record: DecisionRecord | None = None) -> None:
        super().store_failure(operation, error, record)
        self._flush()
