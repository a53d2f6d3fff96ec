"""The platform's OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``) for scripts."""
