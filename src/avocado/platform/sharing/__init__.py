"""Share links: a read-only snapshot of a conversation, opened by link, revocable."""
