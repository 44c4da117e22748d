"""Deterministic stand-ins for an embedding model and an LLM, so the examples run offline.

`embed(text)` hashes each word (lower-cased, a trailing "s" dropped) into one of DIM
dimensions with a sign, plus a constant component, and normalises: texts sharing words are
close, as with a real model, and the same text always gets the same vector. Replace these
with your real models (OpenAIEmbeddings, HuggingFaceEmbedding, ...) in an application.
"""
from __future__ import annotations

import hashlib
import math
import re

DIM = 64


def _words(text: str) -> list[str]:
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in re.findall(r"[a-z0-9]+", text.lower())]


def embed(text: str, dim: int = DIM) -> list[float]:
    v = [0.0] * dim
    v[0] = 0.5  # never all zero: a cosine needs a length
    for w in _words(text):
        h = hashlib.sha256(w.encode()).digest()
        v[1 + h[0] % (dim - 1)] += 1.0 if h[1] % 2 else -1.0
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


try:  # LangChain's Embeddings interface
    from langchain_core.embeddings import Embeddings

    class HashEmbeddings(Embeddings):
        """`embed` as a LangChain embedding model."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [embed(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return embed(text)
except ImportError:  # pragma: no cover
    pass

try:  # LlamaIndex's BaseEmbedding
    from llama_index.core.base.embeddings.base import BaseEmbedding

    class HashEmbedding(BaseEmbedding):
        """`embed` as a LlamaIndex embedding model."""

        def _get_query_embedding(self, query: str) -> list[float]:
            return embed(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return embed(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return embed(text)
except ImportError:  # pragma: no cover
    pass


def first_sentence_answer(prompt: str) -> str:
    """A deterministic 'LLM': answers with the first line after "Context:" in the prompt."""
    m = re.search(r"Context:[ \t]*\n\s*(.+)", prompt)
    return "Answer: " + m.group(1).strip() if m else "Answer: I don't know."
