"""The cloud HTTP API (FastAPI): OpenAI chat completions, route-only decisions, device log uploads, usage, feedback.

One app, two servers: Mangum in AWS Lambda behind API Gateway (functions/*/app.py), uvicorn locally
(`uvicorn --factory hybrid_router.api:create_app`).
"""

from hybrid_router.api.app import ALL_GROUPS, create_app
from hybrid_router.api.settings import ApiSettings

__all__ = ["ALL_GROUPS", "ApiSettings", "create_app"]
