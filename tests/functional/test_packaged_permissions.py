"""The functions as packaged, with only their roles' permissions.

Each Lambda function's folder (what `sam build` copies to /var/task) and the router layer built by its Makefile (as
tests/functional/test_router_layer.py builds it, for this machine's architecture) run in a python3.12 child with
Lambda's sys.path, invoked with the real API Gateway events of tests/events. AWS is moto's server with IAM
enforcement (tests/fixtures/iam_moto_server.py: every request signed and checked against its key's policies), and
each function gets the credentials of an IAM user holding exactly the inline policies the *transformed* template
(SAM's own translator, with this test's parameter values) gives that function's role, resolved here
(Fn::If, Fn::Sub, Ref, GetAtt). Every route answers, and any AWS call the role does not allow fails the test; the
same calls with one permission fewer are refused, so the enforcement is real.

The chat function runs under the Lambda Web Adapter in AWS, which is not available here: its app is served by
uvicorn from the packaged layout, as its run.sh starts it, and called with the request-context header the adapter
writes. Not covered: the SageMaker runtime stand-in does not check IAM (the endpoint call is signed, not
authorized: tests/unit/test_template.py checks those statements' resources), and the managed policies SAM attaches
(logs, X-Ray) reach services these tests do not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_api_support import REPO, STRONG_ENDPOINT, load_event, sagemaker_stand_in  # noqa: F401 (a fixture)
from test_router_layer import layer, runtime  # noqa: F401 (fixtures)
from test_sam_template import SAM_VENV, python312_env

pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE, BUCKET = "hybrid-router-decisions-iam", "hybrid-router-routers-iam"
PARAMETERS = {"ExistingEndpointName": STRONG_ENDPOINT}  # an existing endpoint: the stack creates no SageMaker model
NO_VALUE = object()
DENIED = {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId"}
# The managed policies SAM attaches to every role: logs and X-Ray only, services these functions reach without
# their own code (Lambda's log agent, the X-Ray daemon); nothing here can check them.
EXPECTED_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}

TRANSFORM = r"""
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
class NoManagedPolicies:
    def load(self): return {}
template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    props = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):  # as `sam package` leaves them: S3 locations
        if isinstance(props.get(key), str):
            props[key] = "s3://artifacts/" + props[key]
json.dump(transform(template, json.loads(sys.argv[2]), NoManagedPolicies()), sys.stdout)
"""

# Runs in the python3.12 child: argv = function folder, layer, runtime stand-in, result file, then per child.
# Every AWS call is noted with its outcome (the error code and status when AWS refused it).
NOTING = r"""
import importlib, json, sys, uuid
function, layer, runtime, result_file, *rest = sys.argv[1:]
sys.path[:] = [function, layer, runtime] + [p for p in sys.path if p and "site-packages" not in p]
from botocore.client import BaseClient
from botocore.exceptions import ClientError
calls = []
original = BaseClient._make_api_call
def noting(self, operation, params):
    service = self.meta.service_model.service_name
    try:
        result = original(self, operation, params)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        calls.append([service, operation, exc.response.get("Error", {}).get("Code", "?"), status])
        raise
    calls.append([service, operation, "ok", 200])
    return result
BaseClient._make_api_call = noting
"""
# A Mangum handler (api, ingest) invoked with API Gateway events: rest = event files.
CHILD = (
    NOTING
    + r"""
class Context:
    function_name = "hybrid-router-iam-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hybrid-router-iam-test"
    log_group_name = "/aws/lambda/hybrid-router-iam-test"
    log_stream_name = "test"
    aws_request_id = str(uuid.uuid4())
    @staticmethod
    def get_remaining_time_in_millis():
        return 29_000

app = importlib.import_module("app")
responses = []
for event in rest:
    event = json.load(open(event))
    response = app.handler(event, Context())
    responses.append({"path": event["path"], "status": response["statusCode"], "body": response["body"][:500]})
json.dump({"responses": responses, "calls": calls}, open(result_file, "w"))
"""
)
# The chat function's app as run.sh starts it for the Lambda Web Adapter (uvicorn, app:app), asked as the adapter
# asks it: rest = port, request context (JSON), chat body (JSON).
CHAT_CHILD = (
    NOTING
    + r"""
import threading, time, urllib.error, urllib.request
import uvicorn
port, context, body = rest
server = uvicorn.Server(uvicorn.Config(importlib.import_module("app").app, host="127.0.0.1", port=int(port),
                                       log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.05)
responses = []
for headers in ({"x-amzn-request-context": context}, {"x-api-key": "a-key-the-app-does-not-know"}):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            responses.append({"status": answer.status, "body": answer.read().decode()[-300:]})
    except urllib.error.HTTPError as exc:
        responses.append({"status": exc.code, "body": exc.read().decode()[:300]})
server.should_exit = True
thread.join(10)
json.dump({"responses": responses, "calls": calls}, open(result_file, "w"))
"""
)


# ---------------------------------------------------------------- the roles, from the transformed template


def transformed_template() -> dict[str, Any]:
    python = SAM_VENV / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no SAM venv at {SAM_VENV} (its translator resolves the template)")
    result = subprocess.run(
        [str(python), "-c", TRANSFORM, str(REPO / "template.yaml"), json.dumps(PARAMETERS)],
        env={**os.environ, "AWS_DEFAULT_REGION": REGION},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


class Resolver:
    """CloudFormation's intrinsic functions over one template, for the values this test deploys with."""

    def __init__(self, template: dict[str, Any]):
        self.template = template
        defaults = {name: p.get("Default") for name, p in template.get("Parameters", {}).items()}
        self.parameters = {**defaults, **PARAMETERS}
        self.physical = {"DecisionsTable": TABLE, "RoutersBucket": BUCKET}
        self.arns = {
            "DecisionsTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}",
            "RoutersBucket.Arn": f"arn:aws:s3:::{BUCKET}",
        }

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": ""}
        if name == "AWS::NoValue":
            return NO_VALUE
        for table in (pseudo, self.parameters, self.physical):
            if name in table:
                return table[name]
        if "." in name:
            return self.arns[name]
        raise KeyError(f"no value for Ref {name} in this test's stack")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, arg)] = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.arns[".".join(arg) if isinstance(arg, list) else arg]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(names.get(m[1]) or self.ref(m[1])), text)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} in a role policy")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}


@pytest.fixture(scope="module")
def role_policies() -> dict[str, list[dict[str, Any]]]:
    """Function name -> the policy documents the deployed stack would give its role (inline, resolved)."""
    template = transformed_template()
    resolver = Resolver(template)
    roles: dict[str, list[dict[str, Any]]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = template["Resources"][resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert set(resolver.resolve(role.get("ManagedPolicyArns", []))) <= EXPECTED_MANAGED, name
        roles[name] = [resolver.resolve(policy["PolicyDocument"]) for policy in role.get("Policies", [])]
    assert set(roles) == {"ApiFunction", "ChatFunction", "IngestFunction"}
    return roles


# ---------------------------------------------------------------- moto with IAM enforcement


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def aws(tmp_path_factory, write_tiny_router) -> Any:
    """moto (IAM enforced after the admin user exists), the decisions table, the routers bucket with two router
    versions, one active and one in an experiment. Returns (url, make_user(policies) -> env)."""
    import boto3

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fixtures" / "iam_moto_server.py"), str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},  # create the admin: user, policy, key
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # a TCP connect, not a request: requests count towards the 3
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "moto did not start"
            time.sleep(0.1)
    try:
        anonymous = boto3.client(
            "iam", endpoint_url=url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        anonymous.create_user(UserName="admin")
        admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        anonymous.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(admin_policy))
        key = anonymous.create_access_key(UserName="admin")["AccessKey"]
        admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

        def client(service: str, **creds: str) -> Any:
            return boto3.client(service, endpoint_url=url, region_name=REGION, **(creds or admin))

        with pytest.raises(Exception, match="InvalidClientTokenId|not valid|AccessDenied|security token"):
            client("dynamodb", aws_access_key_id="nobody", aws_secret_access_key="x").list_tables()

        from hybrid_router.stores.dynamodb import create_table

        create_table(client("dynamodb"), TABLE)
        client("s3").create_bucket(Bucket=BUCKET)
        routers = [
            write_tiny_router(tmp_path_factory.mktemp(f"iam-router-{v}") / "router", version=v, centre=c).parent
            for v, c in (("1", 6000.0), ("2", 1000.0))
        ]
        from botocore.config import Config

        from hybrid_router.registry import RouterRegistry, S3Blobs

        s3 = boto3.client(
            "s3", endpoint_url=url, region_name=REGION, config=Config(s3={"addressing_style": "path"}), **admin
        )
        registry = RouterRegistry(S3Blobs(BUCKET, client=s3))
        first, second = (registry.register(folder) for folder in routers)
        registry.activate(first.ref)
        registry.start_experiment("exp-1", second.ref, "shadow")

        iam = client("iam")

        def make_user(name: str, policies: list[dict[str, Any]]) -> dict[str, str]:
            iam.create_user(UserName=name)
            for i, document in enumerate(policies):
                # SAM writes the template's statements without a Version, which IAM takes as 2008-10-17 (no policy
                # variables; these use none) and moto refuses: the same statements, under the current version.
                document = {"Version": "2012-10-17", **document}
                iam.put_user_policy(UserName=name, PolicyName=f"role-{i}", PolicyDocument=json.dumps(document))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

        yield {"url": url, "make_user": make_user, "router": (str(first.ref.router_id), str(first.ref.version))}
    finally:
        process.terminate()
        process.wait(10)


# ---------------------------------------------------------------- the functions, as packaged


def _get_event(path: str) -> Path:
    event = load_event("usage_get.json")
    event.update(resource=path, path=path, queryStringParameters=None, multiValueQueryStringParameters=None)
    event["requestContext"].update(resourcePath=path, path=event["requestContext"]["path"].replace("/v1/usage", path))
    return event


def run_packaged(
    function: str,
    events: list[Any],
    env: dict[str, str],
    layer,
    runtime,
    tmp_path,
    child: str = CHILD,  # noqa: F811
) -> dict:
    """functions/<function> laid out as /var/task beside the layer (/opt/python), its handler run by python3.12.
    `events`: event files or dicts for CHILD; plain strings passed on as they are for another child."""
    task = tmp_path / f"{function}-task"
    shutil.copytree(REPO / "functions" / function, task)
    files = []
    for i, event in enumerate(events):
        if child is not CHILD:
            files.append(event)
            continue
        path = tmp_path / f"{function}-event-{i}.json"
        path.write_text(json.dumps(load_event(event) if isinstance(event, str) else event))
        files.append(str(path))
    out = tmp_path / f"{function}-result.json"
    python = shutil.which("python3.12", path=env["PATH"])
    result = subprocess.run(
        [python, "-S", "-E", "-c", child, str(task), str(layer), str(runtime), str(out), *files],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def lambda_env(aws: dict, credentials: dict[str, str], **more: str) -> dict[str, str]:
    env = {
        **python312_env(),
        **credentials,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_DYNAMODB": aws["url"],
        "AWS_ENDPOINT_URL_S3": aws["url"],
        "DECISIONS_TABLE_NAME": TABLE,
        "ROUTERS_BUCKET_NAME": BUCKET,
        "TENANT_ID": "acme",
        "UPLOAD_WINDOW_DAYS": "3660",  # tests/events/decisions_post.json was recorded in 2024
        "POWERTOOLS_TRACE_DISABLED": "true",
        "OMP_NUM_THREADS": "1",
        "HYBRID_ROUTER_THREADS": "1",
        **more,
    }
    for name in ("HYBRID_ROUTER_ROUTER", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def ingest_events(aws: dict) -> list[Any]:
    router_id, version = aws["router"]
    return [
        "health_get.json",
        "decisions_post.json",
        "usage_get.json",
        "feedback_post.json",
        _get_event("/v1/routers"),
        _get_event(f"/v1/routers/{router_id}/versions/{version}"),
        _get_event("/v1/experiments/exp-1"),
        _get_event("/dashboard"),
        _get_event("/dashboard/chart.umd.min.js"),
    ]


def refused(calls: list[list[Any]]) -> list[list[Any]]:
    """Calls AWS refused for want of permission (moto answers some with a bare 403 botocore cannot name)."""
    return [call for call in calls if call[2] in DENIED or call[3] == 403]


def test_each_function_answers_every_route_with_only_its_roles_permissions(
    aws,
    role_policies,
    layer,
    runtime,
    tmp_path,
    sagemaker_stand_in,  # noqa: F811
) -> None:
    ingest = run_packaged(
        "ingest",
        ingest_events(aws),
        lambda_env(aws, aws["make_user"]("ingest-role", role_policies["IngestFunction"])),
        layer,
        runtime,
        tmp_path,
    )
    assert refused(ingest["calls"]) == [], ingest["calls"]
    assert [(r["path"], r["status"]) for r in ingest["responses"]] == [(r["path"], 200) for r in ingest["responses"]], (
        ingest["responses"]
    )
    assert {tuple(c[:2]) for c in ingest["calls"]} >= {
        ("dynamodb", "PutItem"),
        ("dynamodb", "Query"),
        ("dynamodb", "TransactWriteItems"),
        ("s3", "GetObject"),
    }

    api_env = lambda_env(
        aws,
        aws["make_user"]("api-role", role_policies["ApiFunction"]),
        STRONG_ENDPOINT_NAME=STRONG_ENDPOINT,
        SAGEMAKER_ENDPOINT_URL=sagemaker_stand_in.url,
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=sagemaker_stand_in.url,
        DEFAULT_MAX_TOKENS="4",
    )
    api = run_packaged(
        "api", ["health_get.json", "route_post.json", "models_get.json"], api_env, layer, runtime, tmp_path
    )
    assert refused(api["calls"]) == [], api["calls"]
    assert [r["status"] for r in api["responses"]] == [200, 200, 200], api["responses"]
    assert {tuple(c[:2]) for c in api["calls"]} == {("s3", "GetObject")}  # the router versions, nothing else

    chat_event = load_event("chat_post.json")
    chat = run_packaged(
        "chat",
        [str(_free_port()), json.dumps(chat_event["requestContext"]), chat_event["body"]],
        {
            **api_env,
            **aws["make_user"]("chat-role", role_policies["ChatFunction"]),
            "HYBRID_ROUTER_IDENTITY_SOURCE": "request_context_header",
            "STREAM_LIMIT_S": "800",
        },
        layer,
        runtime,
        tmp_path,
        child=CHAT_CHILD,
    )
    assert refused(chat["calls"]) == [], chat["calls"]
    assert [r["status"] for r in chat["responses"]] == [200, 401], chat["responses"]
    assert ["dynamodb", "PutItem", "ok", 200] in chat["calls"]


def test_a_permission_the_role_lacks_is_refused(aws, role_policies, layer, runtime, tmp_path) -> None:  # noqa: F811
    """The control: the ingest role without dynamodb:Query. /v1/usage fails, and AWS (moto) said AccessDenied."""
    policies = json.loads(json.dumps(role_policies["IngestFunction"]))
    for document in policies:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            statement["Action"] = [a for a in actions if a != "dynamodb:Query"]
    result = run_packaged(
        "ingest",
        ["usage_get.json"],
        lambda_env(aws, aws["make_user"]("ingest-role-without-query", policies)),
        layer,
        runtime,
        tmp_path,
    )
    assert result["responses"][0]["status"] >= 500, result["responses"]
    assert [call[:2] for call in refused(result["calls"])] == [["dynamodb", "Query"]], result["calls"]
