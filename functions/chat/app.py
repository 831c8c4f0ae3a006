"""Lambda "chat": POST /v1/chat/completions, streamed to the client as the strong model generates.

API Gateway's response-streaming integration (ResponseTransferMode STREAM, no 29 s cut) invokes this function with
InvokeWithResponseStream; the Lambda Web Adapter (a layer, started by run.sh's wrapper) turns each event into an
HTTP request to this same FastAPI app under uvicorn and streams its response back. The caller comes from the
event's requestContext (HYBRID_ROUTER_IDENTITY_SOURCE=request_context_header): API Gateway checked the key.
"""

import logging

from hybrid_router.api import create_app
from hybrid_router.api.errors import ApiError

app = create_app(groups=("inference",))
try:  # load the router during the init phase, as the api function does; a broken one is a 503 per request
    app.state.services.router
except ApiError as exc:
    logging.getLogger("hybrid_router.chat").error("router not loaded at init: %s", exc.message)
