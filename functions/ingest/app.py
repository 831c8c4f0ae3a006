"""Lambda "ingest": POST /v1/decisions, GET /v1/usage, POST /v1/feedback, GET /health.
DynamoDB only: never loads the router, never calls SageMaker."""

from hybrid_router.api.lambda_handler import make_handler

handler = make_handler(groups=("records",))
