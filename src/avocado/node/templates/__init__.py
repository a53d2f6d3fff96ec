"""Ollama model templates: Go text/template, interpreted in Python."""
