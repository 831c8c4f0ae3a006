"""Local stand-ins that speak AWS's wire protocols: a SageMaker runtime + BYOC container with a real llama.cpp
model, a DynamoDB server (moto), and the cloud API under uvicorn. `python -m local_stack` starts them all."""
