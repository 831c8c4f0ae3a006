"""The parts the API talks to, built on first use (so a function that never routes never loads the router)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from hybrid_router.api.errors import ApiError
from hybrid_router.api.settings import ApiSettings
from hybrid_router.api.telemetry import LogTelemetry, Telemetry
from hybrid_router.backends.base import ChatBackend
from hybrid_router.costs import CostModel
from hybrid_router.stores.errors import THROTTLING_CODES, kind_of_code

if TYPE_CHECKING:
    from hybrid_router.cache.step import CacheStep
    from hybrid_router.registry import Deployment, Experiment, LiveDeployment, RouterRef, RouterRegistry
    from hybrid_router.routing import Router
    from hybrid_router.stores.dynamodb import DynamoDecisionStore


P = ParamSpec("P")
T = TypeVar("T")


class Services:
    def __init__(
        self,
        settings: ApiSettings,
        *,
        router: Router | None = None,
        store: DynamoDecisionStore | None = None,
        strong_backend: ChatBackend | None = None,
        weak_backend: ChatBackend | None = None,
        cost_model: CostModel | None = None,
        telemetry: Telemetry | None = None,
    ):
        self.settings = settings
        self._router = router
        self._store = store
        self._strong = strong_backend
        self._weak = weak_backend
        self._cost_model = cost_model
        self.telemetry: Telemetry = telemetry or LogTelemetry()
        self._lock = threading.Lock()
        self._path_router: Router | None = None  # router_path's, while the registry names no active version
        self._registry: RouterRegistry | None = None
        self._live: LiveDeployment | None = None
        self._versions: dict[RouterRef, Router] = {}

    @property
    def router(self) -> Router:
        """The active router: the given one; else the registry's active version; else router_path's."""
        if self._router is not None:
            return self._router
        deployment = self.deployment()
        if deployment is not None:
            return self.router_version(deployment.active)
        if self._path_router is None:
            with self._lock:
                if self._path_router is None:
                    from hybrid_router.routing import RouterLoadError, load_router

                    try:
                        self._path_router = load_router(self.settings.router_path)
                    except RouterLoadError as exc:
                        raise ApiError(
                            503, f"The router could not be loaded: {exc}", code="router_unavailable"
                        ) from None
        return self._path_router

    # versioned routers

    @property
    def registry(self) -> RouterRegistry:
        if not self.settings.routers_bucket:
            raise ApiError(
                404,
                "This API keeps no router versions (ROUTERS_BUCKET_NAME is not set).",
                code="registry_not_configured",
            )
        if self._registry is None:
            from hybrid_router.registry import RouterRegistry, S3Blobs

            self._registry = RouterRegistry(S3Blobs(self.settings.routers_bucket, region=self.settings.region))
        return self._registry

    def call_registry(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs a registry call; S3 trouble becomes 503 registry_unavailable, an unknown version 404."""
        from botocore.exceptions import BotoCoreError, ClientError

        from hybrid_router.registry import ExperimentNotFound, RegistryError, RouterNotFound

        try:
            return fn(*args, **kwargs)
        except (RouterNotFound, ExperimentNotFound) as exc:
            raise ApiError(404, str(exc), code="not_found") from None
        except RegistryError as exc:
            raise ApiError(503, f"The router registry failed: {exc}", code="registry_unavailable") from None
        except (ClientError, BotoCoreError) as exc:
            raise ApiError(
                503,
                f"The router registry is unreachable: {type(exc).__name__}",
                code="registry_unavailable",
                headers={"Retry-After": "2"},
            ) from None

    def deployment(self) -> Deployment | None:
        """The registry's deployment (active version, experiment), re-read at most every router_refresh_s
        (hybrid_router.registry.LiveDeployment); None without a bucket, or while the bucket names no active version.
        If a re-read fails, the last one holds."""
        if self._router is not None or not self.settings.routers_bucket:
            return None
        if self._live is None:
            from hybrid_router.registry import LiveDeployment

            self._live = LiveDeployment(
                lambda: self.call_registry(self.registry.deployment), self.settings.router_refresh_s
            )
        return self._live.current()

    def router_version(self, ref: RouterRef) -> Router:
        """One registered version, downloaded and checked once per process, then cached by id and version."""
        router = self._versions.get(ref)
        if router is None:
            with self._lock:
                router = self._versions.get(ref)
                if router is None:
                    from hybrid_router.routing import RouterLoadError, load_router

                    folder = self.call_registry(self.registry.fetch, ref, self.settings.router_cache_dir)
                    try:
                        router = load_router(folder)
                    except RouterLoadError as exc:
                        raise ApiError(
                            503, f"Router {ref} could not be loaded: {exc}", code="router_unavailable"
                        ) from None
                    self._versions[ref] = router
        return router

    def experiment_routers(self) -> tuple[Experiment, Router, Router] | None:
        """(experiment, control router, candidate router) while an experiment runs, else None."""
        deployment = self.deployment()
        if deployment is None or deployment.experiment is None or deployment.experiment.status != "running":
            return None
        experiment = deployment.experiment
        return experiment, self.router_version(experiment.control), self.router_version(experiment.candidate)

    def router_for_kind(self, kind: str | None) -> Router | None:
        """The router a `router-<kind>` name asks for: the deployed one, or another shipped kind; else None."""
        if kind is None or kind == self.router.info.kind:
            return self.router
        from hybrid_router.routing import RouterLoadError, load_router_for_kind

        try:
            return load_router_for_kind(kind)
        except RouterLoadError:
            return None

    @property
    def cost_model(self) -> CostModel:
        if self._cost_model is None:
            self._cost_model = CostModel.default()
        return self._cost_model

    @property
    def store(self) -> DynamoDecisionStore:
        if self._store is None:
            if not self.settings.table_name:
                raise ApiError(503, "No decision table is configured (DECISIONS_TABLE_NAME).", code="store_unavailable")
            with self._lock:
                if self._store is None:
                    from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client

                    # One retry loop (the store's, with jittered backoff), bounded to about a second, so a
                    # throttled request answers 503 well inside API Gateway's 29 s limit.
                    client = make_client(self.settings.dynamodb_endpoint_url, self.settings.region, max_attempts=1)
                    self._store = DynamoDecisionStore(
                        self.settings.table_name, client=client, max_attempts=5, base_delay_s=0.05, max_delay_s=0.5
                    )
        return self._store

    def answer_cache(self, tenant_id: str) -> CacheStep | None:
        """The tenant's answer cache step (DynamoDB, in the decision table), or None when ANSWER_CACHE is off."""
        if not self.settings.answer_cache or not self.settings.table_name:
            return None
        from hybrid_router.cache import CachePolicy
        from hybrid_router.cache.dynamodb import DynamoAnswerCache
        from hybrid_router.cache.step import CacheStep

        cache = DynamoAnswerCache(
            self.settings.table_name, self.store.client, tenant_id, ttl_s=self.settings.answer_cache_ttl_s
        )
        return CacheStep(cache, CachePolicy())

    @property
    def has_weak_backend(self) -> bool:
        return self._weak is not None or bool(self.settings.weak_endpoint_name)

    def strong_backend(self) -> ChatBackend:
        if self._strong is None:
            if not self.settings.strong_endpoint_name:
                raise ApiError(
                    503, "No strong model endpoint is configured (STRONG_ENDPOINT_NAME).", code="strong_unavailable"
                )
            self._strong = self._sagemaker(self.settings.strong_endpoint_name)
        return self._strong

    def weak_backend(self) -> ChatBackend | None:
        if self._weak is None and self.settings.weak_endpoint_name:
            self._weak = self._sagemaker(self.settings.weak_endpoint_name)
        return self._weak

    def _sagemaker(self, endpoint_name: str) -> ChatBackend:
        from hybrid_router.backends.sagemaker import SageMakerBackend

        s = self.settings
        strong = endpoint_name == s.strong_endpoint_name
        return SageMakerBackend(
            endpoint_name,
            region=s.region,
            endpoint_url=s.sagemaker_endpoint_url,
            body_format=s.sagemaker_body_format,
            timeout_s=s.sagemaker_timeout_s,
            chat_template=s.sagemaker_chat_template,
            model_name=self.strong_model_name() if strong else self.weak_model_name(),
            container=s.strong_container,
            served_model_name=s.strong_served_model_name if strong else None,
            inference_component=s.strong_inference_component if strong else None,
        )

    def strong_model_name(self) -> str:
        return self.settings.strong_model_name or self.router.info.strong_model

    def weak_model_name(self) -> str:
        return self.settings.weak_model_name or self.router.info.weak_model

    def call_store(self, operation: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs a store call; DynamoDB trouble becomes 503 (throttled/unreachable) or 502, with a clear message."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            self.telemetry.store_failure(operation, code)
            if code in THROTTLING_CODES:
                raise ApiError(
                    503,
                    "The decision store is throttling requests; retry in a few seconds.",
                    code="store_throttled",
                    headers={"Retry-After": "2"},
                ) from None
            if kind_of_code(code) == "retryable":
                raise ApiError(
                    503,
                    f"The decision store is failing for now ({code}); retry in a few seconds.",
                    code="store_unavailable",
                    headers={"Retry-After": "2"},
                ) from None
            if code == "ResourceNotFoundException":
                raise ApiError(503, "The decision table does not exist.", code="store_unavailable") from None
            raise ApiError(502, f"The decision store refused the request ({code}).", code="store_error") from None
        except BotoCoreError as exc:
            self.telemetry.store_failure(operation, type(exc).__name__)
            raise ApiError(
                503,
                "The decision store is unreachable; retry later.",
                code="store_unavailable",
                headers={"Retry-After": "2"},
            ) from None
