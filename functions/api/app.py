"""Lambda "api": POST /v1/chat/completions, GET /v1/models, POST /v1/route, GET /health.
Loads the router and calls SageMaker; writes one decision record per answer (dynamodb:PutItem)."""

from hybrid_router.api.lambda_handler import make_handler

handler = make_handler(groups=("inference",))
