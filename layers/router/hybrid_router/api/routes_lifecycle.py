"""Router lifecycle routes: GET /v1/routers, GET /v1/routers/{id}/versions/{v}, GET /v1/experiments/{id}.

Versions are registered and experiments started in the bucket itself (hybrid_router.registry, with AWS
credentials: `hybrid-router routers register --bucket`); these routes let a device see and fetch them with its API
key. Files are fetched from S3 by presigned URL (a router is larger than a Lambda response may be).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from hybrid_router.api.deps import caller, services
from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity
from hybrid_router.api.services import Services
from hybrid_router.experiments import ExperimentReport, report
from hybrid_router.registry import Deployment, Manifest, RouterRef

router = APIRouter()
URL_LIFETIME_S = 900


class RouterList(BaseModel):
    deployment: Deployment | None
    versions: list[Manifest]


class RouterVersion(BaseModel):
    manifest: Manifest
    files: dict[str, str]  # file name -> presigned GET URL (valid URL_LIFETIME_S seconds)
    expires_in_s: int = URL_LIFETIME_S


@router.get("/v1/routers", response_model=RouterList)
def list_routers(_: Identity = Depends(caller), svc: Services = Depends(services)) -> RouterList:
    """Every registered router version, and the deployment (active version, running experiment)."""
    registry = svc.registry
    return RouterList(deployment=svc.call_registry(registry.deployment), versions=svc.call_registry(registry.versions))


@router.get("/v1/routers/{router_id}/versions/{version}", response_model=RouterVersion)
def router_version(router_id: str, version: str, _: Identity = Depends(caller),
                   svc: Services = Depends(services)) -> RouterVersion:
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


@router.get("/v1/experiments/{experiment_id}", response_model=ExperimentReport)
def experiment_report(experiment_id: str, who: Identity = Depends(caller),
                      svc: Services = Depends(services)) -> ExperimentReport:
    """The experiment's report over the caller's own decisions and ratings (hybrid_router.experiments.report)."""
    experiment = svc.call_registry(svc.registry.experiment, experiment_id)
    records = svc.call_store("experiment_records", svc.store.records_for_device, who.tenant_id, who.device_id,
                             experiment.started_at)
    ratings = svc.call_store("experiment_ratings", svc.store.ratings_for_device, who.tenant_id, who.device_id)
    return report(experiment, records, ratings)
