"""qortex-client: Python over the qortex PostgreSQL extension.

- :class:`QortexClient`: ``hybrid_search`` and ``interoception_update`` over a psycopg 3 or
  asyncpg connection or pool, sync and async.
- :mod:`qortex_client.langchain`: a LangChain ``BaseRetriever`` (extra ``[langchain]``).
- :mod:`qortex_client.llamaindex`: a LlamaIndex ``BaseRetriever`` (extra ``[llamaindex]``).
- :mod:`qortex_client.learning`: qortex-learning's ``Learner`` on the database.
- :mod:`qortex_client.errors`: the exceptions, with SQLSTATE, message, hint and detail.

The core imports no driver and no framework: each is imported where it is used.
"""
from ._client import FeedbackResult, Outcome, QortexClient, SearchHit, query_id_for
from .errors import (
    DataError,
    DuplicateObjectError,
    FeatureNotSupportedError,
    InsufficientPrivilegeError,
    InvalidArgumentError,
    ObjectStateError,
    QortexError,
    UndefinedObjectError,
)

__version__ = "0.1.0"

__all__ = [
    "QortexClient", "SearchHit", "FeedbackResult", "Outcome", "query_id_for",
    "QortexError", "InvalidArgumentError", "DataError", "UndefinedObjectError",
    "DuplicateObjectError", "InsufficientPrivilegeError", "FeatureNotSupportedError",
    "ObjectStateError",
]
