//! The text leg from a `qortex_bm25` index on the collection's table (`bm25am::direct`):
//! the index's exact top-k of heap TIDs, read from Rust, then those rows as the caller
//! sees them (one TID scan: visibility, row-level security, the user scope rechecked);
//! more asked of the index, twice as many each time, while fewer than k are visible.
//!
//! Serves a search when the table has a valid qortex_bm25 index whose first column is the
//! collection's stored tsvector column, and, under a user scope, whose second column is the
//! collection's user column (and the collection has no global-row flag, which the index
//! cannot bound). Otherwise the text leg reads the collection's tables index or GIN.
use super::{rows, Scope};
use crate::bm25am::direct::{self, Direct};
use crate::catalog::{self, Layout};
use crate::errors::error;
use crate::owner::may_read;
use crate::settings;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use qortex_core::hybrid::{rank_leg, LegHit, SearchOptions};
use std::collections::HashMap;

/// The best `k` rows for `lexemes` from the table's qortex_bm25 index, with a line for
/// `qortex.debug_plans`; `None` where no such index may serve this search.
pub fn search(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
    opts: &SearchOptions,
    lexemes: &[String],
    k: usize,
) -> Option<(Vec<LegHit>, String)> {
    if !settings::USE_TEXT_INDEX.get() || lexemes.is_empty() || lexemes.len() > direct::MAX_TERMS {
        return None;
    }
    let found = catalog::bm25_index(t)?;
    let index = found.index;
    let user = match (&opts.user_id, &index.scope_column) {
        (None, _) => None,
        (Some(u), Some((_, ty))) if found.scoped => {
            match canonical(u, *ty)? {
                true => Some(u.as_str()),
                // no row's value reads as this text (the scope compares `user::text`)
                false => {
                    return Some((
                        Vec::new(),
                        format!(
                            "qortex_bm25 index {}: no row of user {u:?} can exist",
                            index.name
                        ),
                    ))
                }
            }
        }
        _ => return None,
    };
    if !may_read(t.source) {
        error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{func}: permission denied for table {}", t.table),
        )
        .raise();
    }
    let mut d = Direct::open(index.oid, lexemes, user);
    let (mut want, mut seen) = (k, 0);
    let mut hits: Vec<LegHit> = Vec::new();
    loop {
        let top = d.top(want);
        let fresh = &top[seen.min(top.len())..];
        let tids: Vec<String> = fresh.iter().map(|(b, o, _)| format!("({b},{o})")).collect();
        let ids: HashMap<String, String> =
            rows::at_tids(client, t, scope, &tids).into_iter().collect();
        hits.extend(tids.iter().zip(fresh).filter_map(|(tid, (_, _, score))| {
            Some(LegHit {
                id: ids.get(tid)?.clone(),
                score: *score,
            })
        }));
        seen = top.len();
        if hits.len() >= k || d.exhausted(want) {
            break;
        }
        want = want.saturating_mul(2);
    }
    d.close();
    let visible = hits.len();
    rank_leg(&mut hits);
    hits.truncate(k);
    let how = format!(
        "qortex_bm25 index {}: best {seen} of the index{}, {visible} of them visible",
        index.name,
        match user {
            Some(_) => format!(
                " within the user ({})",
                index.scope_column.map(|c| c.0).unwrap_or_default()
            ),
            None => String::new(),
        }
    );
    Some((hits, how))
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
