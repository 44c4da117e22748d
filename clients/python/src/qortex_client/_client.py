"""The SQL calls the retrievers make: ``hybrid_search`` and ``interoception_update``."""
from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Iterable, Literal, Mapping, NamedTuple, Optional, Sequence, Union

from . import _driver
from ._driver import Statement

__all__ = ["QortexClient", "SearchHit", "FeedbackResult", "Outcome", "query_id_for"]

Outcome = Literal["accepted", "rejected", "partial"]
Embedding = Union[Sequence[float], str]


class SearchHit(NamedTuple):
    """One row of ``hybrid_search``: why it is there (each leg's rank and score, the feedback
    factor) and what it is."""

    id: str
    document_id: Optional[str]
    content: Optional[str]
    metadata: dict[str, Any]
    score: float
    vector_rank: Optional[int]
    vector_similarity: Optional[float]
    text_rank: Optional[int]
    text_score: Optional[float]
    factor: Optional[float]


class FeedbackResult(NamedTuple):
    """One row of ``interoception_update``: a node's new weight, the change, whether a bound cut it."""

    node_id: str
    weight: float
    delta: float
    clamped: bool


def vector_literal(embedding: Optional[Embedding]) -> Optional[str]:
    """pgvector's text form of an embedding (a list, a numpy array, or a literal already).

    Each value is rounded to float4 first (what ``vector`` stores) and written with 9
    significant digits, which gives that float4 back exactly: the stored vector is the one a
    binary client would send, and formatting costs a third of ``repr`` per value."""
    if embedding is None or isinstance(embedding, str):
        return embedding
    n = len(embedding)
    try:
        values = struct.unpack(f"{n}f", struct.pack(f"{n}f", *embedding))
    except (OverflowError, struct.error) as err:
        raise ValueError(f"embedding: {err}") from None
    text = ("[" + "%.9g," * n)[:-1] % values if n else "["
    if "n" in text:  # nan, inf
        raise ValueError("embedding has a value that is not finite")
    return text + "]"


def query_id_for(collection: str, text: Optional[str], user_id: Optional[str] = None) -> str:
    """The query id a retriever gives a search unless told one: the same for the same question
    in the same collection and user scope, so repeating a question's feedback counts once."""
    key = json.dumps([collection, user_id, text], ensure_ascii=False)
    return "qc-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _ident(schema: Optional[str]) -> str:
    if not schema:
        return ""
    return '"' + schema.replace('"', '""') + '".'


class QortexClient:
    """qortex's search and feedback calls over one connection or pool (psycopg 3 or asyncpg).

    Methods come in pairs: ``search`` / ``asearch``, ``feedback`` / ``afeedback``. The
    synchronous ones need a synchronous psycopg connection or pool; the asynchronous ones
    take any (a synchronous one runs in a worker thread). ``schema`` qualifies qortex's
    functions where the extension is not on the connection's ``search_path`` (pgvector's
    ``vector`` type must still be).
    """

    def __init__(self, connection: Any, *, schema: Optional[str] = None) -> None:
        _driver.kind_of(connection)  # TypeError now rather than at the first call
        self.connection = connection
        self.schema = schema
        s = _ident(schema)
        self._search = Statement(
            "SELECT id, document_id, content, metadata::text, score, vector_rank, "
            "vector_similarity, text_rank, text_score, factor "
            f"FROM {s}hybrid_search(%s::text, %s::text::vector, %s::text, %s::int, "
            "%s::text::jsonb)")
        self._feedback = Statement(
            "SELECT node_id, weight, delta, clamped "
            f"FROM {s}interoception_update(%s::text::jsonb, query_id => %s::text)")

    # -- search ---------------------------------------------------------------------------

    def _search_params(self, collection: str, embedding: Optional[Embedding],
                       text: Optional[str], k: int,
                       options: Optional[Mapping[str, Any]]) -> tuple[Any, ...]:
        return (collection, vector_literal(embedding), text, k,
                json.dumps(dict(options)) if options else "{}")

    @staticmethod
    def _hits(rows: Iterable[Any]) -> list[SearchHit]:
        return [SearchHit(r[0], r[1], r[2], json.loads(r[3]) if r[3] is not None else {},
                          r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows]

    def search(self, collection: str, embedding: Optional[Embedding] = None,
               text: Optional[str] = None, k: int = 10,
               options: Optional[Mapping[str, Any]] = None) -> list[SearchHit]:
        """``hybrid_search(collection, embedding, text, k, options)``'s rows, best first.
        Either query may be None (one leg), not both."""
        rows = _driver.fetch(self.connection, self._search,
                             self._search_params(collection, embedding, text, k, options))
        return self._hits(rows)

    async def asearch(self, collection: str, embedding: Optional[Embedding] = None,
                      text: Optional[str] = None, k: int = 10,
                      options: Optional[Mapping[str, Any]] = None) -> list[SearchHit]:
        """:meth:`search`, asynchronously."""
        rows = await _driver.afetch(self.connection, self._search,
                                    self._search_params(collection, embedding, text, k, options))
        return self._hits(rows)

    # -- feedback -------------------------------------------------------------------------

    def _feedback_params(self, outcomes: Mapping[str, str],
                         query_id: Optional[str]) -> tuple[Any, ...]:
        if not outcomes:
            raise ValueError("feedback: no outcomes given")
        return (json.dumps({str(k): v for k, v in outcomes.items()}), query_id)

    @staticmethod
    def _results(rows: Iterable[Any]) -> list[FeedbackResult]:
        return [FeedbackResult(r[0], r[1], r[2], r[3]) for r in rows]

    def feedback(self, outcomes: Mapping[str, str],
                 query_id: Optional[str] = None) -> list[FeedbackResult]:
        """``interoception_update(outcomes, query_id)``: ``{id: "accepted" | "rejected" |
        "partial"}``. With a query id, feedback counts once per (query, id): sending it again
        changes nothing, changing an outcome applies the difference. Without one every call
        counts."""
        return self._results(_driver.fetch(self.connection, self._feedback,
                                           self._feedback_params(outcomes, query_id)))

    async def afeedback(self, outcomes: Mapping[str, str],
                        query_id: Optional[str] = None) -> list[FeedbackResult]:
        """:meth:`feedback`, asynchronously."""
        return self._results(await _driver.afetch(self.connection, self._feedback,
                                                  self._feedback_params(outcomes, query_id)))
