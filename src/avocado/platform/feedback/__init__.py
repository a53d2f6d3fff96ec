"""Feedback on answers: up or down, a reason and a comment, with a snapshot of the exchange kept."""
