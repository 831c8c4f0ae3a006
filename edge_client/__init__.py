"""The device side of hybrid-router: CLI, local OpenAI-compatible server, routing service, settings."""
