"""A LangChain retriever over qortex's ``hybrid_search``, learning from feedback.

.. code-block:: python

    from qortex_client.langchain import QortexRetriever

    retriever = QortexRetriever(connection=conn, embeddings=embeddings, collection="kb", k=5,
                                filter={"lang": "en"}, user_id="u1")
    docs = retriever.invoke("why do cats purr")
    retriever.feedback([(docs[0], "accepted"), (docs[1], "rejected")])

Needs ``langchain-core`` (``pip install qortex-client[langchain]``).
"""
from __future__ import annotations

from typing import Any, Iterable, Literal, Mapping, Optional, Tuple, Union

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from ._client import FeedbackResult, Outcome, QortexClient, SearchHit
from ._retrieval import legs, outcomes_of, resolve_query_id, search_options

__all__ = ["QortexRetriever"]


class QortexRetriever(BaseRetriever):
    """``hybrid_search`` as a LangChain retriever.

    Each :class:`~langchain_core.documents.Document` has the row's ``id`` as ``Document.id``,
    its content as ``page_content``, and the row's metadata with one more key, ``"qortex"``:
    ``{"id", "document_id", "collection", "query_id", "score", "vector_rank",
    "vector_similarity", "text_rank", "text_score", "factor"}`` (ranks and scores are None
    where a leg did not return the row).

    ``connection``: a psycopg 3 connection or pool (sync and async calls) or an asyncpg pool
    or connection / psycopg async connection or pool (async calls: ``ainvoke``,
    ``afeedback``). ``aconnection`` optionally gives an asynchronous one beside a synchronous
    ``connection``; async calls then use it.

    Per call, ``invoke(query, k=..., filter=..., user_id=..., options=..., query_id=...)``
    override the retriever's values.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    connection: Any
    """psycopg 3 Connection / ConnectionPool / AsyncConnection / AsyncConnectionPool, or an
    asyncpg Pool / Connection."""
    collection: str
    """The qortex collection to search."""
    embeddings: Optional[Embeddings] = None
    """Embeds the query for the vector leg (not needed for ``search_type="text"``)."""
    k: int = 10
    """Rows to return (hybrid_search's ``k``, 1-10,000)."""
    filter: Optional[dict[str, Any]] = None
    """hybrid_search's ``filter``: metadata containment, equality on filter columns."""
    user_id: Optional[str] = None
    """hybrid_search's ``user_id``: that user's rows and the global ones."""
    fusion: Optional[str] = None
    """hybrid_search's ``fusion`` (default ``rrf``)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Any other hybrid_search option (``rrf_k``, ``candidates``, ``text_mode``, ``feedback``,
    ``graph``, ...), passed as given; the server refuses unknown ones (InvalidArgumentError)."""
    search_type: Literal["hybrid", "vector", "text"] = "hybrid"
    """Which legs to run: both, the vector leg only, or the text leg only."""
    aconnection: Any = None
    """An asynchronous connection or pool for async calls, beside a synchronous ``connection``."""
    qortex_schema: Optional[str] = None
    """The schema of qortex's functions, where it is not on the search_path."""

    _client: QortexClient = PrivateAttr()
    _aclient: QortexClient = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        super().model_post_init(__context)
        legs(self.search_type)  # a bad search_type fails here
        self._client = QortexClient(self.connection, schema=self.qortex_schema)
        self._aclient = (QortexClient(self.aconnection, schema=self.qortex_schema)
                         if self.aconnection is not None else self._client)

    # -- retrieval ------------------------------------------------------------------------

    def _prepare(self, query: str, kwargs: dict[str, Any]) -> Tuple[int, dict[str, Any], str]:
        unknown = set(kwargs) - {"k", "filter", "user_id", "fusion", "options", "query_id"}
        if unknown:
            raise TypeError(f"QortexRetriever: unknown argument(s) {', '.join(sorted(unknown))}")
        opts = search_options({**self.options, **kwargs.get("options", {})},
                              kwargs.get("filter", self.filter),
                              kwargs.get("user_id", self.user_id),
                              kwargs.get("fusion", self.fusion))
        qid = resolve_query_id(kwargs.get("query_id"), self.collection, query, opts)
        return kwargs.get("k", self.k), opts, qid

    def _documents(self, hits: list[SearchHit], query_id: str) -> list[Document]:
        docs = []
        for h in hits:
            meta = dict(h.metadata)
            meta["qortex"] = {
                "id": h.id, "document_id": h.document_id, "collection": self.collection,
                "query_id": query_id, "score": h.score, "vector_rank": h.vector_rank,
                "vector_similarity": h.vector_similarity, "text_rank": h.text_rank,
                "text_score": h.text_score, "factor": h.factor,
            }
            docs.append(Document(id=h.id, page_content=h.content or "", metadata=meta))
        return docs

    def _need_embeddings(self) -> Embeddings:
        if self.embeddings is None:
            raise ValueError("QortexRetriever: embeddings are needed for the vector leg "
                             "(or use search_type='text')")
        return self.embeddings

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        k, opts, qid = self._prepare(query, kwargs)
        vector, text = legs(self.search_type)
        embedding = self._need_embeddings().embed_query(query) if vector else None
        hits = self._client.search(self.collection, embedding, query if text else None, k, opts)
        return self._documents(hits, qid)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        k, opts, qid = self._prepare(query, kwargs)
        vector, text = legs(self.search_type)
        embedding = await self._need_embeddings().aembed_query(query) if vector else None
        hits = await self._aclient.asearch(self.collection, embedding, query if text else None,
                                           k, opts)
        return self._documents(hits, qid)

    # -- feedback -------------------------------------------------------------------------

    @staticmethod
    def _id_and_query(item: Any) -> Tuple[str, Optional[str]]:
        if isinstance(item, Document):
            q = item.metadata.get("qortex") or {}
            node_id = q.get("id", item.id)
            if node_id is None:
                raise ValueError("feedback: a Document without an id (not one this retriever returned)")
            return str(node_id), q.get("query_id")
        return str(item), None

    def _outcomes(self, outcomes: Any, query_id: Optional[str]) -> Tuple[dict[str, str], Optional[str]]:
        return outcomes_of(outcomes, self._id_and_query, query_id)

    def feedback(self, outcomes: Union[Mapping[str, Outcome], Iterable[Tuple[Union[Document, str], Outcome]]],
                 *, query_id: Optional[str] = None) -> list[FeedbackResult]:
        """Tell qortex which results were kept: ``[(doc, "accepted"), (doc2, "rejected")]``
        with the Documents this retriever returned (their search's query id is used, so
        sending the same feedback again changes nothing and changing an outcome applies the
        difference), or ``{id: outcome}`` with an explicit ``query_id`` (without one, every
        call counts again). Later searches multiply the rows' scores by their new weights.
        Returns interoception_update's rows."""
        out, qid = self._outcomes(outcomes, query_id)
        return self._client.feedback(out, qid)

    async def afeedback(self, outcomes: Union[Mapping[str, Outcome], Iterable[Tuple[Union[Document, str], Outcome]]],
                        *, query_id: Optional[str] = None) -> list[FeedbackResult]:
        """:meth:`feedback`, asynchronously."""
        out, qid = self._outcomes(outcomes, query_id)
        return await self._aclient.afeedback(out, qid)
