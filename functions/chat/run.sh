#!/bin/sh
# The chat function's "handler": with AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap, the Lambda Web Adapter layer runs
# this script, waits for GET /health on AWS_LWA_PORT, then forwards each API Gateway event to it as HTTP.
exec python -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log --log-level warning app:app
