"""Start the whole local stand-in cloud with one command: `python -m local_stack` (or `hybrid-router stack`).

  DynamoDB, S3    moto's server mode, with the decisions table created from TABLE_SCHEMA and the routers bucket
  SageMaker       the runtime stand-in (local_stack.sagemaker_runtime) in front of a BYOC container
                  (local_stack.container) running a real llama.cpp model (Qwen2.5-Coder-0.5B by default)
  cloud API       hybrid_router.api.create_app under uvicorn, configured through the same environment variables
                  Lambda gets, pointed at the stand-ins

It prints the API URL and the local API key, and writes them (with every stand-in's URL) to
`<user data dir>/hybrid-router/local_stack.json` so the edge client and scripts can pick them up. The key, the
DynamoDB tables and the routers bucket persist in that folder (local_stack.persistence), so a restart loses nothing.
`start_stack(...)` is the same thing as a context manager for tests and the demo (in memory unless given data_dir).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from local_stack.container import create_container_app
from local_stack.model import LlamaTextModel
from local_stack.persistence import (
    KEY_FILE,
    SNAPSHOT_INTERVAL_S,
    BucketMirror,
    DynamoDBServer,
    TableSnapshots,
    load_or_create_key,
    lock_data_dir,
    new_api_key,
)
from local_stack.sagemaker_runtime import FaultPlan, create_runtime_app
from local_stack.servers import ServerThread
from local_stack.weights import resolve_model

DEFAULT_TABLE = "hybrid-router-decisions"
DEFAULT_BUCKET = "hybrid-router-routers"
DEFAULT_ENDPOINT = "hybrid-router-strong"
DEFAULT_REGION = "us-east-1"
STATE_FILE_ENV = "HYBRID_ROUTER_STACK_FILE"


def default_state_file() -> Path:
    if os.environ.get(STATE_FILE_ENV):
        return Path(os.environ[STATE_FILE_ENV])
    import platformdirs

    return Path(platformdirs.user_data_dir("hybrid-router")) / "local_stack.json"


@dataclass
class StackInfo:
    api_url: str | None
    api_key: str
    tenant: str
    device: str
    sagemaker_runtime_url: str
    container_url: str
    dynamodb_url: str
    endpoint_name: str
    table_name: str
    region: str
    model_name: str
    model_path: str
    pid: int
    data_dir: str | None = None
    routers_bucket: str | None = None  # moto's S3, on the DynamoDB server's port (hybrid_router.registry)
    # API Gateway as template.yaml configures it (local_stack.gateway): the same key, chat streamed for up to
    # 15 minutes, every other route buffered and cut at 29 s, in front of the app as the Lambda Web Adapter runs it.
    gateway_url: str | None = None


def stack_environment(info: StackInfo) -> dict[str, str]:
    """The environment the cloud API runs with: the names template.yaml gives the Lambda functions."""
    return {
        "AWS_ACCESS_KEY_ID": "local-stack",
        "AWS_SECRET_ACCESS_KEY": "local-stack",
        "AWS_REGION": info.region,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_ENDPOINT_URL_DYNAMODB": info.dynamodb_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": info.sagemaker_runtime_url,
        "SAGEMAKER_ENDPOINT_URL": info.sagemaker_runtime_url,
        "STRONG_ENDPOINT_NAME": info.endpoint_name,
        "STRONG_MODEL_NAME": info.model_name,
        "STRONG_CONTAINER": "tgi",  # the stand-in container speaks TGI's generate body (local_stack.container)
        "SAGEMAKER_BODY_FORMAT": "tgi",
        "SAGEMAKER_CHAT_TEMPLATE": "chatml",
        "DECISIONS_TABLE_NAME": info.table_name,
        **(
            {
                "AWS_ENDPOINT_URL_S3": info.dynamodb_url,
                "ROUTERS_BUCKET_NAME": info.routers_bucket,
                "ROUTER_REFRESH_S": "1",
            }
            if info.routers_bucket
            else {}
        ),
        "HYBRID_ROUTER_API_KEYS": f"{info.api_key}={info.tenant}/{info.device}",
    }


class Stack:
    """Running stand-ins; stop() (or leaving the `with` block) shuts them down and restores the environment."""

    def __init__(self) -> None:
        self.info: StackInfo | None = None
        self.model: LlamaTextModel | None = None
        self.state_file: Path | None = None
        self._servers: list[ServerThread] = []
        self._moto: DynamoDBServer | None = None
        self._snapshots: TableSnapshots | None = None
        self.restored_items: int | None = None
        self._lock: IO[str] | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def runtime_url(self) -> str:
        assert self.info is not None
        return self.info.sagemaker_runtime_url

    def set_faults(self, **plan: Any) -> None:
        """Fault injection on the SageMaker stand-in, e.g. set_faults(mode="latency", latency_s=5)."""
        import httpx

        httpx.post(f"{self.runtime_url}/_stand_in/faults", json=FaultPlan(**plan).model_dump()).raise_for_status()

    def clear_faults(self) -> None:
        import httpx

        httpx.delete(f"{self.runtime_url}/_stand_in/faults").raise_for_status()

    def _set_env(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self._snapshots is not None:
            self._snapshots.stop()
            self._snapshots.drop_tables()
            self._snapshots = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self.model is not None:
            self.model.close()
            self.model = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self.state_file is not None and self.state_file.is_file():
            try:
                if json.loads(self.state_file.read_text()).get("pid") == os.getpid():
                    self.state_file.unlink()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class StackOptions:
    """What start_stack starts, and how: its keyword arguments, with their defaults."""

    model: str | None = None  # the strong model: 'qwen' (default), 'smollm2', or a .gguf path
    api: bool = True  # the cloud API and the API Gateway in front of it (False: only the AWS stand-ins)
    host: str = "127.0.0.1"
    api_port: int = 0
    table_name: str = DEFAULT_TABLE
    endpoint_name: str = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    api_key: str | None = None
    tenant: str = "local"
    device: str = "local-device"
    n_ctx: int = 2048
    n_threads: int | None = None
    faults: FaultPlan | None = None
    # Where to write the connection info (None: don't write one).
    state_file: str | Path | None = None
    # The router the API uses (HYBRID_ROUTER_ROUTER; None: the environment's or the packaged default) until the
    # routers bucket (moto's S3; None: no bucket) names an active version. With data_dir the bucket's objects persist
    # beside the tables (local_stack.persistence.BucketMirror).
    router_path: str | Path | None = None
    routers_bucket: str | None = DEFAULT_BUCKET
    # The folder that keeps the API key (unless api_key is given) and the tables across restarts: loaded at start,
    # saved every snapshot_interval_s while something changed and at stop (None: in memory, a new key).
    data_dir: str | Path | None = None
    snapshot_interval_s: float = SNAPSHOT_INTERVAL_S
    log_level: str = "warning"
    # The SageMaker stand-in holds each generated token this long, as a slower GPU would (None: env
    # LOCAL_SAGEMAKER_TOKEN_DELAY_S, else 0).
    token_delay_s: float | None = None
    gateway_port: int = 0


def start_stack(model: str | None = None, **options: Any) -> Stack:
    """Start every stand-in. model: 'qwen' (default), 'smollm2', or a .gguf path (env HYBRID_ROUTER_STRONG_MODEL);
    options: any other field of StackOptions, e.g. start_stack("smollm2", n_threads=1, data_dir=folder).

    The cloud API reads its settings from os.environ, so the stack sets the variables and stop() restores them.
    """
    return _start(StackOptions(model=model, **options))


def _start(options: StackOptions) -> Stack:
    """The stack `options` describe, running; if any part fails to start, what did start is stopped."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    stack = Stack()
    try:
        api_key = options.api_key
        folder = Path(options.data_dir) if options.data_dir is not None else None
        if folder is not None:
            api_key = _claim_data_dir(stack, folder, api_key)
        stack._moto = DynamoDBServer(options.host).start()
        model_path = resolve_model(options.model)
        text_model = LlamaTextModel(model_path, n_ctx=options.n_ctx, n_threads=options.n_threads)
        stack.model = text_model
        container, runtime = _start_sagemaker(stack, text_model, options)
        info = StackInfo(
            api_url=None,
            api_key=api_key or new_api_key(),
            tenant=options.tenant,
            device=options.device,
            sagemaker_runtime_url=runtime.url,
            container_url=container.url,
            dynamodb_url=stack._moto.url,
            endpoint_name=options.endpoint_name,
            table_name=options.table_name,
            region=options.region,
            model_name=text_model.name,
            model_path=str(model_path),
            pid=os.getpid(),
            data_dir=str(folder) if folder is not None else None,
            routers_bucket=options.routers_bucket,
        )
        stack._set_env(stack_environment(info))
        if options.router_path is not None:
            stack._set_env({"HYBRID_ROUTER_ROUTER": str(options.router_path)})
        _create_stores(stack, info, folder, options.snapshot_interval_s)
        if options.api:
            _start_cloud_api(stack, info, options)
        stack.info = info
        if options.state_file is not None:
            stack.state_file = _write_state_file(info, Path(options.state_file))
        return stack
    except BaseException:
        stack.stop()
        raise


def _claim_data_dir(stack: Stack, folder: Path, api_key: str | None) -> str:
    """Holds `folder` (made if need be) for this stack; returns the API key: the one given, else the one kept there."""
    folder.mkdir(parents=True, exist_ok=True)
    stack._lock = lock_data_dir(folder)
    return api_key or load_or_create_key(folder)


def _start_sagemaker(
    stack: Stack, text_model: LlamaTextModel, options: StackOptions
) -> tuple[ServerThread, ServerThread]:
    """The model container and the SageMaker runtime in front of it, serving options.endpoint_name."""
    container = ServerThread(
        create_container_app(text_model, token_delay_s=options.token_delay_s),
        host=options.host,
        log_level=options.log_level,
        name="sagemaker-container",
    )
    stack._servers.append(container.start())
    runtime = ServerThread(
        create_runtime_app({options.endpoint_name: container.url}, faults=options.faults),
        host=options.host,
        log_level=options.log_level,
        name="sagemaker-runtime",
    )
    stack._servers.append(runtime.start())
    return container, runtime


def _create_stores(stack: Stack, info: StackInfo, folder: Path | None, snapshot_interval_s: float) -> None:
    """The decisions table and the routers bucket; with a data folder, what it kept is loaded into them and saved
    back while the stack runs."""
    from hybrid_router.stores.dynamodb import create_table, make_client

    client = make_client(endpoint_url=info.dynamodb_url, region=info.region)
    create_table(client, info.table_name)
    bucket = info.routers_bucket
    s3 = create_bucket(info.dynamodb_url, info.region, bucket) if bucket else None
    if folder is None:
        return
    mirrors = [BucketMirror(s3, bucket, folder)] if s3 is not None and bucket else []
    snapshots = TableSnapshots(
        stack._moto, client, info.region, [info.table_name], folder, snapshot_interval_s, buckets=mirrors
    )
    stack.restored_items = snapshots.restore()
    stack._snapshots = snapshots.start()


def _start_cloud_api(stack: Stack, info: StackInfo, options: StackOptions) -> None:
    """The cloud API as the stack serves it directly, and as API Gateway serves it (info's URLs set to them)."""
    from hybrid_router.api import create_app

    server = ServerThread(
        create_app(), host=options.host, port=options.api_port, log_level=options.log_level, name="cloud-api"
    )
    stack._servers.append(server.start())
    info.api_url = server.url
    info.gateway_url = _start_gateway(stack, info, options.host, options.gateway_port, options.log_level)


def _write_state_file(info: StackInfo, path: Path) -> Path:
    """The connection info as JSON, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")
    path.chmod(0o600)
    return path


GATEWAY_KEY_ID = "local-stack-key"  # the id API Gateway would give the stack's key (requestContext.identity.apiKeyId)


def _start_gateway(stack: Stack, info: StackInfo, host: str, port: int, log_level: str) -> str:
    """The app as the Lambda Web Adapter runs it in the functions (the caller from the request context the gateway
    sends), behind the API Gateway stand-in; returns the gateway's URL."""
    from hybrid_router.api import ApiSettings, create_app
    from hybrid_router.api.identity import Identity
    from local_stack.gateway import create_gateway_app

    settings = ApiSettings.from_env().model_copy(
        update={
            "identity_source": "request_context_header",
            "key_identities": {GATEWAY_KEY_ID: Identity(tenant_id=info.tenant, device_id=info.device)},
        }
    )
    functions = ServerThread(create_app(settings), host=host, log_level=log_level, name="cloud-functions")
    stack._servers.append(functions.start())
    gateway = ServerThread(
        create_gateway_app(functions.url, {info.api_key: GATEWAY_KEY_ID}),
        host=host,
        port=port,
        log_level=log_level,
        name="api-gateway",
    )
    stack._servers.append(gateway.start())
    return gateway.url


def create_bucket(url: str, region: str, bucket: str) -> Any:
    """The routers bucket in moto's S3 (path-style addressing, as every client of the stack uses); returns the
    S3 client."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="local-stack",
        aws_secret_access_key="local-stack",
        config=Config(s3={"addressing_style": "path"}),
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    return s3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybrid-router stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="strong stand-in model: qwen (default), smollm2, or a .gguf path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300, help="cloud API port (0: any free port)")
    parser.add_argument(
        "--api-key", default=None, help="local API key (default: the one kept in the data folder, made the first time)"
    )
    parser.add_argument("--tenant", default="local")
    parser.add_argument("--device", default="local-device")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT)
    parser.add_argument(
        "--router",
        default=None,
        help="router file or folder for the cloud API (default: HYBRID_ROUTER_ROUTER or the packaged router)",
    )
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads for the strong model")
    parser.add_argument(
        "--token-delay",
        type=float,
        default=None,
        help="hold each strong-model token this many seconds, as a slower GPU would (env LOCAL_SAGEMAKER_TOKEN_DELAY_S)",
    )
    parser.add_argument("--gateway-port", type=int, default=0, help="API Gateway stand-in port (0: any free port)")
    parser.add_argument("--state-file", default=None, help=f"connection info JSON (default {default_state_file()})")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the key and the DynamoDB tables persist (default: the state file's folder)",
    )
    parser.add_argument(
        "--in-memory", action="store_true", help="keep nothing: a new key and empty tables on every start"
    )
    parser.add_argument("--ready-file", default=None, help="touch this file once everything answers")
    parser.add_argument("--no-api", action="store_true", help="start only the AWS stand-ins")
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    state_file = Path(args.state_file) if args.state_file else default_state_file()
    data_dir = None if args.in_memory else Path(args.data_dir) if args.data_dir else state_file.parent
    key_file = data_dir / KEY_FILE if data_dir is not None and not args.api_key else None
    new_key_file = key_file if key_file is not None and not key_file.exists() else None
    print("starting the local stack (the strong model loads first) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        stack = _start(_options_from_args(args, state_file, data_dir))
    except Exception as exc:  # a clear one-line reason instead of a stack trace
        print(f"error: the local stack did not start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    with stack:
        info = stack.info
        assert info is not None
        print(f"local stack up in {time.perf_counter() - started:.1f}s", flush=True)
        _print_connection_info(info, state_file)
        if data_dir is not None:
            print(
                f"  data             {data_dir}   {stack.restored_items} items and objects loaded; the key, the "
                f"tables and the routers bucket are saved there (every {SNAPSHOT_INTERVAL_S:g}s while changing, "
                "and at stop)"
            )
        if new_key_file is not None:
            print(f"  new API key      kept in {new_key_file}; a device started with an older key must be restarted")
        print("Ctrl-C stops everything.", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(json.dumps(asdict(info)) + "\n")
        stop.wait()
        print("stopping ...", file=sys.stderr, flush=True)
        if args.ready_file:
            Path(args.ready_file).unlink(missing_ok=True)
    return 0


def _options_from_args(args: argparse.Namespace, state_file: Path, data_dir: Path | None) -> StackOptions:
    return StackOptions(
        model=args.model,
        api=not args.no_api,
        host=args.host,
        api_port=args.port,
        table_name=args.table,
        endpoint_name=args.endpoint_name,
        api_key=args.api_key,
        tenant=args.tenant,
        device=args.device,
        n_threads=args.threads,
        token_delay_s=args.token_delay,
        gateway_port=args.gateway_port,
        state_file=state_file,
        router_path=args.router,
        data_dir=data_dir,
        log_level=args.log_level,
    )


def _print_connection_info(info: StackInfo, state_file: Path) -> None:
    """Where each part of the stack answers, and the state file that says the same."""
    if info.api_url:
        print(f"  cloud API        {info.api_url}   (x-api-key: {info.api_key})")
    if info.gateway_url:
        print(f"  API Gateway      {info.gateway_url}   (same key; chat streamed, other routes cut at 29 s)")
    print(f"  SageMaker        {info.sagemaker_runtime_url}   endpoint {info.endpoint_name} -> {info.model_name}")
    print(f"  DynamoDB         {info.dynamodb_url}   table {info.table_name}")
    if info.routers_bucket:
        print(f"  S3               {info.dynamodb_url}   bucket {info.routers_bucket} (router versions)")
    print(f"  connection info  {state_file}")


if __name__ == "__main__":
    sys.exit(main())
