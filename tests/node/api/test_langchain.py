"""LangChain's Ollama and OpenAI integrations, unchanged, against a real node."""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_ollama import ChatOllama, OllamaEmbeddings, OllamaLLM
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.support import GEMMA, SMOLLM, RunningNode


def test_chat_ollama_invoke_and_stream(node: RunningNode) -> None:
    llm = ChatOllama(model=SMOLLM, base_url=node.url, temperature=0, num_predict=16)
    messages = [SystemMessage("Answer in one word."), HumanMessage("What is the capital of France?")]
    reply = llm.invoke(messages)
    assert "Paris" in str(reply.content)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0
    streamed = "".join(str(chunk.content) for chunk in llm.stream(messages))
    assert streamed == reply.content


def test_chat_ollama_structured_output(node: RunningNode) -> None:
    class City(BaseModel):
        name: str
        country: str

    llm = ChatOllama(model=SMOLLM, base_url=node.url, temperature=0, num_predict=60)
    city = llm.with_structured_output(City, method="json_schema").invoke("Name a city in France as JSON.")
    assert isinstance(city, City) and city.name


def test_ollama_llm_and_embeddings(node: RunningNode) -> None:
    completion = OllamaLLM(model=GEMMA, base_url=node.url, temperature=0, num_predict=6).invoke("The sky is")
    assert completion.strip()
    embeddings = OllamaEmbeddings(model=SMOLLM, base_url=node.url)
    vectors = embeddings.embed_documents(["hello", "world"])
    assert len(vectors) == 2 and len(vectors[0]) == 576
    assert len(embeddings.embed_query("hello")) == 576


def test_chat_openai_against_the_v1_api(node: RunningNode) -> None:
    llm = ChatOpenAI(
        model=SMOLLM, base_url=f"{node.url}/v1", api_key="unused", temperature=0, max_completion_tokens=16
    )
    reply = llm.invoke("What is the capital of France? One word.")
    assert "Paris" in str(reply.content)
    chunks = list(llm.stream("What is the capital of France? One word."))
    assert "".join(str(c.content) for c in chunks) == reply.content
