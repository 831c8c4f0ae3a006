"""A fault-injecting proxy in front of a DynamoDB-API server: the failures real DynamoDB returns, on the wire.

    proxy = DynamoDBFaults("http://127.0.0.1:5000", DynamoFaultPlan(rate=0.3, seed=1)).start()
    client = make_client(endpoint_url=proxy.url)   # the production client, unchanged
    ...
    proxy.counts    # {"forwarded": 812, "throttle": 97, "internal": 88, "lost_reply": 90, ...}
    proxy.stop()

Each request whose operation (the `X-Amz-Target` header, e.g. `DynamoDB_20120810.PutItem`) is in `plan.operations`
draws a fault with probability `plan.rate` from a seeded generator, so a run is reproducible. The faults:

    throttle     400 ProvisionedThroughputExceededException (the table's capacity is exceeded)
    throttling   400 ThrottlingException (the account's request rate is exceeded)
    internal     500 InternalServerError
    unavailable  503 ServiceUnavailable
    lost_reply   the request reaches the server and is applied, then the connection closes without an answer:
                 the caller cannot know the write happened (the case idempotent writes exist for)

Every other request, and every request of another operation, is forwarded as is.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS: dict[str, tuple[int, str]] = {
    "throttle": (400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
    "throttling": (400, "com.amazon.coral.availability#ThrottlingException"),
    "internal": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
    "unavailable": (503, "com.amazonaws.dynamodb.v20120810#ServiceUnavailable"),
}
WRITE_OPERATIONS = ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem")


@dataclass
class DynamoFaultPlan:
    """rate: the share of matching requests that fail; kinds: the faults drawn from (uniformly); operations: the
    DynamoDB operations faults apply to (default: the writes)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttle", "throttling", "internal", "unavailable", "lost_reply")
    operations: tuple[str, ...] = WRITE_OPERATIONS
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in FAULTS and kind != "lost_reply"]
        if unknown or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"unknown fault kinds {unknown} or rate {self.rate} outside [0, 1]")
        self._random = random.Random(self.seed)

    def draw(self, operation: str) -> str | None:
        if operation not in self.operations or not self.kinds:
            return None
        if self._random.random() >= self.rate:
            return None
        return self._random.choice(self.kinds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        fault = proxy.draw(operation)
        if fault in FAULTS:
            status, error_type = FAULTS[fault]
            self._answer(
                status,
                {"content-type": "application/x-amz-json-1.0", "x-amzn-errortype": error_type.rpartition("#")[2]},
                json.dumps({"__type": error_type, "message": f"injected fault: {fault}"}).encode(),
            )
            return
        headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host", "content-length")}
        answer = proxy.http.post(proxy.upstream + self.path, content=body, headers=headers)
        if fault == "lost_reply":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        proxy.count("forwarded")
        self._answer(
            answer.status_code,
            {
                key: answer.headers[key]
                for key in answer.headers
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
            },
            answer.content,
        )

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: DynamoDBFaults


class DynamoDBFaults:
    """The proxy: `url` for the client, `counts` of what it did (faults by kind, and `forwarded`)."""

    def __init__(self, upstream: str, plan: DynamoFaultPlan, host: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan
        self.http = httpx.Client(timeout=60)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _ProxyServer((host, 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="dynamodb-faults", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def draw(self, operation: str) -> str | None:
        with self._lock:
            fault = self.plan.draw(operation)
            if fault is not None:
                self.counts[fault] += 1
            return fault

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    @property
    def injected(self) -> int:
        with self._lock:
            return sum(n for kind, n in self.counts.items() if kind != "forwarded")

    def start(self) -> DynamoDBFaults:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.http.close()
