"""The HTTP server: OpenAI-compatible and llama-server-compatible endpoints."""
