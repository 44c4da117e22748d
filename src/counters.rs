//! Event counters in shared memory (API.md §5): per-learner selections and observations.
//!
//! Counting must not write to tables (select runs in read-only transactions and on hot
//! standbys), so the counters live in a fixed block of shared memory, which PostgreSQL only
//! grants to libraries in `shared_preload_libraries`. Without that setting nothing is
//! counted and readers get `None`. The counters start at zero when the server starts and
//! are never persisted.
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::shmem::AssertPGRXSharedMemory;
use pgrx::{pg_shmem_init, PgAtomic};
use qortex_core::counters::{key, CounterTable, GlobalCounters};
pub use qortex_core::counters::{Counts, Event};
pub use qortex_core::counters::{GlobalEvent, SLOTS};
use std::sync::atomic::{AtomicBool, Ordering};

static LEARNERS: PgAtomic<AssertPGRXSharedMemory<CounterTable>> =
    unsafe { PgAtomic::new(c"qortex_learner_counters") };
static GLOBAL: PgAtomic<AssertPGRXSharedMemory<GlobalCounters>> =
    unsafe { PgAtomic::new(c"qortex_global_counters") };
/// Set in the postmaster when the block was requested; backends inherit it by fork.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init`: claims the shared memory when loaded at server start.
pub fn init() {
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(LEARNERS = unsafe { AssertPGRXSharedMemory::new(CounterTable::default()) });
        pg_shmem_init!(GLOBAL = unsafe { AssertPGRXSharedMemory::new(GlobalCounters::default()) });
        ENABLED.store(true, Ordering::Relaxed);
    }
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn learner_key(learner: &str) -> u64 {
    key(unsafe { pg_sys::MyDatabaseId }.to_u32(), learner)
}

/// Count `n` events of a learner in the current database (nothing without the preload).
pub fn count(learner: &str, event: Event, n: u64) {
    if enabled() {
        LEARNERS.get().add(learner_key(learner), event, n);
    }
}

/// A learner's counts since the server started; `None` without the preload.
pub fn learner(learner: &str) -> Option<Counts> {
    enabled().then(|| LEARNERS.get().get(learner_key(learner)))
}

/// Totals over every learner of every database, learners that found no slot, slots taken.
pub fn learner_totals() -> Option<(Counts, Counts, usize)> {
    enabled().then(|| {
        let t = LEARNERS.get();
        let (overflow, used) = t.overflow();
        (t.totals(), overflow, used)
    })
}

/// Count `n` server-wide events (nothing without the preload).
pub fn count_global(event: GlobalEvent, n: u64) {
    if enabled() {
        GLOBAL.get().add(event, n);
    }
}

/// A server-wide count since the server started; `None` without the preload.
pub fn global(event: GlobalEvent) -> Option<u64> {
    enabled().then(|| GLOBAL.get().get(event))
}
