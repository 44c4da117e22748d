//! qortex: adaptive retrieval inside PostgreSQL.
//!
//! This crate is the thin pgrx shell: it converts types, runs SPI and raises errors.
//! Everything computable without a server lives in the `qortex-core` crate.
::pgrx::pg_module_magic!(name, version);

// Infrastructure every capability uses: errors, SPI, caches, settings, counters, and the
// server internals that differ between PostgreSQL majors.
mod cache;
mod citus;
mod counters;
mod errors;
mod jsonb;
mod pg_compat;
mod settings;
mod spi;

// The catalog of collections, read by everything that works on a collection.
mod catalog;

// Capabilities, one concern each; none imports another (status reads the registry's and
// interoception's summaries; scale_out has the registry distribute managed collections).
mod access;
mod arm_store;
mod bm25am;
mod ingest;
mod interoception;
mod learning;
mod memories;
mod registry;
mod scale_out;
mod search;
mod status;

// The state tables come first in the generated install script; every function refers to
// them schema-qualified (`qortex.*`), so it works under any search_path.
pgrx::extension_sql_file!(
    "../sql/install/schema-0.1.0.sql",
    name = "schema_0_1_0",
    bootstrap
);
pgrx::extension_sql_file!(
    "../sql/install/schema-0.2.0.sql",
    name = "schema_0_2_0",
    requires = ["schema_0_1_0"]
);
pgrx::extension_sql_file!(
    "../sql/install/learning-result-types.sql",
    name = "learning_result_types",
    requires = ["schema_0_2_0"]
);
pgrx::extension_sql_file!(
    "../sql/install/collections.sql",
    name = "collections",
    requires = ["schema_0_2_0"]
);
pgrx::extension_sql_file!(
    "../sql/install/interoception.sql",
    name = "interoception",
    requires = ["schema_0_2_0"]
);
pgrx::extension_sql_file!(
    "../sql/install/state-triggers.sql",
    name = "state_triggers",
    requires = ["schema_0_2_0", "collections", cache::qortex_state_changed]
);

/// Runs when a backend (or, with `shared_preload_libraries`, the postmaster) loads qortex.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    counters::init();
    cache::init();
    settings::init();
    bm25am::plan::init();
}

/// Required by `cargo pgrx test`; must sit at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'qortex'"]
    }
}
