//! Citus (scale-out): whether a table's rows live in shards instead of its local heap.
//!
//! On a Citus cluster a distributed or reference table is an empty shell on each node; its
//! rows are in shard tables the Citus planner routes SQL to. So the direct paths that read
//! or write qortex's state table through its heap (`arm_store`) read nothing there, and a
//! statement trigger on the shell (what keeps `cache` fresh) does not fire for writes to
//! shards. Where a table is a Citus table qortex reads and writes it through SQL and does
//! not cache what it read from it.
use crate::cache::Cache;
use crate::errors::error;
use crate::settings::ForCall;
use crate::spi::{plan, spi_failed, OID, TEXT, TEXT_ARRAY};
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;

thread_local! {
    static TABLES: RefCell<Cache<bool>> = RefCell::new(Cache::new(256));
}

/// Whether Citus is loaded in this server (it must be preloaded; its settings exist then).
fn loaded() -> bool {
    unsafe { !pg_sys::GetConfigOption(c"citus.version".as_ptr(), true, false).is_null() }
}

/// Whether `rel` is a Citus table (distributed, reference or Citus-managed local): its rows
/// are not in its own heap. Cheap without Citus; cached per backend otherwise (Citus sends a
/// relcache invalidation of the table when it distributes or undistributes it).
pub fn is_citus_table(rel: pg_sys::Oid) -> bool {
    if !loaded() {
        return false;
    }
    let key = rel.to_u32().to_string();
    TABLES.with(|t| {
        let mut cache = t.borrow_mut();
        if let Some(v) = cache.get(&key) {
            return v;
        }
        cache.fill(&key, || (read(rel), vec![rel]))
    })
}

/// Whether qortex's table `qortex.<name>` is a Citus table.
pub fn is_state_table(name: &std::ffi::CStr) -> bool {
    if !loaded() {
        return false;
    }
    let rel = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"qortex".as_ptr(), true);
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    };
    rel != pg_sys::InvalidOid && is_citus_table(rel)
}

/// Sets `settings` for the call (in `call`) and on the workers, for the statements this call
/// sends to a distributed table's shards, until `reset_on_workers`.
///
/// Citus passes a `SET LOCAL` on to the workers only inside a distributed transaction it
/// coordinates (a transaction block does that for reads; an autocommit read is sent without
/// one), and only when the `SET` runs where it counts as part of a bigger transaction (a
/// function or procedure). So the call's transaction is made a coordinated one (Citus's
/// `UseCoordinatedTransaction`, as its own multi-statement paths do), and each setting is
/// set by `qortex.set_local`, a function: Citus sends it to the workers already in the
/// transaction and starts every later connection of it with it. On the coordinator `call`
/// holds each setting, so its restore undoes what the `SET LOCAL`s did there. Where Citus
/// does not export that function (a version that has renamed it) the settings are the
/// call's only: the shards then search with the workers' own, as
/// docs/reference/scale-out.md says.
pub fn set_on_workers(
    client: &SpiClient<'_>,
    func: &str,
    call: &ForCall,
    settings: &[(&str, String)],
) -> bool {
    for (name, value) in settings {
        call.set(name, value);
    }
    let Some(coordinate) = citus_function(&USE_COORDINATED, c"UseCoordinatedTransaction") else {
        return false;
    };
    call.set("citus.propagate_set_commands", "local");
    call.set("citus.function_opens_transaction_block", "on");
    unsafe { pg_guard_ffi_boundary(|| coordinate()) };
    // (what an earlier statement of this (sub)transaction passed on is in force there still)
    let (names, values): (Vec<&str>, Vec<Option<String>>) = ON_WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        let now = transaction();
        if w.0 != now {
            *w = (now, HashMap::new());
        }
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for (n, v) in settings {
            if w.1.insert(n.to_string(), v.clone()).as_ref() != Some(v) {
                names.push(*n);
                values.push(Some(v.clone()));
            }
        }
        (names, values)
    });
    if !names.is_empty() {
        set_local(client, func, names, values);
    }
    true
}

thread_local! {
    /// What this backend has passed on to the workers, and in which (sub)transaction.
    static ON_WORKERS: RefCell<((i64, u32), HashMap<String, String>)> =
        RefCell::new(((0, 0), HashMap::new()));
}

/// This backend's current (sub)transaction: when its transaction started, and the
/// subtransaction (a rolled-back one takes its workers' `SET LOCAL`s with it).
fn transaction() -> (i64, u32) {
    unsafe {
        (
            pg_sys::GetCurrentTransactionStartTimestamp(),
            pg_sys::GetCurrentSubTransactionId(),
        )
    }
}

/// Sets back on the workers, for the rest of the transaction, what `set_on_workers` set: to
/// each worker's own default (run it before the `ForCall` holding them is restored, which
/// keeps the coordinator's values as they were). Where the call is a whole autocommit
/// statement (Citus's `IsMultiStatementTransaction` is false) its transaction, and with it
/// the workers' `SET LOCAL`s, ends with the statement: then only the settings in `now` are
/// set back, those the call's own later statements must not plan with (each costs a round
/// trip to every worker connection).
pub fn reset_on_workers(
    client: &SpiClient<'_>,
    func: &str,
    settings: &[(&str, String)],
    now: &[&str],
) {
    let alone =
        citus_function(&IS_MULTI_STATEMENT, c"IsMultiStatementTransaction").is_some_and(|f| {
            let f = unsafe { std::mem::transmute::<CitusFn, unsafe extern "C" fn() -> bool>(f) };
            !unsafe { pg_guard_ffi_boundary(|| f()) }
        });
    let names: Vec<&str> = settings
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !alone || now.contains(n))
        .collect();
    if !names.is_empty() {
        ON_WORKERS.with(|w| {
            let mut w = w.borrow_mut();
            for n in &names {
                w.1.remove(*n);
            }
        });
        let defaults = vec![None; names.len()];
        set_local(client, func, names, defaults);
    }
}

fn set_local(client: &SpiClient<'_>, func: &str, names: Vec<&str>, values: Vec<Option<String>>) {
    let p = plan(
        client,
        "SELECT qortex.set_local($1, $2)",
        &[TEXT_ARRAY, TEXT_ARRAY],
        false,
    );
    p.select(client, None, &[names.into(), values.into()])
        .unwrap_or_else(spi_failed(func));
}

type CitusFn = unsafe extern "C" fn();

thread_local! {
    static USE_COORDINATED: OnceCell<Option<CitusFn>> = const { OnceCell::new() };
    static IS_MULTI_STATEMENT: OnceCell<Option<CitusFn>> = const { OnceCell::new() };
}

/// A function of the loaded citus library (`None` where it exports none of that name),
/// looked up once per backend.
fn citus_function(
    cell: &'static std::thread::LocalKey<OnceCell<Option<CitusFn>>>,
    name: &CStr,
) -> Option<CitusFn> {
    cell.with(|f| {
        *f.get_or_init(|| {
            let p = unsafe {
                pg_sys::load_external_function(
                    c"$libdir/citus".as_ptr(),
                    name.as_ptr(),
                    false,
                    std::ptr::null_mut(),
                )
            };
            (!p.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut std::ffi::c_void, CitusFn>(p) })
        })
    })
}

pgrx::extension_sql!(
    r#"
-- Citus: SET LOCAL run inside a function, so Citus passes it on to the workers of the
-- transaction (citus::set_on_workers); a NULL value sets the worker's default.
CREATE FUNCTION qortex.set_local(names TEXT[], settings TEXT[]) RETURNS void
VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(pg_catalog.cardinality(names), 0) LOOP
        IF settings[i] IS NULL THEN
            EXECUTE pg_catalog.format('SET LOCAL %I TO DEFAULT', names[i]);
        ELSE
            EXECUTE pg_catalog.format('SET LOCAL %I = %L', names[i], settings[i]);
        END IF;
    END LOOP;
END
$$;
"#,
    name = "set_local",
    requires = ["schema_0_1_0"]
);

/// Whether the citus extension is created in this database.
fn installed(client: &SpiClient<'_>) -> bool {
    client
        .select(
            "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'",
            Some(1),
            &[],
        )
        .unwrap_or_else(spi_failed("qortex"))
        .next()
        .is_some()
}

fn read(rel: pg_sys::Oid) -> bool {
    Spi::connect(|client| {
        if !installed(client) {
            return false;
        }
        let p = plan(
            client,
            "SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
            &[OID],
            false,
        );
        p.select(client, Some(1), &[rel.into()])
            .unwrap_or_else(spi_failed("qortex"))
            .next()
            .is_some()
    })
}

/// Refuses (0A000) unless this is the coordinator of a Citus cluster: Citus loaded, its
/// extension created in this database, and this node the coordinator.
pub fn require_coordinator(client: &SpiClient<'_>, func: &str) {
    if !loaded() {
        error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func}: Citus is not loaded in this server"),
        )
        .hint("put citus first in shared_preload_libraries, restart, then CREATE EXTENSION citus")
        .raise();
    }
    let coordinator = installed(client).then(|| {
        client
            .select("SELECT pg_catalog.citus_is_coordinator()", Some(1), &[])
            .unwrap_or_else(spi_failed(func))
            .first()
            .get_one::<bool>()
            .ok()
            .flatten()
            == Some(true)
    });
    match coordinator {
        None => error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func}: the citus extension is not created in this database"),
        )
        .hint("CREATE EXTENSION citus, add the workers (citus_add_node), then call this again")
        .raise(),
        Some(false) => error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{func}: this node is a Citus worker"),
        )
        .hint("call it on the coordinator")
        .raise(),
        Some(true) => {}
    }
}

/// Whether qortex's state is spread over the cluster (`qortex_distribute` has run): new
/// managed collections are then distributed too.
pub fn distributed() -> bool {
    is_state_table(c"learners")
}

/// Distribute each `(table, column, co-located with)` in order, unless it is a Citus table
/// already, then move the rows they held into the shards and empty their local copies (in
/// reverse order, so a table is emptied before the one its foreign key references), so
/// nothing stale stays readable. Returns what each table is now: "distributed by <column>".
pub fn distribute(
    client: &mut SpiClient<'_>,
    func: &str,
    tables: &[(&str, &str, Option<&str>)],
) -> Vec<String> {
    let state = plan(
        client,
        "SELECT 'distributed by ' OPERATOR(pg_catalog.||)
                pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
           FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1::regclass",
        &[TEXT],
        false,
    );
    let create = plan(
        client,
        "SELECT pg_catalog.create_distributed_table($1::regclass, $2,
                colocate_with => COALESCE($3, 'default'))",
        &[TEXT, TEXT, TEXT],
        true,
    );
    let mut done = Vec::new();
    let mut moved = Vec::new();
    for (table, column, colocate) in tables {
        let now = state
            .select(client, Some(1), &[(*table).into()])
            .unwrap_or_else(spi_failed(func))
            .next()
            .and_then(|r| r.get::<String>(1).ok().flatten());
        done.push(now.unwrap_or_else(|| {
            client
                .update(
                    &**create,
                    None,
                    &[(*table).into(), (*column).into(), (*colocate).into()],
                )
                .unwrap_or_else(spi_failed(func));
            moved.push(*table);
            format!("distributed by {column}")
        }));
    }
    let empty = plan(
        client,
        "SELECT pg_catalog.truncate_local_data_after_distributing_table($1::regclass)",
        &[TEXT],
        true,
    );
    for table in moved.into_iter().rev() {
        client
            .update(&**empty, None, &[table.into()])
            .unwrap_or_else(spi_failed(func));
    }
    done
}
