//! `qortex_status()`: what is installed and how much state it holds.
use crate::catalog;
use crate::counters::{self, GlobalEvent};
use crate::errors::internal;
use crate::registry;
use crate::spi::spi_failed;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// Library version of the loaded `qortex.so` (the schema version is `pg_extension.extversion`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const STATUS_SQL: &str = "
SELECT pg_catalog.jsonb_build_object(
    'versions', pg_catalog.jsonb_build_object(
        'qortex', $1::text,
        'qortex_schema', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'qortex'),
        'pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'),
        'postgres', pg_catalog.current_setting('server_version'),
        'postgres_num', pg_catalog.current_setting('server_version_num')::int),
    'extension_schema', (SELECT n.nspname::text
                           FROM pg_catalog.pg_extension e
                           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                          WHERE e.extname = 'qortex'),
    'tables', pg_catalog.jsonb_build_object(
        'learning_arm_states', (SELECT pg_catalog.count(*) FROM qortex.learning_arm_states),
        'interoception_factors', (SELECT pg_catalog.count(*) FROM qortex.interoception_factors),
        'interoception_edge_buffer',
            (SELECT pg_catalog.count(*) FROM qortex.interoception_edge_buffer),
        'interoception_edges', (SELECT pg_catalog.count(*) FROM qortex.interoception_edges),
        'learners', (SELECT pg_catalog.count(*) FROM qortex.learners),
        'collections', (SELECT pg_catalog.count(*) FROM qortex.collections),
        'ingestion_jobs', (SELECT pg_catalog.count(*) FROM qortex.ingestion_jobs),
        'user_memories', (SELECT pg_catalog.count(*) FROM qortex.user_memories),
        'user_memory_history', (SELECT pg_catalog.count(*) FROM qortex.user_memory_history),
        'recall_checks', (SELECT pg_catalog.count(*) FROM qortex.recall_checks)),
    'learners', (SELECT pg_catalog.jsonb_build_object(
                        'stored', pg_catalog.count(DISTINCT learner_name),
                        'arms', pg_catalog.count(*),
                        'pulls', COALESCE(pg_catalog.sum(pulls), 0))
                   FROM qortex.learning_arm_states))";

/// Versions of qortex, pgvector and PostgreSQL, row counts of the state tables, counters.
#[pg_extern(stable, parallel_safe)]
fn qortex_status() -> JsonB {
    let JsonB(mut status) = Spi::connect(|client| {
        client
            .select(STATUS_SQL, Some(1), &[VERSION.into()])?
            .first()
            .get_one::<JsonB>()
    })
    .unwrap_or_else(spi_failed("qortex_status"))
    .unwrap_or_else(|| internal("qortex_status", "the status query returned no row"));
    // Benchmarks refuse a debug build (what `make test` installs).
    status["versions"]["build"] = json!(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    });
    status["counters"] = counters_json();
    status["interoception"] = crate::interoception::summary("qortex_status");
    status["bm25_indexes"] = Spi::connect(|client| crate::bm25am::summary(client, "qortex_status"));
    status["collections"] = Spi::connect(|client| {
        let names = catalog::names(client, "qortex_status");
        Value::Array(
            names
                .iter()
                .map(|n| registry::describe(client, "qortex_status", n))
                .collect(),
        )
    });
    JsonB(status)
}

/// The shared-memory counters, or why there are none.
fn counters_json() -> Value {
    match counters::learner_totals() {
        None => json!({
            "enabled": false,
            "hint": "add qortex to shared_preload_libraries and restart the server to count \
                     selections and observations",
        }),
        Some((totals, overflow, used)) => json!({
            "enabled": true,
            "since": "server start",
            "selections": totals.selections,
            "observations": totals.observations,
            "learners_tracked": used,
            "learner_slots": counters::SLOTS,
            "untracked_selections": overflow.selections,
            "untracked_observations": overflow.observations,
            "searches": counters::global(GlobalEvent::Search),
            "factor_updates": counters::global(GlobalEvent::FactorUpdate),
            "edge_hits": counters::global(GlobalEvent::EdgeHit),
            "promotions": counters::global(GlobalEvent::Promotion),
        }),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    fn status() -> Value {
        Spi::get_one::<pgrx::JsonB>("SELECT qortex_status()")
            .unwrap()
            .unwrap()
            .0
    }

    fn one_text(sql: &str) -> String {
        Spi::get_one::<String>(sql).unwrap().unwrap()
    }

    #[pg_test]
    fn status_reports_the_versions_in_use() {
        let s = status();
        assert_eq!(s["versions"]["qortex"], super::VERSION);
        assert_eq!(
            s["versions"]["qortex_schema"],
            one_text("SELECT extversion FROM pg_extension WHERE extname = 'qortex'")
        );
        assert_eq!(
            s["versions"]["pgvector"],
            one_text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        );
        assert_eq!(s["versions"]["postgres"], one_text("SHOW server_version"));
        assert!(["debug", "release"].contains(&s["versions"]["build"].as_str().unwrap()));
        assert_eq!(
            s["versions"]["postgres_num"].as_i64().unwrap(),
            one_text("SHOW server_version_num").parse::<i64>().unwrap()
        );
        assert_eq!(
            s["extension_schema"],
            one_text(
                "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'qortex'"
            )
        );
    }

    #[pg_test]
    fn status_counts_the_rows_of_each_state_table() {
        let before = status();
        for table in [
            "learning_arm_states",
            "interoception_factors",
            "interoception_edge_buffer",
        ] {
            assert_eq!(before["tables"][table], 0, "{table} starts empty");
        }
        Spi::run(
            "INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id)
                  VALUES ('l', 'default', 'a'), ('l', 'default', 'b'), ('m', 'default', 'a');
             INSERT INTO qortex.interoception_factors (node_id) VALUES ('n1');
             INSERT INTO qortex.interoception_edge_buffer (src_id, tgt_id)
                  VALUES ('n1', 'n2'), ('n1', 'n3');",
        )
        .unwrap();
        let after = status();
        assert_eq!(after["tables"]["learning_arm_states"], 3);
        assert_eq!(after["tables"]["interoception_factors"], 1);
        assert_eq!(after["tables"]["interoception_edge_buffer"], 2);
    }

    #[pg_test]
    fn state_tables_take_the_seed_defaults() {
        Spi::run(
            "INSERT INTO qortex.learning_arm_states (learner_name, context_hash, arm_id)
                  VALUES ('l', 'default', 'a')",
        )
        .unwrap();
        let row = Spi::get_one::<String>(
            "SELECT format('%s/%s/%s/%s/%s', alpha, beta, pulls, total_reward,
                           last_updated IS NOT NULL)
               FROM qortex.learning_arm_states",
        )
        .unwrap()
        .unwrap();
        assert_eq!(row, "1/1/0/0/t");
    }

    #[pg_test]
    fn status_works_with_an_empty_search_path() {
        let schema = one_text(
            "SELECT quote_ident(extnamespace::regnamespace::text)
               FROM pg_extension WHERE extname = 'qortex'",
        );
        Spi::run("SET LOCAL search_path = ''").unwrap();
        let v = Spi::get_one::<pgrx::JsonB>(&format!("SELECT {schema}.qortex_status()"))
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(v["versions"]["qortex"], super::VERSION);
    }
}
