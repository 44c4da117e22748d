"""qortex on a Citus cluster (a coordinator and two workers): its state spread by
qortex_distribute(), every call through the coordinator giving what one node gives."""
import concurrent.futures
import random
import threading

import psycopg
import pytest

from conftest import connect


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def placement(conn, table):
    return conn.execute(
        "SELECT partmethod::text, column_to_column_name(logicalrelid, partkey), colocationid "
        "FROM pg_dist_partition WHERE logicalrelid = %s::regclass", (table,)).fetchone()


def test_distribute_places_each_table_once(cluster):
    cluster.execute("SELECT qortex_observe('l', 'a', reward => 1)")  # a row before
    pick = "SELECT alpha FROM qortex_select_arms('l', ARRAY['a'], seed => 1)"
    assert one(cluster, pick) == 2.0  # read through the heap, in this session
    first = one(cluster, "SELECT qortex_distribute()")
    assert first == {
        "qortex.learners": "distributed by learner_name",
        "qortex.learning_arm_states": "distributed by learner_name",
        "qortex.interoception_factors": "distributed by node_id",
        "qortex.interoception_feedback": "distributed by query_id",
        "qortex.user_memories": "distributed by user_id",
        "qortex.user_memory_history": "distributed by user_id",
        "learning functions": "10 run on the node holding their learner's shard",
        "managed collections": "0 distributed by document (documents by id, chunks by "
                               "document_id)",
        "id sequences": "each worker's own range (its group id << 48)",
    }
    assert one(cluster, "SELECT qortex_distribute()") == first
    # the same session now finds the row in its shard, called alone or inside a transaction
    assert one(cluster, pick) == 2.0
    with cluster.transaction():
        assert one(cluster, pick) == 2.0
    assert placement(cluster, "qortex.learners")[2] == \
        placement(cluster, "qortex.learning_arm_states")[2]
    assert placement(cluster, "qortex.user_memories")[2] == \
        placement(cluster, "qortex.user_memory_history")[2]
    # the row written before moved into a shard; the shell keeps no copy of it
    assert cluster.execute("SELECT alpha, pulls FROM qortex_posteriors('l')").fetchall() \
        == [(2.0, 1)]
    assert one(cluster, "SELECT count(*) FROM ONLY qortex.learning_arm_states") == 1
    cluster.execute("SET citus.enable_manual_changes_to_shards = on")
    assert one(cluster, "SELECT pg_relation_size('qortex.learning_arm_states')") == 0


def test_managed_collections_are_distributed_by_document(cluster, single):
    """A collection made before qortex_distribute moves into shards with its rows; one made
    after is distributed when created; both search, ingest and delete as on one node."""
    def ingest(conn, coll, content, emb):
        return one(conn, """SELECT qortex_ingest(%s, '{"user_id": "u1"}', %s::jsonb)""",
                   coll, f'[{{"content": "{content}", "embedding": {emb}}}]')

    search = """SELECT array_agg(id || ':' || round(score::numeric, 6) ORDER BY score DESC, id)
                  FROM hybrid_search(%s, '[1,0,0]', 'cats purr', 5, %s::jsonb)"""
    for conn in (cluster, single):
        conn.execute("SELECT qortex_create_collection('before', 3)")
        ingest(conn, "before", "cats purr loudly", "[1,0,0]")
        ingest(conn, "before", "dogs bark at cats", "[0.6,0.8,0]")
    am = "SELECT details->'text_leg'->'bm25_index'->>'name' FROM qortex_collections() " \
         "WHERE name = %s"
    # made on one node: its chunks have a qortex_bm25 index
    assert one(cluster, am, "before") == "before_chunks_bm25"
    found = one(cluster, search, "before", "{}")
    first = one(cluster, "SELECT qortex_distribute()")
    assert first["managed collections"].startswith("1 distributed by document")
    cluster.execute("SELECT qortex_create_collection('after', 3)")
    single.execute("SELECT qortex_create_collection('after', 3)")
    for coll in ("before", "after"):
        docs, chunks = placement(cluster, f"qortex.{coll}_documents"), \
            placement(cluster, f"qortex.{coll}_chunks")
        assert (docs[:2], chunks[:2]) == (("h", "id"), ("h", "document_id"))
        assert docs[2] == chunks[2]  # co-located: a document and its chunks share a shard
        assert one(cluster, am, coll) is None  # no qortex_bm25 index: scored on the shards
    assert one(cluster, "SELECT count(*) FROM ONLY qortex.before_chunks") == 2
    assert one(cluster, search, "before", "{}") == found == one(single, search, "before", "{}")
    for conn in (cluster, single):
        for coll in ("before", "after"):
            ingest(conn, coll, "cats again", "[0.9,0.1,0]")
            ingest(conn, coll, "fish swim", "[0,0,1]")
    for coll in ("before", "after"):
        for options in ("{}", '{"user_id": "u1"}', '{"text_mode": "and"}'):
            assert one(cluster, search, coll, options) == one(single, search, coll, options)
        doc = one(cluster, f"SELECT min(id) FROM qortex.{coll}_documents")
        assert one(cluster, "SELECT qortex_delete_document(%s, %s)", coll, doc) == \
            one(single, "SELECT qortex_delete_document(%s, %s)", coll, doc)
        assert one(cluster, f"SELECT count(*) FROM qortex.{coll}_chunks "
                            f"WHERE document_id = %s", doc) == 0
        # the single node's qortex_bm25 index counts the deleted chunks in its statistics
        # until VACUUM and a merge drop them (the shards count live rows)
        single.execute(f"VACUUM qortex.{coll}_chunks")
        single.execute(f"SELECT qortex_bm25_merge('qortex.{coll}_chunks_bm25')")
        assert one(cluster, search, coll, "{}") == one(single, search, coll, "{}")
    # ids come from the coordinator's sequences: unique across shards, as on one node
    ids = "SELECT array_agg(id ORDER BY id) FROM qortex.after_chunks"
    assert one(cluster, ids) == one(single, ids)
    # a document written on a worker takes an id from that worker's range, and calling
    # qortex_distribute again does not restart it
    insert = "INSERT INTO qortex.after_documents (content) VALUES ('w') RETURNING id"
    with connect("worker1", cluster.info.dbname, autocommit=True) as w:
        group = one(w, "SELECT groupid FROM pg_dist_local_group")
        first_id = one(w, insert)
        assert first_id == (group << 48) + 1
        assert one(cluster, "SELECT qortex_distribute()") == first | {
            "managed collections": first["managed collections"].replace("1 ", "2 ", 1)}
        assert one(w, insert) == first_id + 1
    assert one(cluster, "SELECT count(*) FROM qortex.after_documents WHERE id >= %s",
               1 << 48) == 2
    cluster.execute("SELECT qortex_drop_collection('before', drop_data => true)")
    assert one(cluster, "SELECT to_regclass('qortex.before_chunks')") is None


def test_learning_calls_run_on_the_learners_node(cluster):
    cluster.execute("SELECT qortex_distribute()")
    cluster.execute("SET citus.log_remote_commands = on")
    cluster.execute("SET client_min_messages = notice")
    notices = []
    cluster.add_notice_handler(lambda d: notices.append(d.message_primary))
    for call in ["SELECT qortex_observe('l', 'a', reward => 1)",
                 "SELECT * FROM qortex_select_arms('l', ARRAY['a', 'b'], seed => 1)",
                 "SELECT * FROM qortex_posteriors('l')"]:
        notices.clear()
        cluster.execute(call)
        # one command: the call itself, sent to the worker holding learner 'l'
        assert len(notices) == 1 and "public.qortex_" in notices[0], notices


def test_distribute_on_a_worker_or_without_citus_is_refused(cluster, single):
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="not created"):
        single.execute("SELECT qortex_distribute()")
    name = cluster.info.dbname
    with connect("worker1", name, autocommit=True) as w:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="worker"):
            w.execute("SELECT qortex_distribute()")


def observe_all(conn, history):
    for learner, ctx, arm, r in history:
        conn.execute("SELECT qortex_observe(%s, %s, reward => %s, context => %s::jsonb)",
                     (learner, arm, r, ctx))


def test_select_with_a_seed_picks_what_one_node_picks(cluster, single):
    rng = random.Random(7)
    arms = [f"arm{i}" for i in range(12)]
    history = [(f"l{rng.randrange(4)}", '{"task": "%d"}' % rng.randrange(3),
                rng.choice(arms), rng.random()) for _ in range(300)]
    cluster.execute("SELECT qortex_distribute()")
    for conn in (cluster, single):
        conn.execute("""SELECT qortex_learner_configure('l1', '{"baseline_rate": 0.2,
                        "seed_arms": ["arm3"], "seed_boost": 4}')""")
        observe_all(conn, history)
    q = """SELECT array_agg(row(arm_id, rank, score, explored, alpha, beta, pulls)::text
                            ORDER BY rank)
             FROM qortex_select_arms(%s, %s, %s::jsonb, k => 3, seed => %s)"""
    for learner in ("l0", "l1", "l2", "l3", "new"):
        for ctx in ('{"task": "0"}', '{"task": "2"}', None):
            for seed in (1, 2, 3):
                args = (learner, arms, ctx, seed)
                assert one(cluster, q, *args) == one(single, q, *args), args
    posteriors = "SELECT * FROM qortex_posteriors(%s, %s::jsonb) ORDER BY arm_id"
    for learner in ("l0", "l3"):
        a = [r[:5] for r in cluster.execute(posteriors, (learner, '{"task": "1"}')).fetchall()]
        b = [r[:5] for r in single.execute(posteriors, (learner, '{"task": "1"}')).fetchall()]
        assert a == b


def test_concurrent_observes_lose_nothing(cluster):
    cluster.execute("SELECT qortex_distribute()")
    name = cluster.info.dbname
    per, workers = 50, 8

    def run(i):
        with connect("coordinator", name, autocommit=True) as c:
            for j in range(per):
                arm = "hot" if j % 2 else f"arm{i}"
                c.execute("SELECT qortex_observe('l', %s, reward => 1)", (arm,))
                if j % 10 == 0:
                    c.execute("""SELECT qortex_observe_batch('l',
                                 '[{"arm_id": "hot", "reward": 0}]')""")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(workers)))
    hot = cluster.execute("SELECT alpha, beta, pulls FROM qortex_posteriors('l') "
                          "WHERE arm_id = 'hot'").fetchone()
    batches = workers * (per // 10)
    assert hot == (1 + workers * per // 2, 1 + batches, workers * per // 2 + batches)
    assert one(cluster, "SELECT sum(pulls) FROM qortex_posteriors('l')") \
        == workers * per + batches


def test_a_configuration_change_reaches_every_session(cluster):
    """qortex caches learner configs per session, kept fresh by a trigger Citus does not
    fire for shards: on the cluster the config is read on each call instead."""
    cluster.execute("SELECT qortex_distribute()")
    with connect("coordinator", cluster.info.dbname, autocommit=True) as other:
        pick = "SELECT alpha FROM qortex_select_arms('l', ARRAY['x'], seed => 1)"
        assert one(other, pick) == 1.0
        cluster.execute("""SELECT qortex_learner_configure('l', '{"prior_alpha": 5}')""")
        assert one(other, pick) == 5.0


def test_observes_while_a_shard_moves_lose_nothing(cluster):
    cluster.execute("SELECT qortex_distribute()")
    cluster.execute("SELECT qortex_observe('moving', 'a', reward => 1)")
    shard, source = cluster.execute("""
        SELECT s.shardid, p.nodeport FROM pg_dist_shard s
          JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node p USING (groupid)
         WHERE s.logicalrelid = 'qortex.learners'::regclass
           AND s.shardid = get_shard_id_for_distribution_column('qortex.learners', 'moving')
    """).fetchone()
    target = 28832 if source == 28831 else 28831
    name = cluster.info.dbname
    stop, done = threading.Event(), []

    def observe():
        with connect("coordinator", name, autocommit=True) as c:
            while not stop.is_set():
                c.execute("SELECT qortex_observe('moving', 'a', reward => 1)")
                done.append(1)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        cluster.execute("SELECT citus_move_shard_placement(%s, '127.0.0.1', %s, '127.0.0.1', %s,"
                        " shard_transfer_mode => 'block_writes')", (shard, source, target))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert one(cluster, """SELECT p.nodeport FROM pg_dist_placement pl
                            JOIN pg_dist_node p USING (groupid) WHERE pl.shardid = %s""",
               shard) == target
    assert len(done) > 0
    assert cluster.execute("SELECT alpha, pulls FROM qortex_posteriors('moving')").fetchone() \
        == (2.0 + len(done), 1 + len(done))


def test_hybrid_search_over_a_distributed_table_returns_what_one_node_returns(cluster, single):
    rng = random.Random(3)
    words = "cat dog bird fish mouse horse cow sheep goat duck".split()
    rows = []
    for i in range(200):
        text = " ".join(rng.choice(words) for _ in range(6))
        emb = [rng.gauss(0, 1) for _ in range(8)]
        rows.append((i, text, "[" + ",".join(map(str, emb)) + "]", f'{{"g": {i % 4}}}'))
    for conn in (cluster, single):
        conn.execute("""CREATE TABLE docs (id bigint PRIMARY KEY, body text, emb vector(8),
                        meta jsonb, fts tsvector GENERATED ALWAYS AS
                        (to_tsvector('english', body)) STORED)""")
        if conn is cluster:
            conn.execute("SELECT create_distributed_table('docs', 'id')")
            conn.execute("SELECT qortex_distribute()")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO docs VALUES (%s, %s, %s, %s)", rows)
        conn.execute("CREATE INDEX ON docs USING gin (fts)")
        conn.execute("ANALYZE docs")
        conn.execute("""SELECT qortex_register_collection('docs', 'docs', '{"id": "id",
                        "embedding": "emb", "content": "body", "tsvector": "fts",
                        "metadata": "meta"}')""")
    q = "[" + ",".join(map(str, [rng.gauss(0, 1) for _ in range(8)])) + "]"
    search = """SELECT array_agg(id ORDER BY score DESC, id) FROM hybrid_search('docs',
                %s::vector, %s, 10, %s::jsonb)"""
    for text, options in [("cat dog", "{}"), ("goat", '{"filter": {"g": 1}}'),
                          (None, "{}"), ("horse duck", '{"fusion": "weighted"}')]:
        assert one(cluster, search, q, text, options) == one(single, search, q, text, options)
    d = one(cluster, "SELECT details FROM qortex_collections()")
    assert (d["rows"], d["text_leg"]["bm25_index"]["name"]) == (200, None)
    assert "Citus" in d["text_leg"]["bm25_index"]["reason"]
    cluster.execute("SELECT qortex_drop_collection('docs')")  # the table stays
    assert one(cluster, "SELECT count(*) FROM docs") == 200


def test_every_capability_works_after_distribute(cluster, single):
    """The rest of qortex on the cluster: what stays on the coordinator and what moved."""
    calls = [
        "SELECT memory FROM qortex_remember('u1', 'likes cats')",
        "SELECT memory FROM qortex_recall('u1')",
        # appends past the bound: the history row lands beside the memory's shard
        "SELECT memory_chars, pushed_out_chars, history_seq "
        "FROM qortex_remember_append('u2', repeat('a', 40), '')",
        "SELECT set_config('qortex.memory_max_chars', '64', false)",
        "SELECT (memory_chars, pushed_out_chars, history_seq)::text "
        "FROM qortex_remember_append('u2', repeat('b', 40), '')",
        "SELECT array_agg(seq || ':' || length(memory) ORDER BY seq) "
        "FROM qortex_memory_history('u2')",
        "SELECT set_config('qortex.memory_max_chars', '65536', false)",
        "SELECT qortex_create_collection('kb', 3) IS NOT NULL",
        """SELECT qortex_ingest('kb', '{"user_id": "u1", "content": "cats"}',
              '[{"content": "cats purr loudly", "embedding": [1,0,0]},
                {"content": "dogs bark", "embedding": [0,1,0]}]')""",
        # many documents in one statement: ids drawn as one node draws them (similarities
        # to [1,0,0] all distinct, no new "cats": the searches below have no ties)
        """SELECT qortex_ingest_batch('kb', '[
              {"user_id": "u1", "chunks": [{"content": "birds sing", "embedding": [0.1,0,1]}]},
              {"user_id": "u2", "external_id": "f", "chunks": [
                  {"content": "fish swim", "embedding": [0.3,1,0]},
                  {"content": "kittens nap", "embedding": [0.8,0.6,0]}]}]')""",
        "SELECT array_agg(document_id || ':' || chunk_index || ':' || content "
        "ORDER BY document_id, chunk_index) FROM qortex.kb_chunks",
        "SELECT array_agg(id ORDER BY score DESC) FROM hybrid_search('kb', '[1,0,0]', 'cats', 5)",
        """SELECT array_agg(weight ORDER BY node_id)
             FROM interoception_update('{"1": "accepted", "2": "rejected"}', query_id => 'q')""",
        """SELECT array_agg(id || ':' || round(factor::numeric, 3) ORDER BY score DESC)
             FROM hybrid_search('kb', '[1,0,0]', 'cats', 5, '{"user_id": "u1", "graph": true}')""",
        "SELECT qortex_observe_batch('l', '[{\"arm_id\": \"a\", \"reward\": 1}]')",
        "SELECT alpha FROM qortex_decay_arm('l', 'a', 0.5)",
        "SELECT qortex_decay_learner('l', 0.5, toward => 'zero')",
        "SELECT qortex_metrics('l')->'total_pulls'",
        "SELECT qortex_reset('l')",
        "SELECT (qortex_status()->'learning'->'learners') IS NOT NULL",
        "SELECT count(*) FROM qortex_collections()",
        "SELECT qortex_delete_document('kb', 1)",
        "SELECT qortex_drop_collection('kb', drop_data => true)",
    ]
    cluster.execute("SELECT qortex_distribute()")
    for sql in calls:
        assert one(cluster, sql) == one(single, sql), sql


def test_concurrent_feedback_loses_nothing(cluster, single):
    cluster.execute("SELECT qortex_distribute()")
    name = cluster.info.dbname
    update = """SELECT count(*) FROM interoception_update(
                    '{"n1": "accepted", "n2": "rejected", "n3": "partial"}')"""

    def run(_):
        with connect("coordinator", name, autocommit=True) as c:
            for _ in range(20):
                c.execute(update)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(run, range(4)))
    for _ in range(80):
        single.execute(update)
    weights = "SELECT node_id, weight FROM qortex.interoception_factors ORDER BY node_id"
    assert cluster.execute(weights).fetchall() == \
        pytest.approx(single.execute(weights).fetchall())
