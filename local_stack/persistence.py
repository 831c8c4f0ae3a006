"""What makes the local stack survive a restart: its API key and its DynamoDB tables, kept in its data folder.

  local_stack.key             the API key, made once (mode 0600)
  local_stack.dynamodb.json   the tables' items in DynamoDB JSON (numbers as strings, binary as base64), replaced
                              atomically (temp file + rename) every `interval_s` while something changed, and at stop
  local_stack.lock            held (flock) while a stack runs, so two stacks never share one folder
  local_stack.s3/<bucket>/    the routers bucket's objects (hybrid_router.registry), one file per key, replaced
                              whole with the tables' snapshot after an S3 write, and at stop

moto's server keeps everything in memory; `DynamoDBServer` is that server with a flag set after each DynamoDB
or S3 write, so an idle stack writes nothing. A snapshot reads moto's in-process tables under a lock that DynamoDB writes
also hold, so it is consistent; reading 5,000 decisions that way takes about 0.35 s, a paginated Scan through moto's
API about 40 s (each page walks the table from the start). Items are loaded back through the API with BatchWriteItem.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

KEY_FILE = "local_stack.key"
SNAPSHOT_FILE = "local_stack.dynamodb.json"
LOCK_FILE = "local_stack.lock"
SNAPSHOT_FORMAT = "hybrid-router-local-stack-dynamodb/1"
SNAPSHOT_INTERVAL_S = 2.0
S3_DIR = "local_stack.s3"
_READ_PREFIXES = ("Get", "BatchGet", "TransactGet", "Describe", "List", "Query", "Scan")

log = logging.getLogger(__name__)


def new_api_key() -> str:
    return f"hr-local-{secrets.token_urlsafe(18)}"


def load_or_create_key(data_dir: Path) -> str:
    """The key kept in data_dir, made (mode 0600) the first time; written whole or not at all (temp file + link)."""
    path = data_dir / KEY_FILE
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=data_dir, prefix=f".{KEY_FILE}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_api_key() + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ValueError(f"the key file {path} is empty: delete it to make a new key")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return key


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold data_dir for this process until the returned file is closed (or the process dies)."""
    handle = open(data_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise RuntimeError(f"another local stack (pid {holder}) uses the data folder {data_dir}") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class DynamoDBServer:
    """moto's server mode in a thread (as moto's ThreadedMotoServer); `changed` is set after each DynamoDB write,
    and `lock` is held while one runs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.changed = threading.Event()
        self.lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DynamoDBServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            service, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
            if not service and environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):  # S3 (REST) writes
                response = moto_app(environ, start_response)
                self.changed.set()
                return response
            if not service.startswith("DynamoDB") or operation.startswith(_READ_PREFIXES):
                return moto_app(environ, start_response)
            with self.lock:
                response = moto_app(environ, start_response)
                self.changed.set()
            return response

        self._server = make_server(self.host, 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-dynamodb", daemon=True)
        self._thread.start()
        return self

    def items(self, table: str, region: str) -> list[dict[str, Any]]:
        """Every item of `table`, read from moto's backend in this process; call with `lock` held."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)][region]
        return [item.to_json()["Attributes"] for item in backend.get_table(table).all_items()]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _binary(value: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """An attribute value with every B / BS member passed through `convert` (bytes <-> base64 text)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": convert(inner)}
    if kind == "BS":
        return {"BS": [convert(member) for member in inner]}
    if kind == "M":
        return {"M": {name: _binary(member, convert) for name, member in inner.items()}}
    if kind == "L":
        return {"L": [_binary(member, convert) for member in inner]}
    return value


def _base64(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else base64.b64encode(raw).decode("ascii")


def _to_file(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _binary(value, _base64) for name, value in item.items()}


def _from_file(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _binary(value, base64.b64decode) for name, value in item.items()}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BucketMirror:
    """One S3 bucket's objects as files under data_dir/S3_DIR/<bucket> (the folder replaced whole on save)."""

    def __init__(self, s3_client: Any, bucket: str, data_dir: Path) -> None:
        self.client = s3_client
        self.bucket = bucket
        self.root = data_dir / S3_DIR
        self.folder = self.root / bucket

    def restore(self) -> int:
        count = 0
        if self.folder.is_dir():
            for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
                self.client.put_object(
                    Bucket=self.bucket, Key=path.relative_to(self.folder).as_posix(), Body=path.read_bytes()
                )
                count += 1
        return count

    def save(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{self.bucket}."))
        count = 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    path = partial / item["Key"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read())
                    count += 1
            old = self.root / f".{self.bucket}.old"
            if old.exists():
                shutil.rmtree(old)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(partial, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return count

    def drop(self) -> None:
        """Delete the bucket from moto, which keeps it as long as the process lives; it is in the folder."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
        self.client.delete_bucket(Bucket=self.bucket)


class TableSnapshots:
    """Saves `tables` to data_dir/SNAPSHOT_FILE and loads them back. Tables in the file that this stack does not
    manage are kept as they are."""

    def __init__(
        self,
        server: DynamoDBServer,
        client: Any,
        region: str,
        tables: Sequence[str],
        data_dir: Path,
        interval_s: float = SNAPSHOT_INTERVAL_S,
        buckets: Sequence[BucketMirror] = (),
    ) -> None:
        self.buckets = list(buckets)
        self.server = server
        self.client = client
        self.region = region
        self.tables = list(tables)
        self.path = data_dir / SNAPSHOT_FILE
        self.changed = server.changed
        self.interval_s = interval_s
        self._saved: dict[str, list[dict[str, Any]]] = self._read()
        self.last_save_s = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {SNAPSHOT_FORMAT!r}")
            return {name: list(items) for name, items in data["tables"].items()}
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise RuntimeError(
                f"cannot read the saved tables {self.path} ({exc}); move the file away to start with empty tables"
            ) from exc

    def restore(self) -> int:
        """Write the saved items into the (empty) tables; the number of items written."""
        count = 0
        for table in self.tables:
            items = [_from_file(item) for item in self._saved.get(table, [])]
            for chunk in _chunks(items, 25):
                self._batch_put(table, chunk)
            count += len(items)
        for bucket in self.buckets:
            count += bucket.restore()
        self.changed.clear()
        return count

    def _batch_put(self, table: str, items: Sequence[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(20):
            unprocessed = self.client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not unprocessed:
                return
            requests = unprocessed
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RuntimeError(f"DynamoDB kept items of {table} unprocessed while restoring")

    def save(self) -> int:
        """Write every managed table's items to the file, atomically; the number of items saved."""
        started = time.perf_counter()
        with self.server.lock:
            self.changed.clear()
            for table in self.tables:
                self._saved[table] = [_to_file(item) for item in self.server.items(table, self.region)]
        body = json.dumps(
            {"format": SNAPSHOT_FORMAT, "saved_at": time.time(), "tables": self._saved}, separators=(",", ":")
        )
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        objects = sum(bucket.save() for bucket in self.buckets)
        self.last_save_s = time.perf_counter() - started
        return sum(len(self._saved[table]) for table in self.tables) + objects

    def _save_if_changed(self) -> None:
        if not self.changed.is_set():
            return
        try:
            self.save()
        except Exception as exc:
            self.changed.set()
            log.warning("local stack: could not save the tables to %s: %s: %s", self.path, type(exc).__name__, exc)

    def _run(self) -> None:
        """Saves at most a fifth of the time, however large the tables grow (a save holds writes while it reads)."""
        while not self._stopping.wait(max(self.interval_s, 4 * self.last_save_s)):
            self._save_if_changed()

    def start(self) -> TableSnapshots:
        self._thread = threading.Thread(target=self._run, name="local-stack-snapshots", daemon=True)
        self._thread.start()
        return self

    def drop_tables(self) -> None:
        """Delete the tables (and buckets) from moto, which keeps them as long as the process lives; they are in
        the data folder."""
        for table in self.tables:
            try:
                self.client.delete_table(TableName=table)
            except Exception as exc:
                log.warning("local stack: could not drop the table %s: %s: %s", table, type(exc).__name__, exc)
        for bucket in self.buckets:
            try:
                bucket.drop()
            except Exception as exc:
                log.warning("local stack: could not drop the bucket %s: %s: %s", bucket.bucket, type(exc).__name__, exc)

    def stop(self) -> None:
        """Stop the periodic saves and save once more if anything changed since the last one."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._save_if_changed()
