//! The text leg over SPI: `qortex_core`'s plan (`TextLeg`) decides what to read; this is
//! where it reads from (`TextSource`): the collection's `qortex_bm25` index (`am_leg`) where
//! it has one and the search is an OR of terms; else rows through the GIN index within the
//! search's scope, with statistics kept per backend for a minute.
//!
//! Statistics of the GIN path: N from `pg_class.reltuples`, document frequencies from
//! ANALYZE's most-common-lexeme statistics or, for rarer lexemes, an exact (bounded) count
//! on the GIN index, and the average document length from a sample.
use super::{am_leg, estimate, Scope};
use crate::cache::Cache;
use crate::catalog::Layout;
use crate::errors::internal;
use crate::settings::{self, ForCall};
use crate::spi::{
    plan, spi_failed, traced, Plan, FLOAT8, FLOAT8_ARRAY, INT8, OID, TEXT, TEXT_ARRAY,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{direct_function_call, IntoDatum};
use qortex_core::hybrid::text::{Bm25, Pass, TextLeg, TextSource, TsVector};
use qortex_core::hybrid::{LegHit, SearchOptions, TextMode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a backend trusts its text statistics of a collection.
const STATS_TTL: Duration = Duration::from_secs(60);
/// Documents sampled for the average document length.
const LENGTH_SAMPLE: f64 = 2000.0;

#[derive(Clone)]
struct TextStats {
    n: f64,
    avgdl: f64,
    /// Document frequencies: ANALYZE's most common lexemes, and exact counts made so far.
    df: Rc<RefCell<HashMap<String, f64>>>,
    /// Below this frequency a lexeme is not among the most common ones (0: no statistics).
    mce_floor: f64,
    at: Instant,
}

thread_local! {
    static STATS: RefCell<Cache<TextStats>> = RefCell::new(Cache::new(256));
}

/// The text leg of one search for `query`: its best `pool` rows by BM25, best first.
#[allow(clippy::too_many_arguments)]
pub fn run(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
    query: &str,
    opts: &SearchOptions,
    pool: usize,
    need: usize,
) -> (Vec<LegHit>, String) {
    let lexemes = lexemes(func, t, query);
    let leg = TextLeg {
        mode: opts.text_mode,
        bm25: Bm25 {
            k1: settings::BM25_K1.get(),
            b: settings::BM25_B.get(),
        },
        budget: settings::TEXT_ROW_BUDGET.get() as usize,
        pool,
        need,
        filter_share: filter_share(func, t, scope, opts),
        index_min_share: settings::TEXT_INDEX_MIN_SHARE.get(),
    };
    let mut source = SpiText {
        client,
        func,
        t,
        scope,
        query,
        mode: opts.text_mode,
        stats: None,
        opts,
        trace: Vec::new(),
    };
    // A distributed table's shards count and score its rows: with the GIN index (not a scan
    // of the whole shard) and without JIT, as the statements run here
    let call = ForCall::new();
    let shards = [
        ("enable_seqscan", "off".to_string()),
        ("jit", "off".to_string()),
    ];
    let on_workers = !lexemes.is_empty()
        && crate::citus::is_citus_table(t.source)
        && crate::citus::set_on_workers(client, func, &call, &shards);
    let hits = leg.run(&mut source, &lexemes);
    if on_workers {
        crate::citus::reset_on_workers(client, func, &shards, &[]);
    }
    call.restore();
    let how = match source.trace.is_empty() {
        true => format!("{} lexemes, nothing to read", lexemes.len()),
        false => format!("{} lexemes; {}", lexemes.len(), source.trace.join("; ")),
    };
    (hits, how)
}

/// The query's distinct lexemes under the collection's text search configuration (stop words
/// removed), in the tsvector's order: `to_tsvector` called in this backend, no statement.
fn lexemes(func: &str, t: &Layout, query: &str) -> Vec<String> {
    let config = CString::new(t.text_config.as_str())
        .unwrap_or_else(|_| internal(func, "a text search configuration name holds NUL"));
    // SAFETY: regconfigin and to_tsvector_byid are the SQL functions `::regconfig` and
    // `to_tsvector(regconfig, text)` call, given arguments of their types (a C string; an
    // OID and a text); neither returns NULL. The tsvector they return is a fresh varlena in
    // the current memory context, read only while it lives (before this function returns).
    unsafe {
        let cfg = direct_function_call::<pg_sys::Oid>(
            pg_sys::regconfigin,
            &[config.as_c_str().into_datum()],
        )
        .unwrap_or_else(|| internal(func, "regconfigin returned NULL"));
        let tsv = direct_function_call::<pg_sys::Datum>(
            pg_sys::to_tsvector_byid,
            &[cfg.into_datum(), query.into_datum()],
        )
        .unwrap_or_else(|| internal(func, "to_tsvector returned NULL"));
        let v = pg_sys::pg_detoast_datum_packed(tsv.cast_mut_ptr());
        let bytes = std::slice::from_raw_parts(
            pgrx::varlena::vardata_any(v) as *const u8,
            pgrx::varlena::varsize_any_exhdr(v),
        );
        let tsv = TsVector::new(bytes).unwrap_or_else(|e| internal(func, e));
        tsv.entries()
            .map(|(l, _)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }
}

/// The rows and statistics of one collection, within one search's scope.
struct SpiText<'a, 'c> {
    client: &'a SpiClient<'c>,
    func: &'a str,
    t: &'a Layout,
    scope: &'a Scope<'a>,
    query: &'a str,
    mode: TextMode,
    stats: Option<TextStats>,
    opts: &'a SearchOptions,
    /// What was read, for `qortex.debug_plans`.
    trace: Vec<String>,
}

impl SpiText<'_, '_> {
    fn stats(&mut self) -> &TextStats {
        let (client, func, t) = (self.client, self.func, self.t);
        self.stats.get_or_insert_with(|| {
            STATS.with(|s| {
                let mut cache = s.borrow_mut();
                if let Some(st) = cache.get(&t.name).filter(|st| st.at.elapsed() < STATS_TTL) {
                    return st;
                }
                cache.fill(&t.name, || (read_stats(client, func, t), vec![t.source]))
            })
        })
    }

    /// The query parsed as the text mode says (`and`: plainto_tsquery, `websearch`:
    /// websearch_to_tsquery); `None` if it is empty.
    fn parsed(&self) -> Option<String> {
        let f = match self.mode {
            TextMode::And => "plainto_tsquery",
            TextMode::Websearch => "websearch_to_tsquery",
            TextMode::Or => return None,
        };
        let p = plan(
            self.client,
            &format!("SELECT pg_catalog.{f}($1::regconfig, $2)::text"),
            &[TEXT, TEXT],
            false,
        );
        p.select(
            self.client,
            Some(1),
            &[self.t.text_config.as_str().into(), self.query.into()],
        )
        .unwrap_or_else(spi_failed(self.func))
        .next()
        .and_then(|r| r.get::<String>(1).ok().flatten())
        .filter(|q| !q.is_empty())
    }
}

impl<'c> TextSource for SpiText<'_, 'c> {
    fn corpus(&mut self) -> (f64, f64) {
        let st = self.stats();
        (st.n, st.avgdl)
    }

    fn doc_freqs(&mut self, lexemes: &[String]) -> Vec<f64> {
        let st = self.stats().clone();
        doc_freqs(self.client, self.func, self.t, &st, lexemes)
    }

    fn matches(&mut self, pass: &Pass, limit: usize, visit: &mut dyn FnMut(String, &[u8])) {
        let tsquery = match pass {
            Pass::AnyOf(terms) => tsquery_any(terms),
            Pass::Parsed => match self.parsed() {
                Some(q) => q,
                None => return,
            },
        };
        let t = self.t;
        let sql = format!(
            "SELECT {id}::text, {tsv} FROM {table} WHERE {tsv} @@ $1::tsquery{scope} LIMIT $2",
            id = t.id,
            tsv = t.tsv,
            table = t.table,
            scope = self.scope.sql
        );
        let p = plan(self.client, &sql, &Scope::types(TEXT, INT8), false);
        let args = self
            .scope
            .args(tsquery.as_str().into(), (limit as i64).into());
        let mut rows = 0;
        let settings = no_full_scans(t);
        for_each_tsvector(self.client, self.func, &p, &args, &mut |id, bytes| {
            if let Some(id) = id {
                rows += 1;
                visit(id, bytes)
            }
        });
        settings.restore();
        self.trace.push(format!(
            "{} pass: {rows} rows (at most {limit})",
            read(pass)
        ));
    }

    fn ranked(
        &mut self,
        pass: &Pass,
        terms: &[(String, f64)],
        bm25: &Bm25,
        avgdl: f64,
        k: usize,
    ) -> Option<Vec<LegHit>> {
        if !crate::citus::is_citus_table(self.t.source) {
            return None;
        }
        let tsquery = match pass {
            Pass::AnyOf(terms) => tsquery_any(terms),
            Pass::Parsed => match self.parsed() {
                Some(q) => q,
                None => return Some(Vec::new()),
            },
        };
        let t = self.t;
        // ties by id in byte order, as the leg ranks them, so each shard keeps the rows the
        // leg would keep
        let sql = format!(
            "SELECT {id}::text COLLATE \"C\" AS qortex_id,
                    qortex.bm25({tsv}, $7, $8, $9, $10, $11) AS qortex_score
               FROM {table} WHERE {tsv} @@ $1::tsquery{scope}
              ORDER BY qortex_score DESC, qortex_id LIMIT $2",
            id = t.id,
            tsv = t.tsv,
            table = t.table,
            scope = self.scope.sql
        );
        let mut types = Scope::types(TEXT, INT8).to_vec();
        types.extend([TEXT_ARRAY, FLOAT8_ARRAY, FLOAT8, FLOAT8, FLOAT8]);
        let p = plan(self.client, &sql, &types, false);
        let (lexemes, idfs): (Vec<String>, Vec<f64>) = terms.iter().cloned().unzip();
        let mut args = Vec::from(self.scope.args(tsquery.as_str().into(), (k as i64).into()));
        args.extend([
            lexemes.into(),
            idfs.into(),
            avgdl.into(),
            bm25.k1.into(),
            bm25.b.into(),
        ]);
        let settings = no_full_scans(t);
        let hits: Vec<LegHit> = p
            .select(self.client, None, &args)
            .unwrap_or_else(spi_failed(self.func))
            .filter_map(|r| {
                Some(LegHit {
                    id: r.get::<String>(1).ok().flatten()?,
                    score: r.get::<f64>(2).ok().flatten()?,
                })
            })
            .collect();
        settings.restore();
        self.trace.push(format!(
            "{} scored on the shards: {} rows (at most {k})",
            read(pass),
            hits.len()
        ));
        Some(hits)
    }

    fn indexed(&mut self, lexemes: &[String], k: usize, share: f64) -> Option<Vec<LegHit>> {
        let (hits, how) = am_leg::search(
            self.client,
            self.func,
            self.t,
            self.scope,
            self.opts,
            lexemes,
            k,
            share,
        )?;
        self.trace.push(how);
        Some(hits)
    }
}

/// The share of the collection's rows a filtered search admits, as the planner estimates
/// it; `None` without a filter. A filter with a user scope counts as admitting none, so it
/// reads GIN: the index bounds the user itself, and the estimate counts the user's rows too.
fn filter_share(func: &str, t: &Layout, scope: &Scope<'_>, opts: &SearchOptions) -> Option<f64> {
    if !scope.filtered() {
        return None;
    }
    if opts.user_id.is_some() || crate::catalog::bm25_index(t).is_none() {
        return Some(0.0);
    }
    let e = estimate::scope(func, t, scope);
    Some(if e.table_rows > 0.0 {
        e.rows / e.table_rows
    } else {
        0.0
    })
}

/// How a pass finds its rows, for `qortex.debug_plans`.
fn read(pass: &Pass) -> String {
    match pass {
        Pass::AnyOf(terms) => format!("GIN, {} terms", terms.len()),
        Pass::Parsed => "GIN, parsed query".into(),
    }
}

/// For a statement that finds rows by the tsvector: sequential scans off while it runs, so
/// the GIN index (not a scan of a table whose tsvectors live in TOAST, which the planner
/// does not price) finds the rows. Without a stored tsvector column there is no index and
/// the setting changes nothing.
fn no_full_scans(t: &Layout) -> ForCall {
    let settings = ForCall::new();
    if t.tsv_column.is_some() {
        settings.set("enable_seqscan", "off");
    }
    settings
}

/// Run a query whose rows are `(id text, tsvector)` and visit each row's id and the
/// tsvector's bytes as they lie in memory (no send/receive conversion).
fn for_each_tsvector(
    client: &SpiClient<'_>,
    func: &str,
    p: &Plan,
    args: &[DatumWithOid<'_>],
    visit: &mut dyn FnMut(Option<String>, &[u8]),
) {
    let mut t = p
        .select(client, None, args)
        .unwrap_or_else(spi_failed(func));
    if t.is_empty() {
        return;
    }
    t = t.first();
    loop {
        let id = t.get::<String>(1).ok().flatten();
        if let Ok(Some(d)) = t.get_datum_by_ordinal(2) {
            unsafe {
                let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                let bytes = std::slice::from_raw_parts(
                    pgrx::varlena::vardata_any(v) as *const u8,
                    pgrx::varlena::varsize_any_exhdr(v),
                );
                visit(id, bytes);
            }
        }
        if t.next().is_none() {
            break;
        }
    }
}

fn read_stats(client: &SpiClient<'_>, func: &str, t: &Layout) -> TextStats {
    let rp = plan(
        client,
        "SELECT reltuples::float8 FROM pg_catalog.pg_class WHERE oid = $1",
        &[OID],
        false,
    );
    let mut n = rp
        .select(client, Some(1), &[t.source.into()])
        .unwrap_or_else(spi_failed(func))
        .next()
        .and_then(|r| r.get::<f64>(1).ok().flatten())
        .unwrap_or(-1.0);
    // a Citus table's shell has no rows or statistics of its own: its shards do
    let citus = crate::citus::is_citus_table(t.source);
    if n < 0.0 || citus {
        // Never analyzed (or in shards): count.
        let count = format!("SELECT pg_catalog.count(*)::float8 FROM {}", t.table);
        n = traced(&count, || client.select(&count, Some(1), &[]))
            .unwrap_or_else(spi_failed(func))
            .next()
            .and_then(|r| r.get::<f64>(1).ok().flatten())
            .unwrap_or(0.0);
    }
    let mut df = HashMap::new();
    let mut mce_floor = 0.0;
    if let Some((schema, table, column)) = &t.tsv_column {
        let sp = plan(
            client,
            "SELECT most_common_elems::text::text[], most_common_elem_freqs
               FROM pg_catalog.pg_stats
              WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
            &[TEXT, TEXT, TEXT],
            false,
        );
        if let Some(r) = sp
            .select(
                client,
                Some(1),
                &[
                    schema.as_str().into(),
                    table.as_str().into(),
                    column.as_str().into(),
                ],
            )
            .unwrap_or_else(spi_failed(func))
            .next()
        {
            let elems: Vec<Option<String>> = r.get(1).ok().flatten().unwrap_or_default();
            let freqs: Vec<Option<f32>> = r.get(2).ok().flatten().unwrap_or_default();
            for (e, f) in elems.iter().zip(&freqs) {
                if let (Some(e), Some(f)) = (e, f) {
                    df.insert(e.clone(), (*f as f64 * n).round().max(1.0));
                }
            }
            // After the per-element frequencies: minimum, maximum, null fraction.
            mce_floor = freqs
                .get(elems.len())
                .copied()
                .flatten()
                .map_or(0.0, |f| f as f64 * n);
        }
    }
    let pct = (100.0 * LENGTH_SAMPLE / n.max(1.0)).min(100.0);
    // (Citus samples no distributed table: the first rows its shards return instead)
    let sample = match citus {
        false => "TABLESAMPLE SYSTEM ($1)",
        true => "WHERE $1::float8 IS NOT NULL",
    };
    let lp = plan(
        client,
        &format!(
            "SELECT NULL::text, {} FROM {} {sample} LIMIT $2",
            t.tsv, t.table
        ),
        &[FLOAT8, INT8],
        false,
    );
    let (mut total, mut docs) = (0.0, 0.0);
    for_each_tsvector(
        client,
        func,
        &lp,
        &[pct.into(), (LENGTH_SAMPLE as i64).into()],
        &mut |_, b| {
            if let Ok(v) = TsVector::new(b) {
                total += v.length();
                docs += 1.0;
            }
        },
    );
    TextStats {
        n,
        avgdl: if docs > 0.0 { total / docs } else { 1.0 },
        df: Rc::new(RefCell::new(df)),
        mce_floor,
        at: Instant::now(),
    }
}

/// A tsquery matching any of the lexemes, each quoted as a literal lexeme.
fn tsquery_any(lexemes: &[String]) -> String {
    lexemes
        .iter()
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Document frequencies of lexemes: from the statistics, or counted (bounded by what the
/// statistics say a rarer lexeme can have), all missing ones in one query: on the text
/// index when it is usable (index-only), else on the GIN index.
fn doc_freqs(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    st: &TextStats,
    lexemes: &[String],
) -> Vec<f64> {
    let missing: Vec<String> = {
        let known = st.df.borrow();
        lexemes
            .iter()
            .filter(|l| !known.contains_key(*l))
            .cloned()
            .collect()
    };
    if !missing.is_empty() {
        let cap = if st.mce_floor > 0.0 {
            st.mce_floor.ceil() as i64 + 1
        } else {
            settings::TEXT_ROW_BUDGET.get() as i64 * 4
        };
        let queries: Vec<String> = missing
            .iter()
            .map(|l| tsquery_any(std::slice::from_ref(l)))
            .collect();
        // All in one statement. Citus plans no correlated subquery beside a set-returning
        // function, so there a join of the lexemes with the rows holding them, counted on
        // the shards and summed (uncapped, with the GIN index on the shards, where a
        // bounded count would be one statement per lexeme).
        let citus = crate::citus::is_citus_table(t.source);
        let counted = match citus {
            false => format!(
                "SELECT q.l, (SELECT pg_catalog.count(*)::float8 FROM (SELECT 1 FROM {table}
                               WHERE {tsv} @@ q.tq::tsquery LIMIT $3) s)
                   FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]))
                        AS q(l, tq)",
                table = t.table,
                tsv = t.tsv
            ),
            true => format!(
                "SELECT q.l, pg_catalog.count(*)::float8
                   FROM {table} JOIN ROWS FROM (pg_catalog.unnest($1::text[]),
                                                pg_catalog.unnest($2::text[])) AS q(l, tq)
                     ON {tsv} @@ q.tq::tsquery
                  GROUP BY q.l",
                table = t.table,
                tsv = t.tsv
            ),
        };
        let types = [TEXT_ARRAY, TEXT_ARRAY, INT8];
        let types = if citus { &types[..2] } else { &types[..] };
        let p = plan(client, &counted, types, false);
        let mut df = st.df.borrow_mut();
        let settings = no_full_scans(t);
        for l in &missing {
            df.insert(l.clone(), 0.0); // (a lexeme no row holds has no row of its own)
        }
        let args: [DatumWithOid; 3] = [missing.into(), queries.into(), cap.into()];
        for r in p
            .select(client, None, &args[..types.len()])
            .unwrap_or_else(spi_failed(func))
        {
            if let (Some(l), Some(d)) = (
                r.get::<String>(1).ok().flatten(),
                r.get::<f64>(2).ok().flatten(),
            ) {
                df.insert(l, d);
            }
        }
        settings.restore();
    }
    let df = st.df.borrow();
    lexemes
        .iter()
        .map(|l| df.get(l).copied().unwrap_or(0.0))
        .collect()
}
