//! The text leg from a `qortex_bm25` index on the collection's table (`bm25am::direct`):
//! the index's exact top-k of heap TIDs, read from Rust, then those rows as the caller
//! sees them (one TID scan: visibility, row-level security, the user scope rechecked);
//! more asked of the index, twice as many each time, while fewer than k are visible.
//!
//! Serves a search when the table has a valid qortex_bm25 index whose first column is the
//! collection's stored tsvector column (or `to_tsvector(config, content)` without one), and, under a user scope, whose second column is the
//! collection's user column (no global rows) or its `catalog::global_scope` (global rows
//! under the scope '', read as a second scope and merged). Otherwise the text leg reads
//! GIN.
use super::{rows, Scope};
use crate::bm25am::direct::{self, Direct};
use crate::catalog::{self, Layout};
use crate::errors::error;
use crate::pg_compat::may_read;
use crate::settings;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::{rank_leg, LegHit, SearchOptions};
use std::collections::{HashMap, HashSet};

/// The most rows the first read of the index asks for under a filter.
const MAX_FIRST: usize = 10_000;

/// The best `k` rows for `lexemes` from the table's qortex_bm25 index, with a line for
/// `qortex.debug_plans`; `None` where no such index may serve this search.
#[allow(clippy::too_many_arguments)]
pub fn search(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
    opts: &SearchOptions,
    lexemes: &[String],
    k: usize,
    share: f64,
) -> Option<(Vec<LegHit>, String)> {
    if !settings::USE_TEXT_INDEX.get() || lexemes.is_empty() || lexemes.len() > direct::MAX_TERMS {
        return None;
    }
    let found = catalog::bm25_index(t)?;
    let index = &found.index;
    // the scopes searched: none; the user's; the user's and the global rows' ('')
    let scopes: Vec<Option<&str>> = match opts.user_id.as_deref() {
        None => vec![None],
        Some(_) if !found.scoped => return None,
        Some(u) => {
            let mut v = Vec::new();
            // a value no row's user reads as (the scope compares `user::text`) has no rows
            if canonical(u, found.scope_type)? {
                v.push(Some(u));
            }
            if found.global && !u.is_empty() {
                v.push(Some(""));
            }
            v
        }
    };
    if !may_read(t.source) {
        error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{func}: permission denied for table {}", t.table),
        )
        .raise();
    }
    let mut searches: Vec<Direct> = scopes
        .iter()
        .map(|s| Direct::open(index.oid, lexemes, *s))
        .collect();
    // under a filter admitting `share` of the rows, about k / share of them hold k that pass;
    // and one more: whether the row after the k-th ties with it is then known without a
    // second read (asked for exactly k, the last returned always "ties" with the k-th)
    let mut want = ((k as f64 / share.max(f64::MIN_POSITIVE)).ceil() as usize)
        .clamp(k, MAX_FIRST)
        .saturating_add(1);
    let mut seen: HashSet<(u32, u16)> = HashSet::new();
    let mut hits: Vec<LegHit> = Vec::new();
    loop {
        // each scope's best `want`: the union's best k are among them
        let mut fresh = Vec::new();
        let mut lowest = Vec::new();
        for d in searches.iter_mut() {
            let top = d.top(want);
            lowest.push(top.last().map(|h| h.2));
            fresh.extend(top.into_iter().filter(|h| seen.insert((h.0, h.1))));
        }
        let tids: Vec<String> = fresh.iter().map(|(b, o, _)| format!("({b},{o})")).collect();
        let ids: HashMap<String, String> =
            rows::at_tids(client, t, scope, &tids).into_iter().collect();
        hits.extend(tids.iter().zip(&fresh).filter_map(|(tid, (_, _, score))| {
            Some(LegHit {
                id: ids.get(tid)?.clone(),
                score: *score,
            })
        }));
        rank_leg(&mut hits);
        // done when k are visible and no scope's unread rows can beat or tie the k-th of
        // them (they score at most the lowest it returned: a tie with the k-th is read too,
        // so ties are broken by id, as on every path), or every scope is read out
        let kth = hits.get(k.saturating_sub(1)).map(|h| h.score);
        let done = searches.iter().zip(&lowest).all(|(d, low)| {
            d.exhausted(want) || matches!((kth, low), (Some(x), Some(l)) if *l < x)
        });
        if done {
            break;
        }
        want = want.saturating_mul(2);
    }
    for d in searches {
        d.close();
    }
    let seen = seen.len();
    let visible = hits.len();
    hits.truncate(k);
    let within = match scopes.as_slice() {
        [None] => String::new(),
        [] => format!(
            " (no row of user {:?} can exist)",
            opts.user_id.as_deref().unwrap_or_default()
        ),
        [_] => format!(" within the user ({})", scope_name(index)),
        _ => format!(
            " within the user ({}) and the global rows",
            scope_name(index)
        ),
    };
    let filter = match scope.filtered() {
        true => format!(
            " (a filter the planner expects to admit {:.0}%)",
            share * 100.0
        ),
        false => String::new(),
    };
    let how = format!(
        "qortex_bm25 index {}: best {seen} of the index{within}{filter}, {visible} of them visible",
        index.name,
    );
    Some((hits, how))
}

fn scope_name(index: &direct::AmIndex) -> String {
    match (&index.scope_column, &index.scope_expr) {
        (Some((c, _)), _) => c.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    }
}

/// Whether `value` is the text of a value of type `ty` as PostgreSQL writes it, so that
/// `user::text = value` can hold (the scope's comparison) and the index's scope hash of it
/// finds exactly those rows; `None` for a type this path does not read (the other paths do).
fn canonical(value: &str, ty: pg_sys::Oid) -> Option<bool> {
    use pgrx::{PgBuiltInOids as B, PgOid};
    let int = |v: Option<String>| v.as_deref() == Some(value);
    Some(match PgOid::from(ty) {
        PgOid::BuiltIn(B::TEXTOID | B::VARCHAROID) => true,
        PgOid::BuiltIn(B::INT2OID) => int(value.parse::<i16>().ok().map(|v| v.to_string())),
        PgOid::BuiltIn(B::INT4OID) => int(value.parse::<i32>().ok().map(|v| v.to_string())),
        PgOid::BuiltIn(B::INT8OID) => int(value.parse::<i64>().ok().map(|v| v.to_string())),
        PgOid::BuiltIn(B::UUIDOID) => {
            let b = value.as_bytes();
            b.len() == 36
                && b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
                })
        }
        _ => return None,
    })
}
