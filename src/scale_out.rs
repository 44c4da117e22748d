//! Scale-out (docs/reference/scale-out.md): `qortex_distribute`, which spreads qortex's
//! state over a Citus cluster. It places the state tables, makes the learning functions run
//! where their learner is, and has the registry distribute the managed collections; how a
//! Citus table is then read and written is `citus`'s.
use crate::citus;
use crate::errors::{error, require_writable};
use crate::registry;
use crate::spi::{plan, run, spi_failed, TEXT, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// How `qortex_distribute` lays out qortex's tables: (table, distribution column, the table
/// it is co-located with), in order. Each is read and written by one distribution value per
/// statement (a learner, a node, a query, a user), so Citus routes every statement to one
/// shard (a search reads the factors of a page's nodes across shards).
///
/// Managed collections' tables are the registry's to distribute (by document). The rest
/// stays on the coordinator, where the calls that read it run: a collection's row names its
/// tables as `regclass`, OIDs of the coordinator's (a worker's copy of a table has another,
/// a table that is not distributed none), so it cannot be a reference table replayed on
/// the workers; ingestion jobs and recall checks go with it; interoception's edges and their buffer are few
/// rows, read by the coordinator's searches.
const LAYOUT: [(&str, &str, Option<&str>); 6] = [
    ("qortex.learners", "learner_name", None),
    (
        "qortex.learning_arm_states",
        "learner_name",
        Some("qortex.learners"),
    ),
    ("qortex.interoception_factors", "node_id", None),
    ("qortex.interoception_feedback", "query_id", None),
    ("qortex.user_memories", "user_id", None),
    (
        "qortex.user_memory_history",
        "user_id",
        Some("qortex.user_memories"),
    ),
];

/// The statement trigger that keeps backends' learner configs fresh (`cache`): Citus
/// distributes no table that has triggers, and would not fire them for writes to shards;
/// qortex does not cache configs read from a Citus table instead.
const CACHE_TRIGGERS: [(&str, &str); 1] = [("learners_changed", "qortex.learners")];

/// The learning functions: each takes the learner first, as `learner`, and reads and writes
/// only that learner's rows, so Citus runs a call on the node that holds the learner's shard.
const LEARNING_FUNCTIONS: [&str; 10] = [
    "qortex_learner_configure",
    "qortex_select_arms",
    "qortex_observe",
    "qortex_observe_batch",
    "qortex_top_arms",
    "qortex_posteriors",
    "qortex_metrics",
    "qortex_decay_arm",
    "qortex_decay_learner",
    "qortex_reset",
];

/// Run on every worker: its copies of the managed id sequences take the range Citus gives a
/// node's sequences (from its group id << 48), so a row written on a worker never takes an
/// id the coordinator gives; idempotent (a range already set is not restarted).
const ID_RANGES: &str = "DO $do$
    DECLARE
        start bigint := (SELECT (groupid::bigint << 48) + 1
                           FROM pg_catalog.pg_dist_local_group);
        seq text;
    BEGIN
        FOREACH seq IN ARRAY ARRAY['document_ids', 'chunk_ids'] LOOP
            IF (SELECT min_value FROM pg_catalog.pg_sequences
                 WHERE schemaname = 'qortex' AND sequencename = seq) <> start THEN
                EXECUTE pg_catalog.format('ALTER SEQUENCE qortex.%I MINVALUE %s MAXVALUE %s
                    START %s RESTART', seq, start, start + (1::bigint << 48) - 1, start);
            END IF;
        END LOOP;
    END $do$";

/// Spread qortex's state over a Citus cluster (run on the coordinator; idempotent): the
/// learning state by learner, co-located with the learners, and the learning functions run
/// where their learner is; feedback factors by node, feedback by query, user memories by
/// user; managed collections' documents and chunks by document. Returns what each is now.
#[pg_extern(volatile)]
fn qortex_distribute() -> JsonB {
    const F: &str = "qortex_distribute";
    require_writable(F);
    let mut done = Map::new();
    Spi::connect_mut(|client| {
        citus::require_coordinator(client, F);
        for (trigger, table) in CACHE_TRIGGERS {
            // (asked first: Citus refuses even DROP TRIGGER IF EXISTS on its tables)
            let p = plan(
                client,
                "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2",
                &[TEXT, TEXT],
                false,
            );
            let present = client
                .select(&**p, Some(1), &[table.into(), trigger.into()])
                .unwrap_or_else(spi_failed(F))
                .next()
                .is_some();
            if present {
                run(
                    client,
                    F,
                    &format!("DROP TRIGGER {} ON {table}", quote_identifier(trigger)),
                );
            }
        }
        let states = citus::distribute(client, F, &LAYOUT);
        for ((table, ..), state) in LAYOUT.iter().zip(states) {
            done.insert((*table).into(), Value::String(state));
        }
        // ids of managed documents and chunks come from the coordinator's sequences; a row
        // written on a worker takes its id from that worker's copy, given its own range
        let failed: Vec<String> = client
            .select(
                "SELECT nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
                        nodeport::text OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) result
                   FROM pg_catalog.run_command_on_workers($1) WHERE NOT success",
                None,
                &[ID_RANGES.into()],
            )
            .unwrap_or_else(spi_failed(F))
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect();
        if !failed.is_empty() {
            error(
                PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
                format!("{F}: setting the workers' id ranges failed"),
            )
            .detail(failed.join("\n"))
            .hint("make every worker reachable, then call qortex_distribute() again")
            .raise();
        }
        done.insert(
            "id sequences".into(),
            Value::String("each worker's own range (its group id << 48)".into()),
        );
        let managed = registry::distribute_managed(client, F);
        done.insert(
            "managed collections".into(),
            Value::String(format!(
                "{managed} distributed by document (documents by id, chunks by document_id)"
            )),
        );
        // the learning functions run where their learner's rows are: each is made a
        // distributed function on its `learner` unless it already is one
        let p = plan(
            client,
            "SELECT p.oid::regprocedure::text, EXISTS (
                        SELECT 1 FROM pg_catalog.pg_dist_object o
                         WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid
                           AND o.distribution_argument_index IS NOT NULL)
               FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
               JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'qortex'
              WHERE p.proname = ANY($1) AND p.proargnames[1] = 'learner'
              ORDER BY 1",
            &[TEXT_ARRAY],
            false,
        );
        let names: Vec<String> = LEARNING_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        let functions: Vec<(String, bool)> = client
            .select(&**p, None, &[names.into()])
            .unwrap_or_else(spi_failed(F))
            .filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<bool>(2).ok()??)))
            .collect();
        let delegate = plan(
            client,
            "SELECT pg_catalog.create_distributed_function($1::regprocedure, 'learner',
                                                           colocate_with => 'qortex.learners')",
            &[TEXT],
            false,
        );
        for (f, _) in functions.iter().filter(|(_, delegated)| !delegated) {
            client
                .update(&**delegate, None, &[f.as_str().into()])
                .unwrap_or_else(spi_failed(F));
        }
        done.insert(
            "learning functions".into(),
            Value::String(format!(
                "{} run on the node holding their learner's shard",
                functions.len()
            )),
        );
    });
    JsonB(Value::Object(done))
}
