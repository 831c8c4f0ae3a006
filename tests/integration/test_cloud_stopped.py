"""The local cloud stack stopped in the middle of a strong stream, then started again on its data folder: what the
user saw, what each side recorded, and that a sync afterwards leaves exactly one record of the request in the cloud,
agreeing with the device's.

Every hop is real: edge service -> cloud API (uvicorn) -> SageMaker runtime stand-in -> llama.cpp; records ->
SQLite -> sync -> cloud API -> DynamoDB (moto), snapshotted to the stack's data folder when it stops."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from edge_client.config import Settings
from edge_client.factory import build_service
from edge_client.sync import SyncError, sync_decisions
from hybrid_router.backends.base import BackendError
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client
from hybrid_router.usage import UsageSummary

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def _settings(info, data_dir) -> Settings:
    return Settings(
        cloud_url=info.api_url,
        api_key=info.api_key,
        data_dir=str(data_dir),
        n_threads=1,
        tenant_id=info.tenant,
        device_id=info.device,
        strong_timeout_s=20.0,
    )


def test_cloud_stopped_mid_stream_then_restarted_loses_and_doubles_nothing(tmp_path):
    from local_stack.stack import start_stack

    stack_dir, table = tmp_path / "stack", f"stopped-{uuid.uuid4().hex[:8]}"
    first = start_stack("smollm2", n_threads=1, state_file=None, table_name=table, data_dir=stack_dir)
    stopper: threading.Thread | None = None
    try:
        service = build_service(_settings(first.info, tmp_path / "device"))
        request = ChatCompletionRequest(
            model="strong",
            stream=True,
            max_tokens=400,
            messages=[{"role": "user", "content": "Write a very long story about a dragon and a lighthouse."}],
        )
        answer = service.stream(request)
        pieces: list[str] = []
        seen_error: BackendError | None = None
        try:
            for piece in answer:
                pieces.append(piece)
                if len(pieces) == 5:  # the cloud goes away while the answer is arriving
                    stopper = threading.Thread(target=first.stop, daemon=True)
                    stopper.start()
        except BackendError as error:
            seen_error = error
    finally:
        if stopper is not None:
            stopper.join(timeout=60)
        first.stop()

    assert seen_error is not None, f"the stream ended as if complete after {len(pieces)} pieces"
    assert 5 <= len(pieces) < 400
    device_record = service.log.get(answer.record.decision_id)
    assert device_record is not None and device_record.status == "error" and device_record.route == "strong"
    assert device_record.completion_tokens >= 5 and device_record.cost_usd > 0  # delivered tokens are charged

    with start_stack("smollm2", n_threads=1, state_file=None, table_name=table, data_dir=stack_dir) as second:
        assert second.info.api_key == first.info.api_key  # the device's key still works
        with pytest.raises(SyncError):  # the first stack's URL is gone for good
            sync_decisions(
                service.log, first.info.api_url, api_key=first.info.api_key, max_retries=1, base_delay_s=0.01
            )
        report = sync_decisions(service.log, second.info.api_url, api_key=second.info.api_key)
        assert report.remaining == 0 and report.failed == []
        store = DynamoDecisionStore(
            table, client=make_client(endpoint_url=second.info.dynamodb_url, region=second.info.region)
        )
        cloud_ids = [r.decision_id for r in store.records_for_device(second.info.tenant, second.info.device)]
        assert cloud_ids == [device_record.decision_id]  # one record of the request: kept over the stop, merged once
        response = httpx.get(f"{second.info.api_url}/v1/usage", headers={"x-api-key": second.info.api_key}, timeout=30)
        assert response.status_code == 200
        cloud = UsageSummary.model_validate(response.json())
        device = UsageSummary.from_records(service.log.records())
        assert cloud.totals.requests == device.totals.requests == 1
        assert cloud.totals.cost_usd == pytest.approx(device.totals.cost_usd, abs=1e-12)
        print(
            f"FIGURE cloud stopped mid-stream: user saw {len(pieces)} pieces then {seen_error.cause} "
            f"({seen_error}); device record {device_record.status}/{device_record.error}, "
            f"{device_record.completion_tokens} tokens charged; cloud records after restart and sync: "
            f"{len(cloud_ids)}"
        )
