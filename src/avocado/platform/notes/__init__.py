"""Notes: markdown, standalone or attached to a conversation, searchable."""
