"""Reading the tokens an answer used as it passes through: events cut anywhere between chunks,
either line ending, the usage chunk the platform asked for kept from a client that did not."""

from __future__ import annotations

import json

from avocado.platform.compat.usage import MAX_BODY, UsageMeter, ask_for_usage, tokens_of

CONTENT = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def _events(newline: str = "\n") -> bytes:
    events = [f"data: {json.dumps(CONTENT)}", f"data: {json.dumps(USAGE)}", "data: [DONE]"]
    return "".join(event + newline * 2 for event in events).encode()


def _through(meter: UsageMeter, data: bytes, size: int) -> bytes:
    out = b"".join(meter.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + meter.finish()


def test_a_stream_cut_anywhere_is_read_and_its_usage_chunk_dropped_when_not_asked() -> None:
    for newline in ("\n", "\r\n"):
        data = _events(newline)
        for size in (1, 7, 64, len(data)):
            dropped = UsageMeter(streaming=True, drop_usage=True)
            out = _through(dropped, data, size)
            assert dropped.tokens == 10
            assert b"usage" not in out and out.endswith(f"data: [DONE]{newline}{newline}".encode())
            assert out.startswith(f"data: {json.dumps(CONTENT)}".encode())
            kept = UsageMeter(streaming=True, drop_usage=False)
            assert _through(kept, data, size) == data and kept.tokens == 10


def test_a_stream_without_usage_counts_its_content_chunks() -> None:
    cut = f"data: {json.dumps(CONTENT)}\n\n" * 3 + "data: {"  # the client left mid-stream
    meter = UsageMeter(streaming=True, drop_usage=True)
    assert _through(meter, cut.encode(), 5).count(b"data:") == 4
    assert meter.tokens == 3


def test_a_whole_answer_s_usage() -> None:
    body = json.dumps({"object": "chat.completion", "usage": {"prompt_tokens": 4, "completion_tokens": 5}})
    meter = UsageMeter(streaming=False)
    assert _through(meter, body.encode(), 3) == body.encode()
    assert meter.tokens == 9
    garbled = UsageMeter(streaming=False)
    garbled.feed(b"not json")
    assert garbled.tokens == 0
    huge = UsageMeter(streaming=False)
    huge.feed(b" " * (MAX_BODY + 1))
    assert huge.tokens == 0


def test_asking_for_usage() -> None:
    body: dict[str, object] = {"stream": True}
    assert ask_for_usage(body) and body["stream_options"] == {"include_usage": True}
    asked: dict[str, object] = {"stream": True, "stream_options": {"include_usage": True}}
    assert not ask_for_usage(asked)
    whole: dict[str, object] = {"stream": False}
    assert not ask_for_usage(whole) and "stream_options" not in whole
    assert tokens_of({"total_tokens": True}) is None and tokens_of("10") is None
