"""Router versions on the device: a folder registry (`<data_dir>/routers`, hybrid_router.registry), filled from the
cloud (`hybrid-router routers pull`), and the deployment the device routes with (`routers use`, or the cloud's).

A version becomes active (`routers use`, or `routers pull` following the cloud) only once it has loaded and scored
a prompt in a child process (`prove`, hybrid_router.routing.probe); the versions proven so are remembered, and the
device falls back to them when the active one cannot load (edge_client.routing_source).

Everything the device routes with is on its disk, checked against its manifest's sha256: with the cloud gone, it
keeps routing with what it has. Pulling fetches each file by the presigned URL the cloud API hands out (a ranged
GET that stops at the size the manifest declares), into a temporary folder inside the device's router folder, and
keeps it only once every checksum matches (hybrid_router.registry.receive_version). A manifest whose file names
are not plain names is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from edge_client.config import Settings
from hybrid_router.decision import utc_now_iso
from hybrid_router.registry import (
    Deployment,
    Experiment,
    FileEntry,
    FolderBlobs,
    Manifest,
    RegistryError,
    RouterNotFound,
    RouterRef,
    RouterRegistry,
    receive_version,
)
from hybrid_router.routing.probe import probe_router

log = logging.getLogger("hybrid_router.edge")


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
        self.staging = Path(settings.data_dir).expanduser() / "routers"
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
        """Downloads one version into `registry` (ChecksumMismatch if a file is not what its manifest says,
        TooLarge if it is larger, RegistryError if the manifest names a file outside the version's folder)."""
        data = self._get(f"/v1/routers/{ref.router_id}/versions/{ref.version}")
        try:
            manifest = Manifest.model_validate(data["manifest"])
        except (KeyError, ValueError) as exc:
            raise RegistryError(f"the cloud's manifest of {ref} is refused: {_first_error(exc)}") from None
        if manifest.ref != ref:
            raise RegistryError(f"the cloud answered {ref} with the manifest of {manifest.ref}; refused")
        urls = data.get("files") or {}
        missing = sorted(set(manifest.files) - set(urls))
        if missing:
            raise CloudRegistryError(f"the cloud gave no download URL for {ref} {', '.join(missing)}")
        self.staging.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.staging, prefix=".pull-"))
        try:
            receive_version(manifest, lambda name, limit: _download(urls[name], limit, f"{ref} {name}"), folder)
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
        for ref in refs:  # nothing the cloud names routes here before it loads in a child process
            _prove_or_refuse(registry, ref)
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


def _download(url: str, limit: int, what: str) -> Iterator[bytes]:
    """The first `limit` + 1 bytes at `url` (a ranged GET; a server that ignores the range is cut off there)."""
    try:
        with httpx.stream("GET", url, headers={"Range": f"bytes=0-{limit}"}, timeout=120.0) as response:
            if response.status_code == 416:  # no byte 0: the file is empty
                return
            if response.status_code not in (200, 206):
                raise CloudRegistryError(f"downloading {what}: HTTP {response.status_code}")
            yield from response.iter_bytes()
    except httpx.HTTPError as exc:
        raise CloudRegistryError(f"downloading {what}: {exc}") from exc


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', '').removeprefix('Value error, ')}"
    return str(exc)


# Versions proven to load: each was loaded and made to score a prompt in a child process (a file that crashes or
# breaks onnxruntime is refused there, not in the CLI or the server). The record keeps the files' checksums, so a
# version whose files or manifest change is proven again before it is loaded in-process.
PROVEN = "proven.json"


class RouterRefused(RegistryError):
    """A router version did not load and score in a child process: it cannot become active."""


class ProvenVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: RouterRef
    files: dict[str, FileEntry]
    proven_at: str = Field(default_factory=utc_now_iso)


class ProvenList(BaseModel):
    versions: list[ProvenVersion] = Field(default_factory=list)


def _proven_list(registry: RouterRegistry) -> ProvenList:
    data = registry.blobs.get(PROVEN)
    try:
        return ProvenList.model_validate_json(data) if data else ProvenList()
    except ValueError:
        log.warning("%s is not readable; every version will be proven again before it loads", PROVEN)
        return ProvenList()


def proven_versions(registry: RouterRegistry) -> list[RouterRef]:
    """The versions proven to load on this device, the most recently proven first."""
    return [entry.ref for entry in reversed(_proven_list(registry).versions)]


def _is_proven(registry: RouterRegistry, manifest: Manifest) -> bool:
    return any(e.ref == manifest.ref and e.files == manifest.files for e in _proven_list(registry).versions)


def _remember_proven(registry: RouterRegistry, manifest: Manifest) -> None:
    kept = [entry for entry in _proven_list(registry).versions if entry.ref != manifest.ref]
    kept.append(ProvenVersion(ref=manifest.ref, files=manifest.files))
    try:
        registry.blobs.put(PROVEN, ProvenList(versions=kept).model_dump_json(indent=2).encode())
    except OSError as exc:  # a read-only data folder: the version still routes, and is proven again next time
        log.warning("cannot remember that %s loads (%s); it will be proven again", manifest.ref, exc)


def prove(registry: RouterRegistry, ref: RouterRef) -> Path:
    """The version's folder, once its files match its manifest and it has loaded and scored a prompt in a child
    process (now, or before with the same files). RouterRefused (or ChecksumMismatch) otherwise."""
    folder = registry.local_folder(ref)  # every file checked against the manifest
    manifest = registry.manifest(ref)
    if _is_proven(registry, manifest):
        return folder
    result = probe_router(folder)
    if not result.ok:
        raise RouterRefused(f"router {ref} does not load: {result.detail}")
    said = json.loads(result.detail)
    if (said.get("router_id"), said.get("version")) != (ref.router_id, ref.version):
        raise RouterRefused(
            f"router {ref} says it is {said.get('router_id')}@{said.get('version')} in its own metadata; refused"
        )
    _remember_proven(registry, manifest)
    return folder


def _in_use(registry: RouterRegistry) -> str:
    deployment = registry.deployment()
    return str(deployment.active) if deployment is not None else "the packaged router"


def use_version(registry: RouterRegistry, ref: RouterRef) -> Deployment:
    """Makes `ref` the device's active version, once it is proven to load (RouterRefused otherwise: the active
    version stays)."""
    _prove_or_refuse(registry, ref)
    return registry.activate(ref)


def _prove_or_refuse(registry: RouterRegistry, ref: RouterRef) -> None:
    try:
        prove(registry, ref)
    except RouterRefused as exc:
        raise RouterRefused(
            f"{exc}; it was not made active, the device keeps routing with {_in_use(registry)}"
        ) from None
