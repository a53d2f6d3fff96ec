"""What the engine tests share: jobs on the bundled SmolLM2 and a collector of their events."""

from __future__ import annotations

import threading
import time

from avocado.node.engine.jobs import Done, GenerateJob, Text
from avocado.node.engine.runner import Runner
from avocado.node.engine.sampling import SamplingParams

__all__ = ["CHATML", "QUESTIONS", "Collector", "greedy_job"]

CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


class Collector:
    """Gathers one job's events and signals when it ends."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.finished = threading.Event()
        self.generating = threading.Event()  # the first text has come
        self.first_text_at = 0.0

    def __call__(self, event: object) -> None:
        if isinstance(event, Text) and not self.first_text_at:
            self.first_text_at = time.monotonic()
            self.generating.set()
        self.events.append(event)
        if not isinstance(event, Text):
            self.finished.set()

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, Text))

    @property
    def done(self) -> Done:
        assert self.finished.wait(120)
        last = self.events[-1]
        assert isinstance(last, Done), last
        return last


QUESTIONS = ["Name a fruit.", "What is 2+2?", "Describe the moon.", "Say hello in French.", "Name a river."]


def greedy_job(runner: Runner, question: str, n: int = 24) -> tuple[GenerateJob, Collector]:
    collector = Collector()
    prompt = runner.model.tokenize(CHATML.format(question))
    return GenerateJob(prompt, SamplingParams(temperature=0), n, [], None, collector), collector
