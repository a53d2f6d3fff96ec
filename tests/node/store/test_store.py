"""The model store on disk: names, blobs, manifests, GGUF headers, creating and deleting models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from avocado.names import InvalidModelName, ModelName
from avocado.node.store.building import CreateSpec, create_model
from avocado.node.store.errors import InvalidModelFile, ModelNotFound, StoreError
from avocado.node.store.gguf_info import human_parameters, read_gguf_info
from avocado.node.store.store import MediaType, ModelStore
from tests.support import GEMMA, SMOLLM


@pytest.fixture(scope="module")
def weights(home: Path) -> Path:
    return ModelStore(home / "models").resolve(SMOLLM).model_path


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def as_files(store: ModelStore, weights: Path) -> dict[str, str]:
    """``files`` for a create: the weights as a blob, as a client's upload leaves them."""
    return {"model.gguf": store.add_blob_file(weights).digest}


@pytest.mark.parametrize(
    ("text", "display", "parts"),
    [
        ("llama3", "llama3:latest", ("registry.ollama.ai", "library", "llama3", "latest")),
        ("Llama3:8B", "llama3:8b", ("registry.ollama.ai", "library", "llama3", "8b")),
        ("me/mine:v1", "me/mine:v1", ("registry.ollama.ai", "me", "mine", "v1")),
        ("hf.co/user/repo:Q4_K_M", "hf.co/user/repo:q4_k_m", ("hf.co", "user", "repo", "q4_k_m")),
        (
            "127.0.0.1:8080/library/smollm2:135m",
            "127.0.0.1:8080/library/smollm2:135m",
            ("127.0.0.1:8080", "library", "smollm2", "135m"),
        ),
    ],
)
def test_model_names(text: str, display: str, parts: tuple[str, str, str, str]) -> None:
    name = ModelName.parse(text)
    assert name.display == display and name.path_parts == parts


@pytest.mark.parametrize("text", ["", "a b", "x:", "/x", "a//b", "../etc:passwd", "a/b/c/d", "x:y:z!"])
def test_invalid_names(text: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(text)


def test_gguf_header(weights: Path) -> None:
    info = read_gguf_info(weights)
    assert info.architecture == "llama" and info.file_type == "Q4_1"
    assert info.parameter_size == "134.52M" and info.context_length == 8192 and info.embedding_length == 576
    assert info.chat_template and "im_start" in info.chat_template
    assert info.metadata["tokenizer.ggml.tokens"] == {"type": "array", "length": 49152}
    assert human_parameters(1_200_000_000) == "1.2B" and human_parameters(7_000_000_000) == "7B"


def test_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"GGML" + b"\0" * 100)
    with pytest.raises(InvalidModelFile, match="not a GGUF file"):
        read_gguf_info(bogus)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(b"GGUF\x03\0\0\0")
    with pytest.raises(InvalidModelFile, match="truncated"):
        read_gguf_info(truncated)


def test_bundled_models_are_laid_out_like_ollama(home: Path) -> None:
    store = ModelStore(home / "models")
    manifest_path = home / "models" / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest = json.loads(manifest_path.read_bytes())
    assert manifest["schemaVersion"] == 2
    assert manifest["config"]["mediaType"] == MediaType.CONFIG
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds[0] == MediaType.MODEL and MediaType.TEMPLATE in kinds and MediaType.PARAMS in kinds
    for layer in manifest["layers"]:
        blob = home / "models" / "blobs" / layer["digest"].replace(":", "-")
        assert blob.stat().st_size == layer["size"]
    small_blobs = [la for la in manifest["layers"] if la["size"] < 1_000_000]
    for layer in small_blobs:  # content-addressed: the name is the hash of the content
        blob = home / "models" / "blobs" / layer["digest"].replace(":", "-")
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]
    assert store.get(SMOLLM).digest == hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    gemma = store.resolve(GEMMA)
    assert gemma.info.architecture == "gemma3" and gemma.template and "<start_of_turn>" in gemma.template


def test_create_copy_delete_and_prune(store: ModelStore, weights: Path) -> None:
    steps: list[str] = []
    with pytest.raises(StoreError, match="is a path"):  # the disk is read by no request: upload first
        create_model(store, "base:1", CreateSpec(from_=str(weights)), steps.append)
    assert steps == [] and not store.list()
    spec = CreateSpec(files=as_files(store, weights), parameters={"temperature": 0.5})
    create_model(store, "base:1", spec, steps.append)
    assert steps[0] == "gathering model components" and steps[-1] == "success"
    create_model(
        store, "child:1", CreateSpec(from_="base:1", system="Be nice.", parameters={"top_k": 5}), steps.append
    )
    child = store.resolve("child:1")
    assert child.system == "Be nice."
    assert child.parameters == {"temperature": 0.5, "top_k": 5}
    assert child.stored.config["parent_model"] == "base:1"
    store.copy("child:1", "copy:1")
    assert {m.name.display for m in store.list()} == {"base:1", "child:1", "copy:1"}
    blob_count = len(list(store.blobs_dir.glob("sha256-*")))
    store.delete("child:1")
    assert len(list(store.blobs_dir.glob("sha256-*"))) == blob_count  # copy:1 still uses them
    store.delete("copy:1")
    store.delete("base:1")
    assert list(store.blobs_dir.glob("sha256-*")) == []
    with pytest.raises(ModelNotFound):
        store.delete("base:1")


def test_delete_keeps_blobs_that_a_model_being_written_will_name(store: ModelStore, weights: Path) -> None:
    create_model(store, "old:1", CreateSpec(files=as_files(store, weights)), lambda _: None)
    uploaded = store.add_blob_bytes(b"a blob for a create that has not been sent yet")
    weights_digest = store.get("old:1").layers[0].digest
    with store.hold([weights_digest]):  # as a pull of a model with the same weights does
        store.delete("old:1")
        assert store.has_blob(weights_digest)
    assert store.has_blob(uploaded.digest)  # named by no manifest, but not the deleted model's
    assert not [m for m in store.list()]


def test_a_damaged_manifest_can_be_deleted(store: ModelStore) -> None:
    path = store.manifest_path(ModelName.parse("broken:1"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    store.delete("broken:1")
    assert not path.exists()


def test_uploaded_blob_is_checked(store: ModelStore) -> None:
    data = b"some bytes"
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    writer = store.blob_writer(good)
    writer.write(data)
    writer.commit()
    assert store.has_blob(good)
    bad = store.blob_writer("sha256:" + "1" * 64)
    bad.write(data)
    with pytest.raises(StoreError, match="digest mismatch"):
        bad.commit()
    assert not store.has_blob("sha256:" + "1" * 64)
    assert not [p for p in store.blobs_dir.iterdir() if p.name.startswith(".upload-")]


def test_damaged_manifest_hides_only_that_model(store: ModelStore, weights: Path) -> None:
    create_model(store, "ok:1", CreateSpec(files=as_files(store, weights)), lambda _: None)
    broken = store.manifests_dir / "registry.ollama.ai" / "library" / "broken" / "1"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    assert [m.name.display for m in store.list()] == ["ok:1"]
    with pytest.raises(StoreError, match="damaged"):
        store.get("broken:1")
