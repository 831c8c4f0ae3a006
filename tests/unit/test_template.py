"""template.yaml wiring: what each function may do matches what its code does, the layer is attached,
environment variables match what the code reads, the table matches TABLE_SCHEMA, the events match the routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML parses template.yaml")

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

# What the code calls (boto3 operation) -> the IAM actions that call needs.
# TransactWriteItems has no IAM action of its own: each item needs the action of its kind.
IAM_FOR_OPERATION = {
    ("dynamodb", "PutItem"): {"dynamodb:PutItem"},
    ("dynamodb", "Query"): {"dynamodb:Query"},
    ("dynamodb", "GetItem"): {"dynamodb:GetItem"},  # the answer cache's own items (ANSWER#...) only
    ("dynamodb", "TransactWriteItems"): {"dynamodb:ConditionCheckItem", "dynamodb:PutItem"},
    ("sagemaker-runtime", "InvokeEndpoint"): {"sagemaker:InvokeEndpoint"},
    ("sagemaker-runtime", "InvokeEndpointWithResponseStream"): {"sagemaker:InvokeEndpointWithResponseStream"},
    # S3 answers a missing key with NoSuchKey only to a caller that may also list the bucket (AccessDenied else):
    # the deployment file is missing until a version is activated, which must read as "none yet".
    ("s3", "GetObject"): {"s3:GetObject", "s3:ListBucket"},
    ("s3", "ListObjectsV2"): {"s3:ListBucket"},
}
# Which store/backend calls each route group makes (hybrid_router.api.routes_*; checked live in
# tests/functional/test_api_lambda.py::test_calls_stay_within_the_template_permissions).
INFERENCE_OPERATIONS = {
    ("dynamodb", "PutItem"),
    ("sagemaker-runtime", "InvokeEndpoint"),
    ("sagemaker-runtime", "InvokeEndpointWithResponseStream"),
    ("s3", "GetObject"),
}
OPERATIONS = {
    "ChatFunction": INFERENCE_OPERATIONS | {("dynamodb", "GetItem")},  # GetItem: the answer cache
    "ApiFunction": {("s3", "GetObject")},  # models and route-only decisions: the router, nothing else
    "IngestFunction": {
        ("dynamodb", "PutItem"),
        ("dynamodb", "Query"),
        ("dynamodb", "TransactWriteItems"),
        ("s3", "GetObject"),
        ("s3", "ListObjectsV2"),
    },
}
GROUPS = {"ApiFunction": "inference", "ChatFunction": "inference", "IngestFunction": "records"}
CHAT_ROUTE = ("/v1/chat/completions", "POST")
# Variables of the Lambda Web Adapter (the chat function's layer), not of the code.
ADAPTER_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "AWS_LWA_PORT", "AWS_LWA_READINESS_CHECK_PATH"}


class _Loader(yaml.SafeLoader):
    """Keeps CloudFormation short-form tags as {"Fn::X": value} / {"Ref": value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }


def allowed_actions(props: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for policy in props.get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, "only inline statements (reviewable) are used"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def test_each_function_may_do_what_its_code_does_and_no_more(template) -> None:
    found = functions(template)
    assert set(found) == set(OPERATIONS)
    for name, operations in OPERATIONS.items():
        needed = set().union(*(IAM_FOR_OPERATION[op] for op in operations))
        assert allowed_actions(found[name]) == needed, name


def test_permissions_are_scoped_to_resources(template) -> None:
    for name, props in functions(template).items():
        for policy in props["Policies"]:
            for statement in policy["Statement"]:
                resource = statement["Resource"]
                if statement["Action"] == ["s3:GetObject"]:  # the objects of the routers bucket, nothing else
                    assert resource == {"Fn::Sub": "${RoutersBucket.Arn}/*"}, name
                    continue
                assert resource != "*" and "*" not in str(resource), f"{name}: {statement['Sid']} is not scoped"
                if any(a.startswith("dynamodb:") for a in statement["Action"]):
                    # The table only: it has no index.
                    assert resource == {"Fn::GetAtt": ["DecisionsTable", "Arn"]}, name


def test_the_layer_is_built_and_attached(template) -> None:
    layer = template["Resources"]["RouterLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/router"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    # layers/router/Makefile installs wheels for its ARCH default: it must be the layer's architecture.
    arch = re.search(r"^ARCH\s*\?=\s*(\S+)", (REPO / "layers/router/Makefile").read_text(), re.M).group(1)
    assert {"aarch64": "arm64"}.get(arch, arch) == layer["Metadata"]["BuildArchitecture"]
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert set(function_globals["Architectures"]) <= set(layer["Properties"]["CompatibleArchitectures"])
    assert layer["Metadata"]["BuildArchitecture"] in function_globals["Architectures"]
    assert {"Ref": "RouterLayer"} in function_globals["Layers"]
    assert (REPO / "layers/router/hybrid_router/__init__.py").is_file()
    for name, props in functions(template).items():
        assert (REPO / props["CodeUri"] / "app.py").is_file()
        assert props["Handler"] == ("run.sh" if name == "ChatFunction" else "app.handler"), name


def _names_read_by_code() -> set[str]:
    sources = [
        REPO / "layers/router/hybrid_router/api/settings.py",
        REPO / "layers/router/hybrid_router/routing/router.py",
    ]
    names: set[str] = set()
    for path in sources:
        text = path.read_text()
        names.update(re.findall(r'get\("([A-Z][A-Z0-9_]+)"\)', text))
        names.update(re.findall(r'ENV_[A-Z_]+ = "([A-Z][A-Z0-9_]+)"', text))
    return names


def test_environment_variables_are_ones_the_code_reads(template) -> None:
    read = _names_read_by_code()
    assert {"STRONG_ENDPOINT_NAME", "DECISIONS_TABLE_NAME", "SAGEMAKER_BODY_FORMAT", "TENANT_ID"} <= read
    shared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for name, props in functions(template).items():
        env = shared | set(props.get("Environment", {}).get("Variables", {}))
        unknown = {v for v in env - read - ADAPTER_VARIABLES if not v.startswith("POWERTOOLS_")}
        assert not unknown, f"{name} sets variables no code reads: {unknown}"
        assert "DECISIONS_TABLE_NAME" in env and "POWERTOOLS_SERVICE_NAME" in env
    for name in ("ApiFunction", "ChatFunction"):
        api_env = functions(template)[name]["Environment"]["Variables"]
        assert {"STRONG_ENDPOINT_NAME", "WEAK_ENDPOINT_NAME", "SAGEMAKER_BODY_FORMAT"} <= set(api_env), name


def test_table_matches_table_schema(template) -> None:
    from hybrid_router.stores.dynamodb import TABLE_SCHEMA

    table = template["Resources"]["DecisionsTable"]["Properties"]
    key = lambda items: sorted(items, key=lambda i: i["AttributeName"])  # noqa: E731
    assert key(table["AttributeDefinitions"]) == key(TABLE_SCHEMA["AttributeDefinitions"])
    assert table["KeySchema"] == TABLE_SCHEMA["KeySchema"]
    assert "GlobalSecondaryIndexes" not in table and "GlobalSecondaryIndexes" not in TABLE_SCHEMA  # nothing reads one
    assert table["BillingMode"] == TABLE_SCHEMA["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TABLE_SCHEMA["TimeToLiveAttribute"], "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_events_match_the_routes_each_function_serves(template) -> None:
    from hybrid_router.api import ApiSettings, create_app

    for name, props in functions(template).items():
        # API Gateway's greedy {name+} is FastAPI's {name:path}, which OpenAPI writes as {name}
        events = {
            (e["Properties"]["Path"].replace("+}", "}"), e["Properties"]["Method"].upper())
            for e in props["Events"].values()
        }
        app = create_app(ApiSettings(), groups=(GROUPS[name],))
        routes = {(path, method.upper()) for path, ops in app.openapi()["paths"].items() for method in ops}
        if name == "ChatFunction":  # the chat route only, streamed; the api function serves the others
            assert events == {CHAT_ROUTE}
            continue
        gateway_only = {("/health", "GET")} if name == "IngestFunction" else set()
        gateway_only |= {CHAT_ROUTE} if name == "ApiFunction" else set()
        assert events == routes - gateway_only, name
        for event in props["Events"].values():
            assert event["Properties"]["RestApiId"] == {"Ref": "HybridRouterApi"}
            key_required = event["Properties"].get("Auth", {}).get("ApiKeyRequired", True)
            assert key_required == (event["Properties"]["Path"] != "/health")


def test_api_key_usage_plan_and_outputs(template) -> None:
    resources = template["Resources"]
    assert resources["HybridRouterApi"]["Properties"]["Auth"]["ApiKeyRequired"] is True
    plan = resources["UsagePlan"]["Properties"]
    assert plan["Throttle"] == {"RateLimit": {"Ref": "ThrottleRateLimit"}, "BurstLimit": {"Ref": "ThrottleBurstLimit"}}
    assert plan["Quota"]["Limit"] == {"Ref": "QuotaLimit"}
    assert resources["DeviceApiKeyUsage"]["Properties"]["KeyId"] == {"Ref": "DeviceApiKey"}
    assert {"ApiUrl", "ApiKeyId", "DecisionsTableName", "StrongEndpointName", "RoutersBucketName"} <= set(
        template["Outputs"]
    )


def test_sagemaker_resources_are_skipped_for_an_existing_endpoint(template) -> None:
    resources = template["Resources"]
    for name in ("SageMakerExecutionRole", "StrongModel", "StrongEndpointConfig", "StrongEndpoint"):
        assert resources[name]["Condition"] == "CreateEndpoint", name
    assert template["Conditions"]["CreateEndpoint"] == {"Fn::Equals": [{"Ref": "ExistingEndpointName"}, ""]}
    assert template["Parameters"]["InstanceType"]["Default"] == "ml.g5.xlarge"
    alarms = {r["Properties"]["MetricName"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"5XXError", "Invocation5XXErrors"} <= alarms


def test_every_alarm_notifies_a_topic(template) -> None:
    resources = template["Resources"]
    alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    topic = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
    assert len(alarms) >= 3
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [topic], name
        assert alarm["Properties"]["OKActions"] == [topic], name
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert resources["AlarmTopic"]["Condition"] == "CreateAlarmTopic"
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def _key_statements(template: dict[str, Any], key_ref: Any) -> list[dict[str, Any]]:
    assert isinstance(key_ref, dict) and set(key_ref) == {"Ref"}, f"the topic key must be this stack's key: {key_ref}"
    key = template["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    return key["Properties"]["KeyPolicy"]["Statement"]


def test_cloudwatch_can_publish_to_the_alarm_topic(template) -> None:
    # CloudWatch cannot use the AWS-managed SNS key (alias/aws/sns): alarms on such a topic notify nobody.
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    key_ref = topic.get("KmsMasterKeyId")
    if key_ref is None:
        return  # an unencrypted topic is publishable
    assert "alias/aws/" not in str(key_ref)
    granted: set[str] = set()
    for statement in _key_statements(template, key_ref):
        if statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}:
            actions = statement["Action"]
            granted.update([actions] if isinstance(actions, str) else actions)
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted
    key = template["Resources"][key_ref["Ref"]]
    assert key["Condition"] == template["Resources"]["AlarmTopic"]["Condition"] == "CreateAlarmTopic"


def _endpoint_name_parameters(template: dict[str, Any]) -> set[str]:
    """Parameters substituted into a SageMaker endpoint or inference-component ARN in any function's policy."""
    names: set[str] = set()
    for props in functions(template).values():
        for found in re.findall(r":(?:endpoint|inference-component)/\$\{(\w+)\}", str(props.get("Policies", []))):
            names.add(found)
    return names


def test_endpoint_arns_in_policies_are_lower_case(template) -> None:
    # SageMaker writes endpoint ARNs in lower case; IAM compares case-sensitively, so a policy built from
    # "My-Endpoint" denies every call. The names that build ARNs must be lower case to be accepted at all.
    names = _endpoint_name_parameters(template)
    assert names == {"ExistingEndpointName", "WeakEndpointName", "InferenceComponentName"}
    for name in names:
        pattern = template["Parameters"][name].get("AllowedPattern")
        assert pattern, f"{name} accepts any case"
        assert re.fullmatch(pattern, ""), name  # optional
        for good in ("hybrid-router-strong", "llama-3-70b-2026-01-01", "e1"):
            assert re.fullmatch(pattern, good), (name, good)
        for bad in ("Hybrid-Router-Strong", "endpointA", "-lead", "under_score"):
            assert not re.fullmatch(pattern, bad), (name, bad)


def test_sagemaker_alarm_watches_the_endpoints_variant(template) -> None:
    resources = template["Resources"]
    variant = {"Ref": "EndpointVariantName"}
    assert template["Parameters"]["EndpointVariantName"]["Default"] == "AllTraffic"
    config_variants = resources["StrongEndpointConfig"]["Properties"]["ProductionVariants"]
    assert [v["VariantName"] for v in config_variants] == [variant]
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    sagemaker = [a for a in alarms if a["Properties"]["Namespace"] == "AWS/SageMaker"]
    assert sagemaker
    for alarm in sagemaker:
        condition, per_component, per_variant = alarm["Properties"]["Dimensions"]["Fn::If"]
        assert condition == "HasInferenceComponent"
        assert per_component == [{"Name": "InferenceComponentName", "Value": {"Ref": "InferenceComponentName"}}]
        dimensions = {d["Name"]: d["Value"] for d in per_variant}
        assert dimensions["VariantName"] == variant


NO_VALUE = object()


def _resolve(value: Any, params: dict[str, str], conditions: dict[str, bool]) -> Any:
    """What CloudFormation makes of Fn::If, Ref and AWS::NoValue for these parameters and conditions."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        name, yes, no = value["Fn::If"]
        return _resolve(yes if conditions[name] else no, params, conditions)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return NO_VALUE if value["Ref"] == "AWS::NoValue" else params.get(value["Ref"], value)
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{(\w+)\}", lambda m: params.get(m.group(1), m.group(0)), value["Fn::Sub"])
    if isinstance(value, dict):
        resolved = {k: _resolve(v, params, conditions) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}
    return value


def _container_environment(template: dict[str, Any], **given: str) -> dict[str, str]:
    params = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()} | given
    container = params["StrongContainer"]
    conditions = {
        "HasModelData": bool(params["ModelDataUrl"]),
        "HasHfToken": bool(params["HfTokenSecretArn"]),
        "HasServedModelName": bool(params["ServedModelName"]),
        "IsTgi": container == "tgi",
        "IsLmi": container == "lmi",
        "IsVllm": container == "vllm",
    }
    environment = template["Resources"]["StrongModel"]["Properties"]["PrimaryContainer"]["Environment"]
    return _resolve(environment, params, conditions)


def test_each_container_gets_its_own_environment_and_weights(template) -> None:
    assert template["Parameters"]["StrongContainer"]["AllowedValues"] == ["tgi", "lmi", "vllm"]
    # The hard-coded HF_MODEL_ID=/opt/ml/model made a stack without ModelDataUrl (or with vLLM) fail its health check.
    tgi = _container_environment(template, ModelDataUrl="s3://weights/llama/model.tar.gz")
    assert tgi == {
        "HF_MODEL_ID": "/opt/ml/model",
        "SM_NUM_GPUS": "1",
        "MAX_INPUT_TOKENS": "4096",
        "MAX_TOTAL_TOKENS": "8192",
    }
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"
    hub = _container_environment(template, HfModelId="meta-llama/Llama-3.1-8B-Instruct", HfTokenSecretArn=secret)
    assert hub["HF_MODEL_ID"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert hub["HF_TOKEN"] == f"{{{{resolve:secretsmanager:{secret}}}}}"  # resolved at deploy, never in the template
    lmi = _container_environment(template, StrongContainer="lmi", HfModelId="mistralai/Mistral-7B-Instruct-v0.3")
    assert lmi == {
        "HF_MODEL_ID": "mistralai/Mistral-7B-Instruct-v0.3",
        "OPTION_ROLLING_BATCH": "vllm",
        "TENSOR_PARALLEL_DEGREE": "1",
        "OPTION_MAX_MODEL_LEN": "8192",
    }
    vllm = _container_environment(
        template, StrongContainer="vllm", ModelDataUrl="s3://w/m.tar.gz", ServedModelName="llama-3.1-8b-instruct"
    )
    assert vllm == {
        "SM_VLLM_MODEL": "/opt/ml/model",
        "SM_VLLM_SERVED_MODEL_NAME": "llama-3.1-8b-instruct",
        "SM_VLLM_MAX_MODEL_LEN": "8192",
        "SM_VLLM_TENSOR_PARALLEL_SIZE": "1",
    }
    api_env = functions(template)["ApiFunction"]["Environment"]["Variables"]
    assert api_env["STRONG_CONTAINER"] == {"Ref": "StrongContainer"}
    assert api_env["STRONG_SERVED_MODEL_NAME"] == {"Ref": "ServedModelName"}
    assert api_env["STRONG_INFERENCE_COMPONENT"] == {"Ref": "InferenceComponentName"}
    assert template["Parameters"]["SageMakerBodyFormat"]["Default"] == "messages"


def test_rules_refuse_a_stack_that_cannot_serve(template) -> None:
    rules = template["Rules"]
    create = rules["ImageNeededToCreateEndpoint"]
    asserted = str([a["Assert"] for a in create["Assertions"]])
    assert "ModelDataUrl" in asserted and "HfModelId" in asserted and "InferenceComponentName" in asserted
    vllm = rules["VllmTakesMessagesOnly"]
    assert vllm["RuleCondition"] == {"Fn::Equals": [{"Ref": "StrongContainer"}, "vllm"]}
    assert vllm["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "SageMakerBodyFormat"}, "messages"]}


def test_chat_is_streamed_past_api_gateways_29_seconds(template) -> None:
    """The chat route is API Gateway's streamed Lambda integration, into a function that can outlast it, run by the
    Lambda Web Adapter in streaming mode on the functions' architecture; every other route stays buffered."""
    chat = functions(template)["ChatFunction"]
    [event] = chat["Events"].values()
    assert event["Properties"]["ResponseTransferMode"] == "RESPONSE_STREAM"
    gateway_ms = event["Properties"]["TimeoutInMillis"]
    assert 29_000 < gateway_ms <= 900_000  # API Gateway allows a streamed integration up to 15 minutes
    assert chat["Timeout"] * 1000 >= gateway_ms  # the function is not stopped before the gateway gives up
    env = chat["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap" and env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["HYBRID_ROUTER_IDENTITY_SOURCE"] == "request_context_header"
    assert float(env["SAGEMAKER_TIMEOUT_S"]) * 1000 < gateway_ms
    # A stream is ended and recorded before Lambda's timeout could stop the function: the limit is checked after
    # each piece, and the next piece may take one SageMaker read.
    assert float(env["STREAM_LIMIT_S"]) + float(env["SAGEMAKER_TIMEOUT_S"]) + 15 <= chat["Timeout"]
    [adapter] = chat["Layers"]  # beside the RouterLayer of Globals (SAM appends)
    arch = {"arm64": "Arm64", "x86_64": "X86"}[template["Globals"]["Function"]["Architectures"][0]]
    assert f":753240598075:layer:LambdaAdapterLayer{arch}:" in adapter["Fn::Sub"]
    run = (REPO / chat["CodeUri"] / "run.sh").read_text()
    assert (REPO / chat["CodeUri"] / "run.sh").stat().st_mode & 0o111, "run.sh must be executable"
    assert "uvicorn" in run and "AWS_LWA_PORT" in run and "app:app" in run
    assert "uvicorn" in (REPO / "layers/router/requirements.txt").read_text()
    # The buffered functions answer within API Gateway's 29 s, or the gateway's 504 would hide their own.
    assert template["Globals"]["Function"]["Timeout"] <= 30
    for name, props in functions(template).items():
        for other in props["Events"].values():
            if name != "ChatFunction":
                assert "ResponseTransferMode" not in other["Properties"], name
        if name == "ApiFunction":
            assert float(props["Environment"]["Variables"]["SAGEMAKER_TIMEOUT_S"]) < 29


def test_the_chat_function_reads_only_the_answer_caches_items(template) -> None:
    """GetItem serves the answer cache; a leading-key condition keeps it off the decision records."""
    statements = [s for p in functions(template)["ChatFunction"]["Policies"] for s in p["Statement"]]
    (read,) = [s for s in statements if "dynamodb:GetItem" in s["Action"]]
    assert read["Action"] == ["dynamodb:GetItem"]
    assert read["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ANSWER#*"]}}
    env = functions(template)["ChatFunction"]["Environment"]["Variables"]
    assert env["ANSWER_CACHE"] == {"Ref": "AnswerCache"} and template["Parameters"]["AnswerCache"]["Default"] == "false"
