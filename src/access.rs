//! `qortex_grant`: what a role needs to use qortex, granted in one call by the extension's
//! owner, and nothing more. qortex's functions are SECURITY INVOKER over the schema `qortex`
//! (the caller's privileges and row-level security apply).
use crate::catalog::{self, relation_name};
use crate::errors::{require_writable, required};
use crate::spi::run;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// qortex's own state tables a user of the learning, memory and feedback functions writes.
const STATE: [&str; 10] = [
    "learning_arm_states",
    "learners",
    "interoception_factors",
    "interoception_edge_buffer",
    "interoception_edges",
    "interoception_feedback",
    "user_memories",
    "user_memory_history",
    "ingestion_jobs",
    "recall_checks",
];
const SEQUENCES: [&str; 3] = ["document_ids", "chunk_ids", "ingestion_jobs_id_seq"];

/// Grant `role` what calling every qortex function needs: USAGE on schema qortex; reading
/// and writing qortex's state tables; reading the catalog of collections; the sequences
/// ingestion draws ids from; and reading and writing the tables of every managed collection
/// (now, and, by default privileges, those the caller creates later). Registered tables are
/// the application's: grant SELECT on them as for any query. Returns the statements run.
#[pg_extern(volatile)]
fn qortex_grant(role: Option<String>) -> Vec<String> {
    const F: &str = "qortex_grant";
    require_writable(F);
    let role = quote_identifier(required(F, "role", role));
    Spi::connect_mut(|client| {
        let mut tables: Vec<String> = STATE.iter().map(|t| format!("qortex.{t}")).collect();
        for name in catalog::names(client, F) {
            let c = catalog::load(client, F, &name);
            if c.managed {
                tables.extend(relation_name(client, c.source));
                tables.extend(c.documents.and_then(|o| relation_name(client, o)));
            }
        }
        let sequences: Vec<String> = SEQUENCES.iter().map(|s| format!("qortex.{s}")).collect();
        let statements = [
            format!("GRANT USAGE ON SCHEMA qortex TO {role}"),
            format!("GRANT SELECT ON qortex.collections TO {role}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {role}",
                tables.join(", ")
            ),
            format!(
                "GRANT USAGE, SELECT ON SEQUENCE {} TO {role}",
                sequences.join(", ")
            ),
            // managed collections created later by the caller
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA qortex \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
            ),
        ];
        for s in &statements {
            run(client, F, s);
        }
        statements.to_vec()
    })
}
