//! Per-backend caches of qortex state (learner configs, collection layouts), kept exactly
//! as fresh as PostgreSQL's own catalog caches.
//!
//! Each cached value remembers the relations it was read from. Any change to those tables
//! queues a relcache invalidation (qortex's state tables get it from the statement trigger
//! `qortex_state_changed`; DDL on a user's table sends one by itself). PostgreSQL delivers
//! it to this backend at once and to every other backend when the change commits, through
//! `on_invalidation`, which empties the caches. A value read while any invalidation
//! arrived is used once but not kept, so a read racing a commit is never cached stale.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

thread_local! {
    /// Invalidations seen, of any relation.
    static SEEN: Cell<u64> = const { Cell::new(0) };
    /// Invalidations of watched relations (or of everything).
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static WATCHED: RefCell<HashSet<pg_sys::Oid>> = RefCell::new(HashSet::new());
}

unsafe extern "C-unwind" fn on_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    SEEN.set(SEEN.get() + 1);
    if relid == pg_sys::InvalidOid || WATCHED.with(|w| w.borrow().contains(&relid)) {
        GENERATION.set(GENERATION.get() + 1);
    }
}

/// Called from `_PG_init`.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(on_invalidation), pg_sys::Datum::from(0));
    }
}

/// Statement trigger on qortex's state tables whose rows backends cache: tells every
/// backend to drop what it read from the table.
#[pg_trigger]
fn qortex_state_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(trigger.relid()?) };
    Ok(None)
}

/// A map from names to values read from the database, with at most `max` entries.
pub struct Cache<T> {
    generation: u64,
    max: usize,
    map: HashMap<String, T>,
}

impl<T: Clone> Cache<T> {
    pub fn new(max: usize) -> Self {
        Cache {
            generation: 0,
            max,
            map: HashMap::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<T> {
        let g = GENERATION.get();
        if g != self.generation {
            self.map.clear();
            self.generation = g;
        }
        self.map.get(key).cloned()
    }

    /// Read a value with `read`, which also names the relations it depends on, and keep it
    /// unless an invalidation arrived meanwhile.
    pub fn fill(&mut self, key: &str, read: impl FnOnce() -> (T, Vec<pg_sys::Oid>)) -> T {
        let seen = SEEN.get();
        let (value, relations) = read();
        WATCHED.with(|w| w.borrow_mut().extend(relations));
        if SEEN.get() == seen && GENERATION.get() == self.generation {
            if self.map.len() >= self.max {
                self.map.clear();
            }
            self.map.insert(key.to_owned(), value.clone());
        }
        value
    }
}
