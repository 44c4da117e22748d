"""What the LangChain and LlamaIndex retrievers share: options, query ids, outcomes."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Tuple, Union

from ._client import query_id_for

SEARCH_TYPES = ("hybrid", "vector", "text")


def search_options(options: Optional[Mapping[str, Any]], filter: Optional[Mapping[str, Any]],
                   user_id: Optional[str], fusion: Optional[str]) -> dict[str, Any]:
    """hybrid_search's options: ``options`` with the named ones (where given) over it."""
    opts = dict(options or {})
    if filter is not None:
        opts["filter"] = dict(filter)
    if user_id is not None:
        opts["user_id"] = user_id
    if fusion is not None:
        opts["fusion"] = fusion
    return opts


def legs(search_type: str) -> Tuple[bool, bool]:
    """(vector leg, text leg) of a search type."""
    if search_type not in SEARCH_TYPES:
        raise ValueError(f"search_type must be one of {', '.join(SEARCH_TYPES)}, got {search_type!r}")
    return search_type != "text", search_type != "vector"


def resolve_query_id(explicit: Optional[str], collection: str, text: str,
                     opts: Mapping[str, Any]) -> str:
    return explicit if explicit is not None else query_id_for(collection, text, opts.get("user_id"))


def outcomes_of(outcomes: Union[Mapping[Any, str], Iterable[Tuple[Any, str]]],
                id_and_query: Callable[[Any], Tuple[str, Optional[str]]],
                query_id: Optional[str]) -> Tuple[dict[str, str], Optional[str]]:
    """``{id: outcome}`` and the query id from what a caller passes to ``feedback``: a mapping
    of ids to outcomes, or pairs of (a result or an id, outcome). Results carry the query id
    of the search that returned them; an explicit ``query_id`` wins; results of different
    searches in one call are refused."""
    pairs = outcomes.items() if isinstance(outcomes, Mapping) else outcomes
    out: dict[str, str] = {}
    seen: set[str] = set()
    for item, outcome in pairs:
        node_id, qid = id_and_query(item)
        out[node_id] = outcome
        if qid is not None:
            seen.add(qid)
    if query_id is None and len(seen) > 1:
        raise ValueError("feedback: these results come from different searches "
                         f"({', '.join(sorted(seen))}); send each search's feedback "
                         "separately or pass query_id")
    if query_id is None and seen:
        query_id = seen.pop()
    return out, query_id
