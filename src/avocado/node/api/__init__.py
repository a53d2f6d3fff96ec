"""HTTP API of the node: Ollama's routes and the OpenAI-compatible ones."""
