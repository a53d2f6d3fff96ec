"""Conversations: chats stored as trees of message rows, streamed as they are written, in folders."""
