"""Many documents at once: qortex_ingest_batch (one call: all of it, or, with a job, each
document all or nothing and the failures recorded) and the procedure qortex_ingest_batches
(committed batches, the job's progress readable from other sessions while it runs)."""
import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import connect


def doc(i, words="cats purr", **extra):
    return {"external_id": f"e{i}", "user_id": f"u{i % 3}", "metadata": {"n": i},
            "chunks": [{"content": f"{words} {i}", "embedding": [1, i % 5, 0],
                        "metadata": {"k": 0}},
                       {"content": f"second part {i}", "embedding": [0, 1, i % 7]}],
            **extra}


@pytest.fixture
def kb(db):
    db.execute("SELECT qortex_create_collection('kb', 3)")
    return db


def job_status(conn, job):
    return conn.execute("SELECT qortex_job_status(%s)", (job,)).fetchone()[0]


def test_a_batch_stores_every_document_with_its_chunks_in_order(kb):
    docs = [doc(i) for i in range(50)]
    ids = kb.execute("SELECT qortex_ingest_batch('kb', %s)", (Jsonb(docs),)).fetchone()[0]
    assert len(ids) == 50 and len(set(ids)) == 50 and all(i is not None for i in ids)
    stored = {r[0]: r[1:] for r in kb.execute(
        "SELECT id, external_id, user_id, metadata FROM qortex.kb_documents")}
    for i, d in zip(ids, docs):
        assert stored[i] == (d["external_id"], d["user_id"], d["metadata"])
    chunks = kb.execute("""SELECT document_id, chunk_index, content, embedding::text, metadata,
                                  user_id FROM qortex.kb_chunks ORDER BY document_id,
                                  chunk_index""").fetchall()
    assert len(chunks) == 100
    # ids in the order given, documents and chunks alike (as qortex_ingest gives them)
    assert ids == sorted(ids)
    assert [c for (c,) in kb.execute("SELECT content FROM qortex.kb_chunks ORDER BY id")] == \
        [c["content"] for d in docs for c in d["chunks"]]
    by_doc = {i: d for i, d in zip(ids, docs)}
    for document_id, k, content, emb, meta, user in chunks:
        d = by_doc[document_id]
        c = d["chunks"][k]
        assert content == c["content"] and user == d["user_id"]
        assert emb == "[" + ",".join(str(x) for x in c["embedding"]) + "]"
        assert meta == {**d["metadata"], **c.get("metadata", {})}
    # searchable at once, in the user's scope
    got = kb.execute("SELECT id FROM hybrid_search('kb', NULL, 'purr', 100, "
                     "'{\"user_id\": \"u1\"}')").fetchall()
    want = {str(cid) for (cid,) in kb.execute(
        "SELECT id FROM qortex.kb_chunks WHERE user_id = 'u1' AND chunk_index = 0")}
    assert {r[0] for r in got} == want and len(want) == 17
    assert kb.execute("SELECT qortex_check_text_index('kb')").fetchone()[0]["ok"]


def test_without_a_job_a_bad_document_refuses_the_whole_call(kb):
    docs = [doc(0), doc(1), {"external_id": "x", "chunks": [{"content": "c",
                                                            "embedding": [1, 0]}]}]
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        kb.execute("SELECT qortex_ingest_batch('kb', %s)", (Jsonb(docs),))
    assert "documents[2].chunks[0].embedding" in e.value.diag.message_primary
    assert kb.execute("SELECT count(*) FROM qortex.kb_documents").fetchone()[0] == 0
    for bad, where in [({"a": 1}, "documents"), ([{"external_id": "y"}], "documents[0].chunks"),
                       ([doc(0, colour=1)], "documents[0].colour")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=where.replace("[", r"\[")):
            kb.execute("SELECT qortex_ingest_batch('kb', %s)", (Jsonb(bad),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 10000"):
        kb.execute("SELECT qortex_ingest_batch('kb', %s)", (Jsonb([None] * 10001),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="documents: must not be NULL"):
        kb.execute("SELECT qortex_ingest_batch('kb', NULL)")
    assert kb.execute("SELECT qortex_ingest_batch('kb', '[]')").fetchone()[0] == []


def test_with_a_job_each_document_is_all_or_nothing_and_failures_are_recorded(kb):
    # a rule of the administrator's the batch cannot know: its statement fails, and each
    # document is then stored on its own
    kb.execute("ALTER TABLE qortex.kb_documents ADD CONSTRAINT no_bad "
               "CHECK (external_id <> 'bad')")
    job = kb.execute("SELECT qortex_job_create('kb', 5)").fetchone()[0]
    docs = [doc(0), doc(1, external_id="bad"), {"external_id": "typo", "chunks": []},
            doc(3), doc(4)]
    warnings = []
    kb.add_notice_handler(lambda d: warnings.append(d.message_primary))
    ids = kb.execute("SELECT qortex_ingest_batch('kb', %s, %s)", (Jsonb(docs), job)).fetchone()[0]
    assert [i is not None for i in ids] == [True, False, False, True, True]
    assert "2 of 5 documents failed" in warnings[-1]
    st = job_status(kb, job)
    assert (st["status"], st["processed_documents"], st["failed_documents"]) == \
        ("partial", 3, 2)
    assert [e["document"] for e in st["errors"]] == ["bad", "typo"]
    assert "no_bad" in st["errors"][0]["error"] and "chunks" in st["errors"][1]["error"]
    # nothing of a failed document: no chunks without their document
    assert kb.execute("SELECT count(*) FROM qortex.kb_documents").fetchone()[0] == 3
    assert kb.execute("SELECT count(DISTINCT document_id), count(*) FROM qortex.kb_chunks"
                      ).fetchone() == (3, 6)


def test_the_procedure_commits_batches_and_its_progress_shows_while_it_runs(kb):
    # the second batch waits on an advisory lock this test holds, so the first one's
    # progress can be read from here while the procedure is still running
    kb.execute("""CREATE FUNCTION wait_after_first() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                      IF (SELECT count(*) FROM qortex.kb_documents) > 40 THEN
                          PERFORM pg_advisory_xact_lock_shared(7);
                      END IF;
                      RETURN NULL;
                  END $$""")
    kb.execute("CREATE TRIGGER wait AFTER INSERT ON qortex.kb_documents "
               "FOR EACH STATEMENT EXECUTE FUNCTION wait_after_first()")
    kb.execute("SELECT pg_advisory_lock(7)")
    docs = [doc(i) for i in range(100)] + [{"external_id": "broken", "chunks": "no"}]
    out, notices = {}, []

    def load():
        with connect(kb.info.dbname, autocommit=True) as c:
            c.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_hint)))
            out["job"] = c.execute("CALL qortex_ingest_batches('kb', %s, NULL, 40)",
                                   (Jsonb(docs),)).fetchone()[0]

    t = threading.Thread(target=load)
    t.start()
    try:
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:
            row = kb.execute("SELECT id FROM qortex.ingestion_jobs").fetchone()
            seen = row and job_status(kb, row[0])
            if seen and seen["processed_documents"] == 40:
                break
            time.sleep(0.05)
        assert seen and seen["processed_documents"] == 40, seen
        assert seen["status"] == "processing" and seen["total_documents"] == 101
        assert seen["progress_percent"] < 50
        assert t.is_alive()
    finally:
        kb.execute("SELECT pg_advisory_unlock(7)")
        t.join(60)
    st = job_status(kb, out["job"])
    assert (st["status"], st["processed_documents"], st["failed_documents"]) == \
        ("partial", 100, 1)
    assert st["errors"][0]["document"] == "broken"
    assert any(f"ingestion job {out['job']}" in m and f"qortex_job_status({out['job']})" in h
               for m, h in notices), notices
    assert kb.execute("SELECT count(*) FROM qortex.kb_chunks").fetchone()[0] == 200


def test_the_procedure_refuses_bad_arguments_and_a_transaction_block(kb):
    with connect(kb.info.dbname, autocommit=True) as c:
        for args, where in [(("kb", None, None, 10), "documents: must not be NULL"),
                            (("kb", Jsonb({}), None, 10), "documents: must be a JSON array"),
                            (("kb", Jsonb([]), None, 0), "batch_size: must be between"),
                            (("nope", Jsonb([]), None, 10), "nope")]:
            with pytest.raises(psycopg.Error) as e:
                c.execute("CALL qortex_ingest_batches(%s, %s, %s, %s)", args)
            assert where in e.value.diag.message_primary, e.value.diag.message_primary
            assert e.value.sqlstate in ("22023", "42704"), e.value.sqlstate
    with connect(kb.info.dbname) as c:  # psycopg's default: a transaction block
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            c.execute("CALL qortex_ingest_batches('kb', %s)", (Jsonb([doc(0)]),))
