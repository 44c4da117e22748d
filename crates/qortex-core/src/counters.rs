//! Lock-free event counters keyed by name, laid out for a fixed block of shared memory.
//!
//! The table is a fixed array of slots found by open addressing on a 64-bit key (never 0,
//! which marks a free slot). A key claims a slot with one compare-and-swap and is never
//! removed, so readers and writers need no lock. When every slot on a key's probe path is
//! taken, its events go to the `overflow` slot, so totals stay exact even then.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How many distinct keys the table holds before it counts into `overflow`.
pub const SLOTS: usize = 4096;
const MAX_PROBE: usize = 64;

/// The events counted per key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Event {
    #[default]
    Selection,
    Observation,
}

#[derive(Debug, Default)]
#[repr(C)]
pub struct Slot {
    key: AtomicU64,
    selections: AtomicU64,
    observations: AtomicU64,
}

impl Slot {
    fn add(&self, event: Event, n: u64) {
        match event {
            Event::Selection => self.selections.fetch_add(n, Relaxed),
            Event::Observation => self.observations.fetch_add(n, Relaxed),
        };
    }

    fn read(&self) -> Counts {
        Counts {
            selections: self.selections.load(Relaxed),
            observations: self.observations.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub selections: u64,
    pub observations: u64,
}

#[repr(C)]
pub struct CounterTable {
    slots: [Slot; SLOTS],
    overflow: Slot,
}

impl Default for CounterTable {
    fn default() -> Self {
        CounterTable {
            slots: std::array::from_fn(|_| Slot::default()),
            overflow: Slot::default(),
        }
    }
}

/// The 64-bit key of a learner in a database: FNV-1a over both, never 0.
pub fn key(database: u32, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in database.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

impl CounterTable {
    fn find(&self, key: u64, claim: bool) -> Option<&Slot> {
        let start = (key % SLOTS as u64) as usize;
        for i in 0..MAX_PROBE {
            let slot = &self.slots[(start + i) % SLOTS];
            match slot.key.load(Relaxed) {
                k if k == key => return Some(slot),
                0 if claim => match slot.key.compare_exchange(0, key, Relaxed, Relaxed) {
                    Ok(_) => return Some(slot),
                    Err(k) if k == key => return Some(slot),
                    Err(_) => continue,
                },
                0 => return None,
                _ => continue,
            }
        }
        None
    }

    /// Count `n` events for `key`.
    pub fn add(&self, key: u64, event: Event, n: u64) {
        self.find(key, true).unwrap_or(&self.overflow).add(event, n);
    }

    /// The counts of `key` (zero if it never counted anything, or if it overflowed).
    pub fn get(&self, key: u64) -> Counts {
        self.find(key, false).map(Slot::read).unwrap_or_default()
    }

    /// Counts that found no slot, and how many slots are taken.
    pub fn overflow(&self) -> (Counts, usize) {
        let used = self
            .slots
            .iter()
            .filter(|s| s.key.load(Relaxed) != 0)
            .count();
        (self.overflow.read(), used)
    }

    /// The sum over every key, overflow included.
    pub fn totals(&self) -> Counts {
        self.slots
            .iter()
            .chain(std::iter::once(&self.overflow))
            .map(Slot::read)
            .fold(Counts::default(), |a, c| Counts {
                selections: a.selections + c.selections,
                observations: a.observations + c.observations,
            })
    }
}

/// Events counted once for the whole server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalEvent {
    Search = 0,
    FactorUpdate = 1,
    Promotion = 2,
    EdgeHit = 3,
}

#[derive(Debug, Default)]
#[repr(C)]
pub struct GlobalCounters([AtomicU64; 4]);

impl GlobalCounters {
    pub fn add(&self, e: GlobalEvent, n: u64) {
        self.0[e as usize].fetch_add(n, Relaxed);
    }
    pub fn get(&self, e: GlobalEvent) -> u64 {
        self.0[e as usize].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_database() {
        let t = CounterTable::default();
        let (a, b, a2) = (key(1, "a"), key(1, "b"), key(2, "a"));
        assert!(a != b && a != a2);
        t.add(a, Event::Selection, 1);
        t.add(a, Event::Selection, 2);
        t.add(a, Event::Observation, 5);
        t.add(b, Event::Observation, 7);
        assert_eq!(
            t.get(a),
            Counts {
                selections: 3,
                observations: 5
            }
        );
        assert_eq!(
            t.get(b),
            Counts {
                selections: 0,
                observations: 7
            }
        );
        assert_eq!(t.get(a2), Counts::default());
        assert_eq!(
            t.totals(),
            Counts {
                selections: 3,
                observations: 12
            }
        );
    }

    #[test]
    fn colliding_keys_probe_and_a_full_path_overflows_without_losing_totals() {
        let t = CounterTable::default();
        // Keys that share a home slot: multiples of SLOTS (plus one, as 0 is reserved).
        let keys: Vec<u64> = (0..MAX_PROBE as u64 + 3)
            .map(|i| 1 + i * SLOTS as u64)
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            t.add(k, Event::Selection, i as u64 + 1);
        }
        for (i, &k) in keys.iter().take(MAX_PROBE).enumerate() {
            assert_eq!(t.get(k).selections, i as u64 + 1);
        }
        let (overflow, used) = t.overflow();
        assert_eq!(used, MAX_PROBE);
        assert_eq!(
            overflow.selections,
            (MAX_PROBE as u64 + 1..=MAX_PROBE as u64 + 3).sum::<u64>()
        );
        let n = keys.len() as u64;
        assert_eq!(t.totals().selections, n * (n + 1) / 2);
    }

    #[test]
    fn global_counters() {
        let g = GlobalCounters::default();
        g.add(GlobalEvent::Search, 2);
        g.add(GlobalEvent::Promotion, 5);
        assert_eq!(
            (g.get(GlobalEvent::Search), g.get(GlobalEvent::Promotion)),
            (2, 5)
        );
        assert_eq!(g.get(GlobalEvent::FactorUpdate), 0);
    }

    #[test]
    fn concurrent_adds_are_exact() {
        let t = std::sync::Arc::new(CounterTable::default());
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for j in 0..10_000u64 {
                        t.add(key(1, &format!("l{}", j % 16)), Event::Observation, 1);
                        t.add(key(1, "shared"), Event::Selection, i + 1);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(t.get(key(1, "shared")).selections, 10_000 * 36);
        assert_eq!(t.totals().observations, 80_000);
        assert_eq!(t.get(key(1, "l3")).observations, 80_000 / 16);
    }
}
