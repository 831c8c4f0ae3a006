"""Versioned routers: router files kept by id and version, sha256-checked, and the deployment that names the active
version (and the running experiment). One registry, over two kinds of storage:

- `S3Blobs`: the cloud's bucket (template.yaml `RoutersBucket`; moto's S3 on the local stack).
- `FolderBlobs`: a folder on the device (`<data_dir>/routers`), filled by `hybrid-router routers pull`.

Layout (keys in the bucket, paths in the folder):

  routers/<router_id>/<version>/router.onnx, tokenizer.json   the router's files
  routers/<router_id>/<version>/manifest.json                 Manifest: each file's sha256 and size (written last)
  deployment.json                                             Deployment: the active version, the experiment
  experiments/<experiment_id>.json                            Experiment: every experiment ever started

A version is written once: registering the same id and version again with other bytes is refused
(VersionExists), so a version names one set of bytes everywhere. Files are checked against the manifest whenever
they are read into a local folder (ChecksumMismatch otherwise). A manifest's file names are plain names (no
separators, no `..`, nothing absolute), so no file of a version can land outside its folder, and a download stops
at the size its manifest declares: each file is streamed into a temporary file beside its destination, with a byte
limit, and renamed only once its size and sha256 match (`receive_file`).

The API function reads `deployment.json` at most every `refresh_s` seconds (`LiveDeployment`, which the device's
server uses too) and loads each version once into its cache folder, so changing the active version is one write
to the bucket, not a deployment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hybrid_router.decision import utc_now_iso

MANIFEST = "manifest.json"
DEPLOYMENT = "deployment.json"
ROUTER_FILES = ("router.onnx", "tokenizer.json")
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
BLOCK = 1 << 20


class RegistryError(RuntimeError):
    """The registry could not do what was asked; the message says why."""


class RouterNotFound(RegistryError, LookupError):
    """No router with that id and version is registered."""


class ExperimentNotFound(RegistryError, LookupError):
    """No experiment with that id."""


class VersionExists(RegistryError):
    """That id and version is registered already, with other bytes: a version is never replaced."""


class ChecksumMismatch(RegistryError):
    """A router file's bytes do not match its manifest (damaged or tampered with)."""


class TooLarge(ChecksumMismatch):
    """A router file is larger than its manifest declares: the download stopped at the declared size."""


def check_name(value: str, what: str) -> str:
    """The one rule for router ids, versions, experiment ids and file names (they become S3 keys, folder and file
    names): 1-128 letters, digits, '.', '_' or '-', not starting with '.'; ValueError otherwise."""
    if not value or len(value) > 128 or not set(value) <= _SAFE or value.startswith("."):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"{what} must be 1-128 characters of letters, digits, '.', '_' or '-', got {shown!r}")
    return value


class RouterRef(BaseModel):
    """One router version: `<router_id>@<version>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    router_id: str
    version: str

    @field_validator("router_id", "version")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_name(value, "router id and version")

    @classmethod
    def parse(cls, text: str) -> RouterRef:
        router_id, at, version = text.partition("@")
        if not at:
            raise ValueError(f"a router version is written <router_id>@<version>, got {text!r}")
        return cls(router_id=router_id, version=version)

    def __str__(self) -> str:
        return f"{self.router_id}@{self.version}"

    @property
    def prefix(self) -> str:
        return f"routers/{self.router_id}/{self.version}/"


def file_name(value: str) -> str:
    """A manifest's file name: a plain name in the version's folder (no separator, no `..`, not absolute, no NUL),
    1-128 characters of letters, digits, '.', '_' or '-', not starting with '.', and not the manifest itself."""
    if value == MANIFEST or not value or len(value) > 128 or not set(value) <= _SAFE or value.startswith("."):
        raise ValueError(
            f"a router file name must be a plain name of 1-128 letters, digits, '.', '_' or '-' (no path, "
            f"not starting with '.', not {MANIFEST}), got {value[:200]!r}"
        )
    return value


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    router_id: str
    version: str
    kind: str
    strong_model: str
    weak_model: str
    default_threshold: float
    files: dict[str, FileEntry]
    registered_at: str = Field(default_factory=utc_now_iso)

    @field_validator("router_id", "version")
    @classmethod
    def _safe_ref(cls, value: str) -> str:
        return check_name(value, "router id and version")

    @field_validator("files")
    @classmethod
    def _plain_names(cls, value: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for name in value:
            file_name(name)
        return value

    @property
    def ref(self) -> RouterRef:
        return RouterRef(router_id=self.router_id, version=self.version)


class Experiment(BaseModel):
    """A control and a candidate router version on live traffic.

    shadow: the control routes every prompt; the candidate scores it too and the record keeps its decision.
    ab: a deterministic `share` of requests, chosen by decision id (hybrid_router.experiments.arm_for), is routed by
    the candidate; the other arm's router scores those prompts too, so agreement is known in both modes.
    """

    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    mode: Literal["shadow", "ab"]
    control: RouterRef
    candidate: RouterRef
    share: float = Field(0.5, ge=0.0, le=1.0)
    status: Literal["running", "promoted", "stopped"] = "running"
    started_at: str = Field(default_factory=utc_now_iso)
    ended_at: str | None = None

    @field_validator("experiment_id")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_name(value, "experiment id")


class Deployment(BaseModel):
    """What routes: the active router version and, while one runs, the experiment."""

    model_config = ConfigDict(extra="forbid")

    active: RouterRef
    experiment: Experiment | None = None
    updated_at: str = Field(default_factory=utc_now_iso)


class Blobs(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, data: bytes) -> None: ...
    def keys(self, prefix: str) -> Iterator[str]: ...
    def read(self, key: str, limit: int) -> Iterator[bytes]:
        """The blob's bytes in blocks, at most `limit` + 1 of them (one more than allowed shows it is larger)."""
        ...


class FolderBlobs:
    """Keys as files under `root`; each file is written whole (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return inside(self.root, key)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)

    def keys(self, prefix: str) -> Iterator[str]:
        base = self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            key = path.relative_to(base).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith("."):
                yield key

    def read(self, key: str, limit: int) -> Iterator[bytes]:
        with open(self._path(key), "rb") as handle:
            left = limit + 1
            while left > 0:
                block = handle.read(min(BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def path_of(self, key: str) -> Path:
        return self._path(key)


class S3Blobs:
    """Keys in one S3 bucket (boto3 finds a local stand-in through AWS_ENDPOINT_URL_S3)."""

    def __init__(self, bucket: str, client: Any = None, region: str | None = None):
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client("s3", region_name=region, config=Config(s3={"addressing_style": "path"}))
        self.bucket = bucket
        self.client = client

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def keys(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def read(self, key: str, limit: int) -> Iterator[bytes]:
        """A ranged GET of the first `limit` + 1 bytes: S3 never sends more than that."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}")["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # only an empty object has no byte 0
                return
            raise
        try:
            yield from iter(lambda: body.read(BLOCK), b"")
        finally:
            body.close()

    def presigned_url(self, key: str, expires_s: int = 900) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused (RegistryError) unless it resolves to a path inside `folder`."""
    base = folder.resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise RegistryError(f"{name[:200]!r} is outside {folder}; refused")
    return folder / name


def receive_file(blocks: Iterable[bytes], folder: Path, name: str, entry: FileEntry, what: str) -> Path:
    """Writes one file of a manifest into `folder`: streamed into a temporary file there, stopped as soon as it
    passes the size the manifest declares (TooLarge), renamed to its name only once its size and sha256 match
    (ChecksumMismatch otherwise). The temporary file is removed whatever goes wrong."""
    dest = inside(folder, file_name(name))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
    digest, size = hashlib.sha256(), 0
    source = iter(blocks)
    try:
        with os.fdopen(fd, "wb") as handle:
            for block in source:
                size += len(block)
                if size > entry.bytes:
                    raise TooLarge(
                        f"{what}: {name} is larger than the {entry.bytes} bytes its manifest declares; "
                        "the download was stopped there and nothing was kept"
                    )
                digest.update(block)
                handle.write(block)
        if size != entry.bytes or digest.hexdigest() != entry.sha256:
            raise ChecksumMismatch(
                f"{what}: {name} has {size} bytes with sha256 {digest.hexdigest()}, the manifest says "
                f"{entry.bytes} bytes with sha256 {entry.sha256}"
            )
        os.replace(temp, dest)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    finally:
        close = getattr(source, "close", None)
        if close is not None:  # a generator over a connection: closing it hangs up now, not at garbage collection
            close()
    return dest


def receive_version(manifest: Manifest, read: Callable[[str, int], Iterable[bytes]], folder: Path) -> None:
    """Every file of `manifest` into `folder` (receive_file); `read(name, limit)` gives a file's bytes."""
    for name, entry in manifest.files.items():
        receive_file(read(name, entry.bytes), folder, name, entry, str(manifest.ref))


def verify_folder(folder: Path, manifest: Manifest) -> None:
    """ChecksumMismatch unless every file of the manifest is in `folder` with its size and sha256."""
    for name, entry in manifest.files.items():
        path = inside(folder, name)
        if not path.is_file():
            raise ChecksumMismatch(f"{manifest.ref}: {name} is missing from {folder}")
        actual = sha256_file(path)
        if path.stat().st_size != entry.bytes or actual != entry.sha256:
            raise ChecksumMismatch(f"{manifest.ref}: {name} has sha256 {actual}, the manifest says {entry.sha256}")


def manifest_for(path: str | os.PathLike[str]) -> tuple[Manifest, dict[str, Path]]:
    """The manifest of a router folder (or its router.onnx), from the router's own metadata, and its files."""
    from hybrid_router.routing import load_router
    from hybrid_router.routing.artifact import resolve_router_path

    onnx_path = resolve_router_path(path)
    info = load_router(onnx_path).info  # a file that does not load as a router is refused here
    files = {name: onnx_path.parent / name for name in ROUTER_FILES}
    missing = [name for name, file in files.items() if not file.is_file()]
    if missing:
        raise RegistryError(f"{onnx_path.parent} lacks {', '.join(missing)}")
    manifest = Manifest(
        router_id=check_name(info.router_id, "router id"),
        version=check_name(info.version, "version"),
        kind=info.kind,
        strong_model=info.strong_model,
        weak_model=info.weak_model,
        default_threshold=info.default_threshold,
        files={name: FileEntry(sha256=sha256_file(file), bytes=file.stat().st_size) for name, file in files.items()},
    )
    return manifest, files


def _model(cls: type[BaseModel], data: bytes, where: str) -> Any:
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        raise RegistryError(f"{where} is not a valid {cls.__name__}: {exc.errors()[0].get('msg')}") from None


class RouterRegistry:
    def __init__(self, blobs: Blobs):
        self.blobs = blobs

    # router versions

    def register(self, path: str | os.PathLike[str]) -> Manifest:
        """Uploads a router folder under its own id and version (from its metadata); the manifest goes last, so a
        version is listed only once all its files are in. Registering the same bytes again changes nothing."""
        manifest, files = manifest_for(path)
        existing = self._manifest_or_none(manifest.ref)
        if existing is not None:
            if existing.files == manifest.files:
                return existing
            raise VersionExists(
                f"{manifest.ref} is registered already with other files; give the new router "
                "another version (a version is never replaced)"
            )
        for name, file in files.items():
            self.blobs.put(manifest.ref.prefix + name, file.read_bytes())
        self.blobs.put(manifest.ref.prefix + MANIFEST, manifest.model_dump_json(indent=2).encode())
        return manifest

    def add(self, manifest: Manifest, folder: Path) -> Manifest:
        """Keeps the verified files of `folder` under the manifest's version (the device's copy of a pulled one)."""
        verify_folder(folder, manifest)
        for name in manifest.files:
            self.blobs.put(manifest.ref.prefix + name, (folder / name).read_bytes())
        self.blobs.put(manifest.ref.prefix + MANIFEST, manifest.model_dump_json(indent=2).encode())
        return manifest

    def _manifest_or_none(self, ref: RouterRef) -> Manifest | None:
        data = self.blobs.get(ref.prefix + MANIFEST)
        if data is None:
            return None
        manifest: Manifest = _model(Manifest, data, f"{ref} {MANIFEST}")
        if manifest.ref != ref:
            raise RegistryError(f"the {MANIFEST} kept under {ref} describes {manifest.ref}; refused")
        return manifest

    def manifest(self, ref: RouterRef) -> Manifest:
        manifest = self._manifest_or_none(ref)
        if manifest is None:
            raise RouterNotFound(f"no router {ref} is registered")
        return manifest

    def versions(self) -> list[Manifest]:
        """Every registered version, by id then registration time."""
        found = []
        for key in self.blobs.keys("routers/"):
            if key.endswith("/" + MANIFEST) and key.count("/") == 3:
                data = self.blobs.get(key)
                if data is not None:
                    found.append(_model(Manifest, data, key))
        return sorted(found, key=lambda m: (m.router_id, m.registered_at, m.version))

    def fetch(self, ref: RouterRef, cache_dir: str | os.PathLike[str]) -> Path:
        """The version's folder under `cache_dir` (downloaded once, checked against its manifest every time it is
        downloaded; a folder already there and complete is used as is)."""
        manifest = self.manifest(ref)
        folder = Path(cache_dir) / ref.router_id / ref.version
        if (folder / ".verified").is_file():
            return folder
        partial = Path(tempfile.mkdtemp(dir=_mkdir(Path(cache_dir)), prefix=".pull-"))
        try:
            receive_version(manifest, lambda name, limit: self.blobs.read(ref.prefix + name, limit), partial)
            (partial / ".verified").write_text(manifest.model_dump_json())
            folder.parent.mkdir(parents=True, exist_ok=True)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(partial, folder)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return folder

    def local_folder(self, ref: RouterRef) -> Path:
        """Where a FolderBlobs registry keeps a version's files (checked against the manifest)."""
        path_of = getattr(self.blobs, "path_of", None)
        if path_of is None:
            raise RegistryError("only a folder registry has local folders; use fetch()")
        folder = path_of(ref.prefix)
        verify_folder(folder, self.manifest(ref))
        return folder

    # what routes

    def deployment(self) -> Deployment | None:
        data = self.blobs.get(DEPLOYMENT)
        return None if data is None else _model(Deployment, data, DEPLOYMENT)

    def _write_deployment(self, deployment: Deployment) -> Deployment:
        deployment = deployment.model_copy(update={"updated_at": utc_now_iso()})
        self.blobs.put(DEPLOYMENT, deployment.model_dump_json(indent=2).encode())
        return deployment

    def activate(self, ref: RouterRef) -> Deployment:
        """Makes `ref` the active version; a running experiment whose control it is not is stopped."""
        self.manifest(ref)
        current = self.deployment()
        experiment = current.experiment if current is not None else None
        if experiment is not None and experiment.control != ref:
            self._save_experiment(experiment.model_copy(update={"status": "stopped", "ended_at": utc_now_iso()}))
            experiment = None
        return self._write_deployment(Deployment(active=ref, experiment=experiment))

    def adopt(self, deployment: Deployment) -> Deployment:
        """Takes another registry's deployment as is (the device following the cloud's); its versions must be here."""
        self.manifest(deployment.active)
        if deployment.experiment is not None:
            self.manifest(deployment.experiment.candidate)
            self._save_experiment(deployment.experiment)
        return self._write_deployment(deployment)

    # experiments

    def record_experiment(self, experiment: Experiment) -> None:
        """Keeps another registry's copy of an experiment (the device learning that the cloud's one ended)."""
        self._save_experiment(experiment)

    def _save_experiment(self, experiment: Experiment) -> None:
        self.blobs.put(f"experiments/{experiment.experiment_id}.json", experiment.model_dump_json(indent=2).encode())

    def experiment(self, experiment_id: str) -> Experiment:
        data = self.blobs.get(f"experiments/{check_name(experiment_id, 'experiment id')}.json")
        if data is None:
            raise ExperimentNotFound(f"no experiment {experiment_id!r}")
        return _model(Experiment, data, f"experiment {experiment_id}")

    def experiments(self) -> list[Experiment]:
        found = [
            _model(Experiment, self.blobs.get(key) or b"", key)
            for key in self.blobs.keys("experiments/")
            if key.endswith(".json")
        ]
        return sorted(found, key=lambda e: e.started_at)

    def start_experiment(
        self, experiment_id: str, candidate: RouterRef, mode: Literal["shadow", "ab"], share: float = 0.5
    ) -> Experiment:
        """Starts an experiment of `candidate` against the active version (which stays the control)."""
        current = self.deployment()
        if current is None:
            raise RegistryError("no active router: activate one first (it becomes the experiment's control)")
        if current.experiment is not None and current.experiment.status == "running":
            raise RegistryError(f"experiment {current.experiment.experiment_id} is running; promote or stop it first")
        if candidate == current.active:
            raise RegistryError(f"{candidate} is the active router already")
        self.manifest(candidate)
        if self.blobs.get(f"experiments/{experiment_id}.json") is not None:
            raise RegistryError(f"experiment {experiment_id!r} exists already; choose another id")
        experiment = Experiment(
            experiment_id=experiment_id, mode=mode, control=current.active, candidate=candidate, share=share
        )
        self._save_experiment(experiment)
        self._write_deployment(Deployment(active=current.active, experiment=experiment))
        return experiment

    def end_experiment(self, experiment_id: str, promote: bool) -> Deployment:
        """Ends the running experiment: `promote` makes its candidate the active version, else the control stays."""
        current = self.deployment()
        if current is None or current.experiment is None or current.experiment.experiment_id != experiment_id:
            self.experiment(experiment_id)  # ExperimentNotFound if there is no such experiment at all
            raise RegistryError(f"experiment {experiment_id!r} is not running")
        experiment = current.experiment.model_copy(
            update={"status": "promoted" if promote else "stopped", "ended_at": utc_now_iso()}
        )
        self._save_experiment(experiment)
        active = experiment.candidate if promote else experiment.control
        return self._write_deployment(Deployment(active=active, experiment=None))


class LiveDeployment:
    """A registry's deployment, re-read at most every `refresh_s` seconds: the cloud API and the device server both
    follow the registry this way, so a new active version or experiment is live within `refresh_s`, without a
    restart. A failed re-read keeps the deployment read last (a failed first read raises)."""

    def __init__(
        self,
        read: Callable[[], Deployment | None],
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read
        self.refresh_s = refresh_s
        self._clock = clock
        self._deployment: Deployment | None = None
        self._read_at: float | None = None

    def current(self) -> Deployment | None:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self.refresh_s:
            return self._deployment
        try:
            deployment = self._read()
        except Exception:
            if self._read_at is None:
                raise
            return self._deployment
        self._deployment, self._read_at = deployment, now
        return deployment


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def registry_from_bucket(bucket: str, region: str | None = None) -> RouterRegistry:
    return RouterRegistry(S3Blobs(bucket, region=region))


def dump(model: BaseModel) -> dict[str, Any]:
    return json.loads(model.model_dump_json())
