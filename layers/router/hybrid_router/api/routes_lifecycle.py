"""Router lifecycle routes: GET /v1/routers, GET /v1/routers/{id}/versions/{v}, GET /v1/experiments/{id}, and the
dashboard (GET /dashboard and its chart script), all behind the API key.

Versions are registered and experiments started in the bucket itself (hybrid_router.registry, with AWS
credentials: `hybrid-router routers register --bucket`); these routes let a device see and fetch them with its API
key. Files are fetched from S3 by presigned URL (a router is larger than a Lambda response may be).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from hybrid_router.api.deps import caller, services
from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity
from hybrid_router.api.openapi import errors
from hybrid_router.api.services import Services
from hybrid_router.dashboard import DASHBOARD_MAX_DAYS
from hybrid_router.experiments import ExperimentReport, report
from hybrid_router.registry import Deployment, Manifest, RouterRef, check_name

router = APIRouter()
URL_LIFETIME_S = 900


class RouterList(BaseModel):
    deployment: Deployment | None
    versions: list[Manifest]


class RouterVersion(BaseModel):
    manifest: Manifest
    files: dict[str, str]  # file name -> presigned GET URL (valid URL_LIFETIME_S seconds)
    expires_in_s: int = URL_LIFETIME_S


@router.get("/v1/routers", response_model=RouterList, responses=errors(404, 503))
def list_routers(_: Identity = Depends(caller), svc: Services = Depends(services)) -> RouterList:
    """Every registered router version, and the deployment (active version, running experiment)."""
    registry = svc.registry
    return RouterList(deployment=svc.call_registry(registry.deployment), versions=svc.call_registry(registry.versions))


@router.get("/v1/routers/{router_id}/versions/{version}", response_model=RouterVersion, responses=errors(404, 422, 503))
def router_version(
    router_id: str, version: str, _: Identity = Depends(caller), svc: Services = Depends(services)
) -> RouterVersion:
    """A version's manifest (sha256 of each file) and presigned URLs to download its files."""
    try:
        ref = RouterRef(router_id=router_id, version=version)
    except ValueError as exc:
        raise ApiError(422, str(exc), code="invalid_value") from None
    registry = svc.registry
    manifest = svc.call_registry(registry.manifest, ref)
    blobs: Any = registry.blobs
    files = {name: svc.call_registry(blobs.presigned_url, ref.prefix + name, URL_LIFETIME_S) for name in manifest.files}
    return RouterVersion(manifest=manifest, files=files)


@router.get("/v1/experiments/{experiment_id}", response_model=ExperimentReport, responses=errors(404, 422, 502, 503))
def experiment_report(
    experiment_id: str, who: Identity = Depends(caller), svc: Services = Depends(services)
) -> ExperimentReport:
    """The experiment's report over the caller's own decisions and ratings (hybrid_router.experiments.report)."""
    try:
        check_name(experiment_id, "experiment id")
    except ValueError as exc:
        raise ApiError(422, str(exc), code="invalid_value", param="experiment_id") from None
    experiment = svc.call_registry(svc.registry.experiment, experiment_id)
    mine = svc.store.for_device(who.tenant_id, who.device_id)
    records = svc.call_store("experiment_records", mine.records, experiment.started_at)
    ratings = svc.call_store("experiment_ratings", mine.ratings)
    return report(experiment, records, ratings)


@router.get("/dashboard", response_class=HTMLResponse, responses=errors(422, 502, 503))
def dashboard(
    days: int = Query(default=30, ge=1, le=DASHBOARD_MAX_DAYS),
    who: Identity = Depends(caller),
    svc: Services = Depends(services),
) -> HTMLResponse:
    """The caller's dashboard over its last `days` days (hybrid_router.dashboard: the numbers of /v1/usage)."""
    from hybrid_router.dashboard import page

    since = (datetime.now(UTC) - timedelta(days=days - 1)).date().isoformat()
    mine = svc.store.for_device(who.tenant_id, who.device_id)
    records = svc.call_store("dashboard", mine.records, since)
    ratings = svc.call_store("dashboard_ratings", mine.ratings)
    title = f"hybrid-router cloud: {who.tenant_id}/{who.device_id}, last {days} days"
    return HTMLResponse(page(records, ratings, title))


@router.get(
    "/dashboard/chart.umd.min.js",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}}}},
)
def dashboard_chart_js(_: Identity = Depends(caller)) -> Response:
    """Chart.js (MIT; hybrid_router/static/chart.js-LICENSE.md), served here: the page needs no CDN."""
    from hybrid_router.dashboard import chart_js

    return Response(chart_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
