"""Where the edge's route decisions come from: a router-<kind> name of a kind that is not installed is the caller's
mistake (unknown model: 404 from the server, one line from the CLI), not a router outage (503)."""

from __future__ import annotations

import httpx
import pytest

from edge_client.config import Settings
from edge_client.routing_source import LocalRouteSource, RemoteRouteSource, RoutingError, UnknownRouterKind
from edge_client.service import EdgeService, UnknownModelError
from hybrid_router.backends.llama_cpp import LlamaCppBackend
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.planning import RouteQuery
from hybrid_router.registry import RouterRef
from hybrid_router.routing import RouterSpec
from hybrid_router.stores.sqlite_log import DecisionLog


def test_an_uninstalled_router_kind_is_an_unknown_model(tmp_path) -> None:
    source = LocalRouteSource()
    with pytest.raises(UnknownRouterKind, match="no router of kind 'nosuchkind'"):
        source.router_for("nosuchkind")
    settings = Settings(data_dir=str(tmp_path))
    service = EdgeService(
        settings,
        weak=LlamaCppBackend(None),
        strong=None,
        route_source=source,
        decision_log=DecisionLog(settings.decision_log_path),
    )
    request = ChatCompletionRequest(model="router-nosuchkind-0.5", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(UnknownModelError, match="router-nosuchkind-0.5.*no router of kind 'nosuchkind'"):
        service.plan(request)
    assert service.log.count() == 0


def remote(handler) -> RemoteRouteSource:
    source = RemoteRouteSource("http://cloud.test", api_key="k")
    source._client = httpx.Client(base_url="http://cloud.test", transport=httpx.MockTransport(handler))
    return source


def test_remote_router_answers_become_routing_errors() -> None:
    spec = RouterSpec(name="router-zz-0.5", kind="zz", threshold=0.5)
    not_served = remote(
        lambda request: httpx.Response(
            404, json={"error": {"message": "No router of kind 'zz' is deployed here.", "code": "model_not_found"}}
        )
    )
    with pytest.raises(UnknownRouterKind, match="does not serve 'router-zz-0.5'"):
        not_served.decide(RouteQuery("hi", spec))
    wrong_path = remote(lambda request: httpx.Response(404, json={"error": {"message": "No such route."}}))
    with pytest.raises(RoutingError) as info:
        wrong_path.decide(RouteQuery("hi", spec))
    assert not isinstance(info.value, UnknownRouterKind) and "answered 404" in str(info.value)
    not_json = remote(lambda request: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(RoutingError, match="unexpected answer: <html>gateway"):
        not_json.decide(RouteQuery("hi", spec))


def test_a_damaged_deployment_file_routes_with_the_last_proven_version(tmp_path, write_tiny_router) -> None:
    """deployment.json that is not JSON (a disk error, a bad edit): the newest proven version routes, and the status
    says why; the log says it once, not on every request."""
    pytest.importorskip("onnx")
    from edge_client.routers import device_registry, use_version

    settings = Settings(data_dir=str(tmp_path / "device"))
    registry = device_registry(settings)
    registry.register(write_tiny_router(tmp_path / "v1", version="1").parent)
    use_version(registry, RouterRef(router_id="tiny-token-mean", version="1"))  # proven in a child process
    registry.blobs.path_of("deployment.json").write_text("{ not json")
    source = LocalRouteSource(None, registry=registry, refresh_s=0)
    status = source.status
    assert status.degraded and "deployment cannot be read" in status.problem
    assert (status.in_use, status.source) == ("tiny-token-mean@1", "last good version")
    assert source.decide(RouteQuery("hi", RouterSpec(name="router"))).router_version == "1"
    assert source._now() is source._now()  # the same problem is not rebuilt (nor logged) again
