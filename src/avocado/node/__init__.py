"""The inference node: an Ollama-compatible API on an embedded llama.cpp engine."""
