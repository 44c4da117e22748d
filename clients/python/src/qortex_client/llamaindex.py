"""A LlamaIndex retriever over qortex's ``hybrid_search``, learning from feedback.

.. code-block:: python

    from qortex_client.llamaindex import QortexRetriever
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = QortexRetriever(conn, "kb", embed_model=embed_model, k=5)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = engine.query("why do cats purr")
    retriever.feedback([(response.source_nodes[0], "accepted")])

Needs ``llama-index-core`` (``pip install qortex-client[llamaindex]``).
"""
from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping, Optional, Tuple, Union

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import (
    BaseNode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from ._client import FeedbackResult, Outcome, QortexClient, SearchHit
from ._retrieval import legs, outcomes_of, resolve_query_id, search_options

__all__ = ["QortexRetriever"]

QORTEX_KEY = "qortex"


def _node(hit: SearchHit) -> BaseNode:
    """The row as a node: LlamaIndex's own node where the row is one its PGVectorStore wrote
    (``_node_content`` in the metadata), else a TextNode of the row."""
    if "_node_content" in hit.metadata:
        try:
            from llama_index.core.vector_stores.utils import metadata_dict_to_node

            node = metadata_dict_to_node(hit.metadata, text=hit.content)
            return node
        except Exception:  # not LlamaIndex's after all: fall back to the row
            pass
    node = TextNode(id_=hit.id, text=hit.content or "", metadata=dict(hit.metadata))
    if hit.document_id is not None:
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=hit.document_id)
    return node


class QortexRetriever(BaseRetriever):
    """``hybrid_search`` as a LlamaIndex retriever, returning ``NodeWithScore``s.

    Each node's score is the fused score; its metadata has one more key, ``"qortex"`` (kept
    out of what the LLM and the embedding model see): ``{"id", "document_id", "collection",
    "query_id", "score", "vector_rank", "vector_similarity", "text_rank", "text_score",
    "factor"}``. Rows LlamaIndex's ``PGVectorStore`` wrote come back as the nodes it stored.

    ``connection``: a psycopg 3 connection or pool (``retrieve`` and ``aretrieve``) or an
    asyncpg pool or connection / psycopg async connection or pool (``aretrieve``,
    ``afeedback``); ``aconnection`` optionally gives an asynchronous one beside a synchronous
    ``connection``.
    """

    def __init__(
        self,
        connection: Any,
        collection: str,
        embed_model: Optional[BaseEmbedding] = None,
        k: int = 10,
        *,
        filter: Optional[Mapping[str, Any]] = None,
        user_id: Optional[str] = None,
        fusion: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        search_type: Literal["hybrid", "vector", "text"] = "hybrid",
        aconnection: Any = None,
        qortex_schema: Optional[str] = None,
        callback_manager: Optional[CallbackManager] = None,
        verbose: bool = False,
    ) -> None:
        legs(search_type)
        self.collection = collection
        self.embed_model = embed_model
        self.k = k
        self.filter = dict(filter) if filter is not None else None
        self.user_id = user_id
        self.fusion = fusion
        self.options = dict(options or {})
        self.search_type = search_type
        self._client = QortexClient(connection, schema=qortex_schema)
        self._aclient = (QortexClient(aconnection, schema=qortex_schema)
                         if aconnection is not None else self._client)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _prepare(self, query_bundle: QueryBundle) -> Tuple[dict[str, Any], str]:
        opts = search_options(self.options, self.filter, self.user_id, self.fusion)
        return opts, resolve_query_id(None, self.collection, query_bundle.query_str, opts)

    def _nodes(self, hits: list[SearchHit], query_id: str) -> list[NodeWithScore]:
        out = []
        for h in hits:
            node = _node(h)
            node.metadata[QORTEX_KEY] = {
                "id": h.id, "document_id": h.document_id, "collection": self.collection,
                "query_id": query_id, "score": h.score, "vector_rank": h.vector_rank,
                "vector_similarity": h.vector_similarity, "text_rank": h.text_rank,
                "text_score": h.text_score, "factor": h.factor,
            }
            for keys in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                if QORTEX_KEY not in keys:
                    keys.append(QORTEX_KEY)
            out.append(NodeWithScore(node=node, score=h.score))
        return out

    def _embed_model(self) -> BaseEmbedding:
        if self.embed_model is None:
            raise ValueError("QortexRetriever: embed_model is needed for the vector leg "
                             "(or give the QueryBundle an embedding, or use search_type='text')")
        return self.embed_model

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        opts, qid = self._prepare(query_bundle)
        vector, text = legs(self.search_type)
        embedding = query_bundle.embedding
        if vector and embedding is None:
            strs = query_bundle.embedding_strs
            model = self._embed_model()
            embedding = (model.get_query_embedding(strs[0]) if len(strs) == 1
                         else model.get_agg_embedding_from_queries(strs))
        hits = self._client.search(self.collection, embedding if vector else None,
                                   query_bundle.query_str if text else None, self.k, opts)
        return self._nodes(hits, qid)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        opts, qid = self._prepare(query_bundle)
        vector, text = legs(self.search_type)
        embedding = query_bundle.embedding
        if vector and embedding is None:
            strs = query_bundle.embedding_strs
            model = self._embed_model()
            embedding = (await model.aget_query_embedding(strs[0]) if len(strs) == 1
                         else await model.aget_agg_embedding_from_queries(strs))
        hits = await self._aclient.asearch(self.collection, embedding if vector else None,
                                           query_bundle.query_str if text else None, self.k, opts)
        return self._nodes(hits, qid)

    # -- feedback -------------------------------------------------------------------------

    @staticmethod
    def _id_and_query(item: Any) -> Tuple[str, Optional[str]]:
        if isinstance(item, NodeWithScore):
            item = item.node
        if isinstance(item, BaseNode):
            q = item.metadata.get(QORTEX_KEY) or {}
            return str(q.get("id", item.node_id)), q.get("query_id")
        return str(item), None

    def feedback(self, outcomes: Union[Mapping[str, Outcome], Iterable[Tuple[Union[NodeWithScore, BaseNode, str], Outcome]]],
                 *, query_id: Optional[str] = None) -> list[FeedbackResult]:
        """Tell qortex which results were kept: ``[(node, "accepted"), (node2, "rejected")]``
        with nodes this retriever returned (``response.source_nodes``; their search's query
        id is used, so the same feedback sent again changes nothing), or ``{id: outcome}``
        with an explicit ``query_id`` (without one, every call counts again). Returns
        interoception_update's rows."""
        out, qid = outcomes_of(outcomes, self._id_and_query, query_id)
        return self._client.feedback(out, qid)

    async def afeedback(self, outcomes: Union[Mapping[str, Outcome], Iterable[Tuple[Union[NodeWithScore, BaseNode, str], Outcome]]],
                        *, query_id: Optional[str] = None) -> list[FeedbackResult]:
        """:meth:`feedback`, asynchronously."""
        out, qid = outcomes_of(outcomes, self._id_and_query, query_id)
        return await self._aclient.afeedback(out, qid)
