"""An exact Okapi BM25 in plain Python, to check the qortex_bm25 index against.

Independent of the index: a document's lexemes and term frequencies are read from the table
with `unnest(tsvector)`, a query's lexemes with PostgreSQL's own `to_tsvector`, and N, the
average length and the document frequencies are counted here, over the rows read.

The formula (crates/qortex-core/src/hybrid/text/bm25.rs): k1 = 1.2, b = 0.75,
idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)), and for a document d
score(d) = sum over the query's distinct lexemes t in d of
           idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)),
tf = positions of t in d (1 for a lexeme stored without positions), dl = sum over d's
lexemes of max(1, positions), avgdl = sum dl / N. A row whose tsvector is NULL or empty
has no lexeme: it is not in the corpus (not indexed, counted in no statistic).
"""
import math

K1, B = 1.2, 0.75
REL = 1e-9  # scores must equal the reference's to this relative tolerance


class Corpus:
    """Documents as {id: {lexeme: tf}}."""

    def __init__(self, docs):
        self.docs = {i: d for i, d in docs.items() if d}
        self.n = len(self.docs)
        self.dl = {i: sum(d.values()) for i, d in self.docs.items()}
        self.avgdl = sum(self.dl.values()) / self.n if self.n else 0.0
        self.postings = {}
        for i, d in self.docs.items():
            for lexeme, tf in d.items():
                self.postings.setdefault(lexeme, {})[i] = tf

    def idf(self, lexeme):
        df = len(self.postings.get(lexeme, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, lexemes, k1=K1, b=B, where=None):
        """{id: score} of every document holding at least one of the lexemes (each distinct
        lexeme counts once, whatever its count in the query); `where(id)` restricts the
        rows (a filter above the scan), not the statistics."""
        out = {}
        for t in dict.fromkeys(lexemes):
            postings = self.postings.get(t)
            if not postings:
                continue
            idf = self.idf(t)
            for i, tf in postings.items():
                if where is not None and not where(i):
                    continue
                norm = k1 * (1 - b + b * self.dl[i] / self.avgdl)
                out[i] = out.get(i, 0.0) + idf * tf * (k1 + 1) / (tf + norm)
        return out


def fetch(conn, table, tsv="tsv", id="id"):
    """The corpus as the table holds it now (`tsv` may be an expression of the row)."""
    docs = {}
    for i, lexeme, tf in conn.execute(
            f"SELECT {id}, lexeme, coalesce(array_length(positions, 1), 1) "
            f"FROM {table}, unnest({tsv})"):
        docs.setdefault(i, {})[lexeme] = tf
    return Corpus(docs)


def lexemes(conn, config, text):
    """The distinct lexemes of a query text under a text search configuration."""
    return [r[0] for r in conn.execute(
        "SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))", (config, text))]


def tsvector_lexemes(conn, literal):
    """The lexemes of a tsvector literal, as they are."""
    return [r[0] for r in conn.execute("SELECT lexeme FROM unnest(%s::tsvector)", (literal,))]


def close(a, b):
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def ranked(scores):
    """Ids best first (ties by id)."""
    return sorted(scores, key=lambda i: (-scores[i], i))


def ranking_problems(got, scores, k=None):
    """What is wrong with `got`, [(id, score)] in the order a search returned them, as the
    k best (every row if k is None) of `scores`, {id: reference score} of the rows the
    search may return. Ties are unordered: the scores must be the reference's k best and
    each row's score its reference score, so any order among equal scores passes."""
    problems = []
    ids = [i for i, _ in got]
    want = sorted(scores.values(), reverse=True)
    if k is not None:
        want = want[:k]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        problems.append(f"rows returned twice: {dup[:10]}")
    if len(got) != len(want):
        problems.append(f"{len(got)} rows, want {len(want)}")
    stray = [i for i in ids if i not in scores]
    if stray:
        problems.append(f"rows the query must not return (no query lexeme, or filtered "
                        f"out): {stray[:10]}")
    wrong = [(i, s, scores[i]) for i, s in got if i in scores and not close(s, scores[i])]
    if wrong:
        problems.append(f"scores differ from the reference (id, got, want): {wrong[:5]}")
    for n, ((i, s), (j, t)) in enumerate(zip(got, got[1:])):
        if t > s and not close(s, t):
            problems.append(f"not best first at position {n}: {i} {s} then {j} {t}")
            break
    mine = sorted((s for _, s in got), reverse=True)
    for n, (s, w) in enumerate(zip(mine, want)):
        if not close(s, w):
            problems.append(f"not the k best: score #{n} is {s}, the reference's {w}")
            break
    return problems


def check_ranking(got, scores, k=None, what=""):
    problems = ranking_problems(got, scores, k)
    assert not problems, f"{what} (k={k}):\n  " + "\n  ".join(problems)


def same_ranking(a, b, scores, what=""):
    """Two searches' rows ([(id, score)], e.g. a primary's and a standby's) rank alike:
    both are the reference's best (see ranking_problems, for the same k) and, wherever a
    score is no other row's, the same id sits at the same place."""
    assert len(a) == len(b), (what, a, b)
    for x, y in zip(a, b):
        assert close(x[1], y[1]), (what, x, y)
        if x[0] != y[0]:
            tied = sum(1 for s in scores.values() if close(s, x[1]))
            assert tied > 1, (what, "different rows at a score no other row has", x, y)


def ndcg10(ranked_ids, relevant):
    dcg = sum(1 / math.log2(n + 2) for n, d in enumerate(ranked_ids[:10]) if d in relevant)
    return dcg / sum(1 / math.log2(n + 2) for n in range(min(10, len(relevant))))
