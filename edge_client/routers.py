"""Router versions on the device: a folder registry (`<data_dir>/routers`, hybrid_router.registry), filled from the
cloud (`hybrid-router routers pull`), and the deployment the device routes with (`routers use`, or the cloud's).

Everything the device routes with is on its disk, checked against its manifest's sha256: with the cloud gone, it
keeps routing with what it has. Pulling fetches each file by the presigned URL the cloud API hands out, into a
temporary folder, and keeps it only once every checksum matches.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
from hybrid_router.registry import (
    Deployment,
    Experiment,
    FolderBlobs,
    Manifest,
    RegistryError,
    RouterNotFound,
    RouterRef,
    RouterRegistry,
)

from edge_client.config import Settings


class CloudRegistryError(RegistryError):
    """The cloud's router registry could not be reached or refused the request."""


def device_registry(settings: Settings) -> RouterRegistry:
    return RouterRegistry(FolderBlobs(Path(settings.data_dir).expanduser() / "routers"))


class CloudRouters:
    """The cloud API's router routes, with the device's API key."""

    def __init__(self, settings: Settings, timeout_s: float = 60.0):
        if not settings.cloud_url:
            raise CloudRegistryError("no cloud is configured (cloud_url): routers can only be pulled from one")
        headers = {"x-api-key": settings.api_key} if settings.api_key else {}
        self.base_url = settings.cloud_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _get(self, path: str) -> dict:
        try:
            response = self._client.get(path)
        except httpx.HTTPError as exc:
            raise CloudRegistryError(f"the cloud {self.base_url} is unreachable: {exc}") from exc
        if response.status_code == 404:
            raise RouterNotFound(f"the cloud has no {path}: {response.text[:200]}")
        if response.status_code != 200:
            raise CloudRegistryError(f"the cloud answered {response.status_code} to {path}: {response.text[:200]}")
        return response.json()

    def listing(self) -> tuple[Deployment | None, list[Manifest]]:
        data = self._get("/v1/routers")
        deployment = Deployment.model_validate(data["deployment"]) if data.get("deployment") else None
        return deployment, [Manifest.model_validate(m) for m in data["versions"]]

    def pull(self, ref: RouterRef, registry: RouterRegistry) -> Manifest:
        """Downloads one version into `registry` (ChecksumMismatch if a file is not what its manifest says)."""
        data = self._get(f"/v1/routers/{ref.router_id}/versions/{ref.version}")
        manifest = Manifest.model_validate(data["manifest"])
        folder = Path(tempfile.mkdtemp(prefix="hybrid-router-pull-"))
        try:
            for name, url in data["files"].items():
                try:
                    with httpx.stream("GET", url, timeout=120.0) as response:
                        if response.status_code != 200:
                            raise CloudRegistryError(f"downloading {ref} {name}: HTTP {response.status_code}")
                        with open(folder / name, "wb") as handle:
                            for block in response.iter_bytes():
                                handle.write(block)
                except httpx.HTTPError as exc:
                    raise CloudRegistryError(f"downloading {ref} {name}: {exc}") from exc
            return registry.add(manifest, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def follow(self, registry: RouterRegistry) -> Deployment:
        """Takes the cloud's deployment: pulls its active version (and an experiment's candidate) if missing."""
        deployment, _ = self.listing()
        if deployment is None:
            raise CloudRegistryError("the cloud has no active router version yet")
        refs = [deployment.active] + ([deployment.experiment.candidate] if deployment.experiment else [])
        for ref in refs:
            try:
                registry.manifest(ref)
            except RouterNotFound:
                self.pull(ref, registry)
        before = registry.deployment()
        ended = before.experiment if before is not None and before.experiment is not None else None
        if ended is not None and (
            deployment.experiment is None or deployment.experiment.experiment_id != ended.experiment_id
        ):
            try:  # the cloud's record of how it ended (promoted or stopped), for this device's reports
                report = self._get(f"/v1/experiments/{ended.experiment_id}")
                registry.record_experiment(Experiment.model_validate(report["experiment"]))
            except (RegistryError, KeyError, ValueError):
                pass  # the local copy stays as it was; the cloud's report has the final status
        return registry.adopt(deployment)
