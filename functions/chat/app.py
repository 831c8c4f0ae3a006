"""Lambda "chat": POST /v1/chat/completions, streamed to the client as the strong model generates.

API Gateway's response-streaming integration (ResponseTransferMode STREAM, no 29 s cut) invokes this function with
InvokeWithResponseStream; the Lambda Web Adapter (a layer, which starts run.sh) turns each event into an HTTP
request to this same FastAPI app under uvicorn and streams its response back. The caller comes from the event's
requestContext (HYBRID_ROUTER_IDENTITY_SOURCE=request_context_header): API Gateway checked the key.
"""

from hybrid_router.api.lambda_handler import make_streaming_app

app = make_streaming_app(groups=("inference",))
