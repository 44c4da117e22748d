//! API.md §3: `hybrid_search`, a BM25 text leg and an HNSW vector leg fused in one call.
//!
//! Text leg: the query's lexemes (the collection's text search configuration, stop words
//! removed) are ranked by BM25 over the whole collection. Candidates come from the GIN
//! index, for the rarest query terms whose document frequencies fit a row budget; more
//! common terms still count in every candidate's score but are not enumerated, so the cost
//! does not grow with the rows that merely contain a common word. Statistics are computed
//! on demand and kept per backend for a minute: N from `pg_class.reltuples`, document
//! frequencies from ANALYZE's most-common-lexeme statistics or, for rarer lexemes, an exact
//! (bounded) count on the GIN index, and the average document length from a sample.
//!
//! Vector leg: `ORDER BY embedding <op> $q LIMIT pool` on the HNSW index, with
//! `hnsw.ef_search` raised to the pool and iterative scans when filtered; both settings are
//! restored when the call returns.
use crate::cache::Cache;
use crate::collections;
use crate::counters;
use crate::settings;
use crate::spi_util::{data_error, invalid_param, plan, required, INT8, JSONB, TEXT, TEXT_ARRAY};
use crate::text_index;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::collections::Distance;
use qortex_core::hybrid::{self as hy, Bm25, LegHit, SearchOptions, TextMode};
use qortex_core::ParamError;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a backend trusts its text statistics of a collection.
const STATS_TTL: Duration = Duration::from_secs(60);
/// Documents sampled for the average document length.
const LENGTH_SAMPLE: f64 = 2000.0;

/// How to query one collection: quoted names and expressions from the catalog.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub table: String,
    pub source: pg_sys::Oid,
    /// Managed collections: the documents table (quoted), if it still exists.
    pub managed: bool,
    pub documents: Option<String>,
    pub dims: i32,
    distance: Distance,
    pub id: String,
    pub id_type: String,
    /// pg_type's name of the id column's type.
    pub id_typname: String,
    pub embedding: String,
    content: Option<String>,
    pub tsv: String,
    pub text_index: Option<text_index::IndexInfo>,
    pub text_index_stale: bool,
    /// (schema, table, column) of a stored tsvector column, for ANALYZE's statistics.
    tsv_column: Option<(String, String, String)>,
    /// The text search configuration's name.
    cfg: String,
    metadata: Option<String>,
    user_id: Option<String>,
    is_global: Option<String>,
    document_id: Option<String>,
    pub vector_schema: String,
    vector_type: pg_sys::Oid,
}

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
    static TARGETS: RefCell<Cache<Rc<Target>>> = RefCell::new(Cache::new(256));
    static STATS: RefCell<Cache<TextStats>> = RefCell::new(Cache::new(256));
}

/// How to query collection `name` (cached per backend).
pub fn target(client: &SpiClient<'_>, func: &str, name: &str) -> Rc<Target> {
    TARGETS.with(|t| {
        let mut cache = t.borrow_mut();
        if let Some(t) = cache.get(name) {
            return t;
        }
        cache.fill(name, || read_target(client, func, name))
    })
}

fn read_target(client: &SpiClient<'_>, func: &str, name: &str) -> (Rc<Target>, Vec<pg_sys::Oid>) {
    let c = collections::load(client, func, name);
    let table = collections::source_name(client, func, &c);
    let p = plan(
        client,
        "SELECT a.attnum, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                t.typname::text, n.nspname::text, cl.relname::text,
                'qortex.collections'::regclass::oid
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           JOIN pg_catalog.pg_class cl ON cl.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
        &[crate::spi_util::OID],
        false,
    );
    let mut cols: HashMap<i16, (String, String, String)> = HashMap::new();
    let mut rel = (String::new(), String::new());
    let mut collections_oid = pg_sys::InvalidOid;
    for r in client
        .select(&*p, None, &[c.source.into()])
        .unwrap_or_else(|e| error!("{func}: {e}"))
    {
        let get = |i: usize| r.get::<String>(i).ok().flatten().unwrap_or_default();
        let attnum = r.get::<i16>(1).ok().flatten().unwrap_or_default();
        cols.insert(attnum, (get(2), get(3), get(4)));
        rel = (get(5), get(6));
        collections_oid = r.get::<pg_sys::Oid>(7).ok().flatten().unwrap_or_default();
    }
    let col = |role: &str| -> Option<(String, String, String)> {
        let attnum = c.attnum(role)?;
        Some(cols.get(&attnum).cloned().unwrap_or_else(|| {
            data_error(format!(
                "{func}: collection \"{name}\": the column mapped as {role} was dropped; \
                 register the collection again"
            ))
        }))
    };
    let q = |(n, _, _): &(String, String, String)| quote_identifier(n);
    let (id, embedding) = match (col("id"), col("embedding")) {
        (Some(i), Some(e)) => (i, e),
        _ => data_error(format!(
            "{func}: collection \"{name}\" maps no id or embedding"
        )),
    };
    let content = col("content");
    let text_config = quote_literal(&c.text_config) + "::pg_catalog.regconfig";
    let (tsv, tsv_column) = match col("tsvector") {
        Some(t) => (q(&t), Some((rel.0.clone(), rel.1.clone(), t.0.clone()))),
        None => (
            format!(
                "pg_catalog.to_tsvector({text_config}, {})",
                content.as_ref().map(q).unwrap_or_else(|| "''".into())
            ),
            None,
        ),
    };
    let metadata = col("metadata").map(|m| {
        if m.2 == "json" {
            format!("{}::jsonb", q(&m))
        } else {
            q(&m)
        }
    });
    let user_id = col("user_id").map(|u| {
        if u.2 == "text" {
            q(&u)
        } else {
            format!("{}::text", q(&u))
        }
    });
    let vector_schema = collections::vector_schema(client);
    let vp = plan(
        client,
        "SELECT t.oid FROM pg_catalog.pg_type t
           JOIN pg_catalog.pg_extension e ON e.extnamespace = t.typnamespace
          WHERE e.extname = 'vector' AND t.typname = 'vector'",
        &[],
        false,
    );
    let vector_type = client
        .select(&*vp, Some(1), &[])
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .next()
        .and_then(|r| r.get::<pg_sys::Oid>(1).ok().flatten())
        .unwrap_or_else(|| error!("{func}: the vector type was not found"));
    let t = Target {
        name: name.to_owned(),
        table,
        source: c.source,
        managed: c.managed,
        documents: c
            .documents
            .and_then(|o| collections::relation_name(client, o)),
        dims: c.dimensions,
        distance: c.distance,
        id: q(&id),
        id_type: id.1.clone(),
        id_typname: id.2.clone(),
        embedding: q(&embedding),
        content: content.as_ref().map(q),
        tsv,
        text_index: c
            .text_index
            .as_ref()
            .and_then(|(table, stats)| text_index::IndexInfo::from_stats(table, stats)),
        text_index_stale: c.text_index_stale,
        tsv_column,
        cfg: c.text_config.clone(),
        metadata,
        user_id,
        is_global: col("is_global").map(|g| q(&g)),
        document_id: col("document_id").map(|d| q(&d)),
        vector_schema,
        vector_type,
    };
    let mut relations = vec![c.source, collections_oid];
    relations.extend(c.documents);
    (Rc::new(t), relations)
}

/// The parameters of a statement with the scope of `scope_sql`: two of its own, then the
/// filter ($3, jsonb) and the user id ($4, text).
fn with_scope<'a>(
    first: DatumWithOid<'a>,
    second: DatumWithOid<'a>,
    opts: &'a SearchOptions,
) -> [DatumWithOid<'a>; 4] {
    [
        first,
        second,
        opts.filter.clone().map(JsonB).into(),
        opts.user_id.as_deref().into(),
    ]
}

/// `AND ...` for the filter (`$3`) and user scope (`$4`) of both legs.
fn scope_sql(func: &str, t: &Target, opts: &SearchOptions) -> String {
    let name = &t.name;
    let mut s = String::new();
    if opts.filter.is_some() {
        let m = t.metadata.as_deref().unwrap_or_else(|| {
            invalid_param(
                func,
                ParamError::new(
                    "options.filter",
                    format!("collection \"{name}\" has no metadata column"),
                ),
            )
        });
        s += &format!(" AND {m} OPERATOR(pg_catalog.@>) $3");
    }
    if opts.user_id.is_some() {
        let u = t.user_id.as_deref().unwrap_or_else(|| {
            invalid_param(
                func,
                ParamError::new(
                    "options.user_id",
                    format!("collection \"{name}\" has no user_id column"),
                ),
            )
        });
        s += &match &t.is_global {
            Some(g) => format!(" AND ({u} = $4 OR {g})"),
            None => format!(" AND {u} = $4"),
        };
    }
    s
}

/// Settings changed for one call, restored when it returns (an error restores them by
/// aborting the (sub)transaction).
struct Settings(i32);

impl Settings {
    fn new() -> Self {
        Settings(unsafe { pg_sys::NewGUCNestLevel() })
    }
    fn set(&self, name: &str, value: &str) {
        let (n, v) = (CString::new(name).unwrap(), CString::new(value).unwrap());
        unsafe {
            pg_sys::set_config_option(
                n.as_ptr(),
                v.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }
    fn restore(self) {
        unsafe { pg_sys::AtEOXact_GUC(true, self.0) };
    }
}

fn vector_leg(
    client: &SpiClient<'_>,
    func: &str,
    t: &Target,
    scope: &str,
    embedding: &[u8],
    opts: &SearchOptions,
    pool: usize,
) -> Vec<LegHit> {
    let op = format!("OPERATOR({}.{})", t.vector_schema, t.distance.operator());
    let sql = format!(
        "SELECT {id}::text, {emb} {op} $1 FROM {table} WHERE true{scope}
          ORDER BY {emb} {op} $1 LIMIT $2",
        id = t.id,
        emb = t.embedding,
        table = t.table
    );
    let p = plan(
        client,
        &sql,
        &[pgrx::PgOid::from(t.vector_type), INT8, JSONB, TEXT],
        false,
    );
    let settings = Settings::new();
    let ef = opts.ef_search.unwrap_or(40).max(pool.min(1000) as i32);
    settings.set("hnsw.ef_search", &ef.to_string());
    if !scope.is_empty() || opts.min_similarity.is_some() {
        settings.set("hnsw.iterative_scan", "relaxed_order");
    }
    let args = with_scope(
        unsafe { DatumWithOid::new(embedding, t.vector_type) },
        (pool as i64).into(),
        opts,
    );
    let mut hits: Vec<LegHit> = client
        .select(&*p, None, &args)
        .unwrap_or_else(|e| error!("{func}: vector leg: {e}"))
        .filter_map(|r| {
            let id = r.get::<String>(1).ok().flatten()?;
            let d = r.get::<f64>(2).ok().flatten()?;
            let score = match t.distance {
                Distance::Cosine => 1.0 - d,
                Distance::Ip => -d,
                Distance::L2 => 1.0 / (1.0 + d),
            };
            Some(LegHit { id, score })
        })
        .filter(|h| opts.min_similarity.is_none_or(|m| h.score >= m))
        .collect();
    settings.restore();
    hy::rank_leg(&mut hits);
    hits.truncate(pool);
    hits
}

/// Run a query whose rows are `(id text, tsvector)` and visit each row's id and the
/// tsvector's bytes as they lie in memory (no send/receive conversion).
fn for_each_tsvector<'a>(
    client: &SpiClient<'_>,
    func: &str,
    p: &pgrx::spi::OwnedPreparedStatement,
    args: &[DatumWithOid<'a>],
    mut visit: impl FnMut(Option<String>, &[u8]),
) {
    let mut t = client
        .select(p, None, args)
        .unwrap_or_else(|e| error!("{func}: text leg: {e}"));
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

fn text_stats(client: &SpiClient<'_>, func: &str, t: &Target) -> TextStats {
    STATS.with(|s| {
        let mut cache = s.borrow_mut();
        if let Some(st) = cache.get(&t.name).filter(|st| st.at.elapsed() < STATS_TTL) {
            return st;
        }
        cache.fill(&t.name, || (read_stats(client, func, t), vec![t.source]))
    })
}

fn read_stats(client: &SpiClient<'_>, func: &str, t: &Target) -> TextStats {
    let err = |e: pgrx::spi::SpiError| -> ! { error!("{func}: text statistics: {e}") };
    let rp = plan(
        client,
        "SELECT reltuples::float8 FROM pg_catalog.pg_class WHERE oid = $1",
        &[crate::spi_util::OID],
        false,
    );
    let mut n = client
        .select(&*rp, Some(1), &[t.source.into()])
        .unwrap_or_else(|e| err(e))
        .next()
        .and_then(|r| r.get::<f64>(1).ok().flatten())
        .unwrap_or(-1.0);
    if n < 0.0 {
        // Never analyzed: count.
        n = client
            .select(
                &format!("SELECT pg_catalog.count(*)::float8 FROM {}", t.table),
                Some(1),
                &[],
            )
            .unwrap_or_else(|e| err(e))
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
        if let Some(r) = client
            .select(
                &*sp,
                Some(1),
                &[
                    schema.as_str().into(),
                    table.as_str().into(),
                    column.as_str().into(),
                ],
            )
            .unwrap_or_else(|e| err(e))
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
    let lp = plan(
        client,
        &format!(
            "SELECT NULL::text, {} FROM {} TABLESAMPLE SYSTEM ($1) LIMIT $2",
            t.tsv, t.table
        ),
        &[crate::spi_util::FLOAT8, INT8],
        false,
    );
    let (mut total, mut docs) = (0.0, 0.0);
    for_each_tsvector(
        client,
        func,
        &lp,
        &[pct.into(), (LENGTH_SAMPLE as i64).into()],
        |_, b| {
            if let Ok(v) = hy::TsVector::new(b) {
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
    t: &Target,
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
        let counted = match text_index::usable(t) {
            Some(index) => format!(
                "SELECT q.l, COALESCE((SELECT df::float8 FROM {} WHERE lexeme = q.l AND block = 0),
                                      0)
                   FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]))
                        AS q(l, tq)",
                index.table
            ),
            None => format!(
                "SELECT q.l, (SELECT pg_catalog.count(*)::float8 FROM (SELECT 1 FROM {table}
                                WHERE {tsv} @@ q.tq::tsquery LIMIT $3) s)
                   FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]))
                        AS q(l, tq)",
                table = t.table,
                tsv = t.tsv
            ),
        };
        let p = plan(client, &counted, &[TEXT_ARRAY, TEXT_ARRAY, INT8], false);
        let queries: Vec<String> = missing
            .iter()
            .map(|l| tsquery_any(std::slice::from_ref(l)))
            .collect();
        let mut df = st.df.borrow_mut();
        for r in client
            .select(
                &*p,
                None,
                &[missing.clone().into(), queries.into(), cap.into()],
            )
            .unwrap_or_else(|e| error!("{func}: text leg: {e}"))
        {
            if let (Some(l), Some(d)) = (
                r.get::<String>(1).ok().flatten(),
                r.get::<f64>(2).ok().flatten(),
            ) {
                df.insert(l, d);
            }
        }
    }
    let df = st.df.borrow();
    lexemes
        .iter()
        .map(|l| df.get(l).copied().unwrap_or(0.0))
        .collect()
}

fn text_leg(
    client: &SpiClient<'_>,
    t: &Target,
    scope: &str,
    query: &str,
    opts: &SearchOptions,
    pool: usize,
    need: usize,
) -> Vec<LegHit> {
    let func = "hybrid_search";
    let lp = plan(
        client,
        "SELECT DISTINCT lexeme FROM pg_catalog.unnest(pg_catalog.to_tsvector($1::regconfig, $2))",
        &[TEXT, TEXT],
        false,
    );
    let cfg_name = &t.cfg;
    let lexemes: Vec<String> = client
        .select(&*lp, None, &[cfg_name.as_str().into(), query.into()])
        .unwrap_or_else(|e| error!("{func}: text leg: {e}"))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect();
    if lexemes.is_empty() {
        return Vec::new();
    }
    if scope.is_empty() && opts.text_mode == TextMode::Or {
        if let Some(hits) = text_index::leg(client, func, t, &lexemes, 2 * pool, pool) {
            return hits;
        }
    }
    let st = text_stats(client, func, t);
    let dfs = doc_freqs(client, func, t, &st, &lexemes);
    let mut terms: Vec<(String, f64, f64)> = lexemes
        .into_iter()
        .zip(dfs)
        .map(|(l, d)| {
            let idf = hy::idf(st.n, d);
            (l, d, idf)
        })
        .collect();
    terms.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
    let scored: Vec<(String, f64)> = terms.iter().map(|(l, _, idf)| (l.clone(), *idf)).collect();
    // The rows to score, read in at most two passes, each bounded by the row budget (or the
    // pool, if larger). OR: the rarest terms first, those whose matches fit the budget
    // together; then, only if that left fewer than `need` rows (a filter or user scope, or
    // rare terms matching few rows), the other terms, so k rows come back whenever k match.
    let passes: Vec<String> = match opts.text_mode {
        TextMode::Or => {
            let dfs: Vec<f64> = terms.iter().map(|t| t.1).collect();
            let n = hy::essential_terms(&dfs, settings::TEXT_ROW_BUDGET.get() as f64);
            let names: Vec<String> = terms.iter().map(|t| t.0.clone()).collect();
            let (rare, common) = names.split_at(n);
            [rare, common]
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| tsquery_any(t))
                .collect()
        }
        TextMode::And | TextMode::Websearch => {
            let f = if opts.text_mode == TextMode::And {
                "plainto_tsquery"
            } else {
                "websearch_to_tsquery"
            };
            let p = plan(
                client,
                &format!("SELECT pg_catalog.{f}($1::regconfig, $2)::text"),
                &[TEXT, TEXT],
                false,
            );
            client
                .select(&*p, Some(1), &[cfg_name.as_str().into(), query.into()])
                .unwrap_or_else(|e| error!("{func}: text leg: {e}"))
                .next()
                .and_then(|r| r.get::<String>(1).ok().flatten())
                .filter(|q| !q.is_empty())
                .into_iter()
                .collect()
        }
    };
    let sql = format!(
        "SELECT {id}::text, {tsv} FROM {table} WHERE {tsv} @@ $1::tsquery{scope} LIMIT $2",
        id = t.id,
        tsv = t.tsv,
        table = t.table
    );
    let p = plan(client, &sql, &[TEXT, INT8, JSONB, TEXT], false);
    let bm25 = Bm25 {
        k1: settings::BM25_K1.get(),
        b: settings::BM25_B.get(),
    };
    let budget = (settings::TEXT_ROW_BUDGET.get() as usize).max(pool);
    let mut hits = Vec::new();
    let mut seen = HashSet::new();
    for (i, tsquery) in passes.iter().enumerate() {
        if i > 0 && hits.len() >= need {
            break;
        }
        // rows the first pass found may come again: room for them besides `budget` new ones
        let args = with_scope(
            tsquery.as_str().into(),
            ((budget + hits.len()) as i64).into(),
            opts,
        );
        for_each_tsvector(client, func, &p, &args, |id, b| {
            if let (Some(id), Ok(v)) = (id, hy::TsVector::new(b)) {
                if seen.insert(id.clone()) {
                    hits.push(LegHit {
                        id,
                        score: bm25.score_tsvector(&scored, &v, st.avgdl),
                    });
                }
            }
        });
    }
    hy::rank_leg(&mut hits);
    hits.truncate(pool);
    hits
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<JsonB>,
    f64,
    Option<i32>,
    Option<f64>,
    Option<i32>,
    Option<f64>,
    f64,
);

/// Search a collection with a query embedding and/or query text; best first.
#[allow(clippy::type_complexity)]
#[pg_extern(
    stable,
    sql = r#"
CREATE FUNCTION hybrid_search(
    collection TEXT, query_embedding vector, query_text TEXT, k INT DEFAULT 10,
    options jsonb DEFAULT '{}'
) RETURNS TABLE (
    id TEXT, document_id TEXT, content TEXT, metadata jsonb, score double precision,
    vector_rank INT, vector_similarity double precision, text_rank INT,
    text_score double precision, factor double precision
)
STABLE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn hybrid_search(
    collection: Option<String>,
    query_embedding: Option<&[u8]>,
    query_text: Option<String>,
    k: default!(Option<i32>, 10),
    options: default!(Option<JsonB>, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(document_id, Option<String>),
        name!(content, Option<String>),
        name!(metadata, Option<JsonB>),
        name!(score, f64),
        name!(vector_rank, Option<i32>),
        name!(vector_similarity, Option<f64>),
        name!(text_rank, Option<i32>),
        name!(text_score, Option<f64>),
        name!(factor, f64),
    ),
> {
    const F: &str = "hybrid_search";
    let name = required(F, "collection", collection);
    let query_text = query_text.filter(|q| !q.trim().is_empty());
    if query_embedding.is_none() && query_text.is_none() {
        invalid_param(
            F,
            ParamError::new(
                "query_embedding",
                "and query_text are both NULL (or empty); give at least one",
            ),
        );
    }
    let k = match k {
        Some(k) if k >= 1 => k as usize,
        other => invalid_param(
            F,
            ParamError::new("k", format!("must be >= 1, got {other:?}")),
        ),
    };
    let opts = SearchOptions::parse(options.as_ref().map(|j| &j.0))
        .unwrap_or_else(|e| invalid_param(F, e));
    let pool = opts.pool(k);
    let rows: Vec<Row> = Spi::connect(|client| {
        let t = target(client, F, &name);
        let scope = scope_sql(F, &t, &opts);
        let vector = match query_embedding {
            None => Vec::new(),
            Some(bytes) => {
                let dims = bytes
                    .get(..2)
                    .map(|d| i16::from_ne_bytes([d[0], d[1]]) as i32)
                    .unwrap_or(-1);
                if dims != t.dims {
                    data_error(format!(
                        "{F}: query_embedding has {dims} dimensions; collection \"{name}\" has {}",
                        t.dims
                    ));
                }
                vector_leg(client, F, &t, &scope, bytes, &opts, pool)
            }
        };
        // Rows the text leg must find where it can: those the page needs, unless the
        // vector leg already has them.
        let need = if vector.len() >= k + opts.offset {
            0
        } else {
            k + opts.offset
        };
        let text = match &query_text {
            None => Vec::new(),
            Some(q) => text_leg(client, &t, &scope, q, &opts, pool, need),
        };
        let ids: Vec<String> = vector
            .iter()
            .chain(&text)
            .map(|h| h.id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let factors = if opts.feedback && !ids.is_empty() {
            read_factors(client, F, &ids)
        } else {
            HashMap::new()
        };
        let mut fused = hy::fuse(&vector, &text, &opts, &factors);
        if let Some(weight) = opts.graph {
            let seeds: Vec<String> = fused.iter().take(pool).map(|f| f.id.clone()).collect();
            let mut edges = read_edges(client, F, &seeds);
            let known: HashSet<String> = fused.iter().map(|f| f.id.clone()).collect();
            // A neighbour that is not yet a result joins only if it is a row of this
            // collection that the filter and user scope admit.
            let new: Vec<String> = edges
                .iter()
                .map(|(_, neighbour, _)| neighbour)
                .filter(|n| !known.contains(*n) && hy::castable_id(&t.id_typname, n))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let admitted = rows_in_scope(client, &t, &scope, &opts, &new);
            edges.retain(|(_, n, _)| known.contains(n) || admitted.contains(n));
            let mut factors = factors;
            let unweighed: Vec<String> = admitted
                .into_iter()
                .filter(|n| !factors.contains_key(n))
                .collect();
            if opts.feedback && !unweighed.is_empty() {
                factors.extend(read_factors(client, F, &unweighed));
            }
            hy::graph_boost(&mut fused, &edges, weight, pool, &factors);
        }
        let page: Vec<_> = fused.into_iter().skip(opts.offset).take(k).collect();
        let details = read_rows(
            client,
            F,
            &t,
            &page.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        );
        page.into_iter()
            .map(|f| {
                let (doc, content, meta) = details.get(&f.id).cloned().unwrap_or_default();
                (
                    f.id,
                    doc,
                    content,
                    meta.map(JsonB),
                    f.score,
                    f.vector_rank,
                    f.vector_similarity,
                    f.text_rank,
                    f.text_score,
                    f.factor,
                )
            })
            .collect()
    });
    counters::count_global(counters::GlobalEvent::Search, 1);
    TableIterator::new(rows)
}

/// Each seed's strongest promoted edges, at most `GRAPH_FANOUT` of them: `(seed,
/// neighbour, confidence)`. An edge stored one way round serves both of its ends.
fn read_edges(client: &SpiClient<'_>, func: &str, seeds: &[String]) -> Vec<(String, String, f64)> {
    if seeds.is_empty() {
        return Vec::new();
    }
    let p = plan(
        client,
        "SELECT s.id, e.other, e.confidence
           FROM pg_catalog.unnest($1::text[]) AS s(id)
          CROSS JOIN LATERAL (
                SELECT other, confidence FROM (
                    SELECT tgt_id AS other, confidence FROM qortex.interoception_edges
                     WHERE src_id = s.id AND relation = 'SIMILAR_TO'
                    UNION ALL
                    SELECT src_id, confidence FROM qortex.interoception_edges
                     WHERE tgt_id = s.id AND relation = 'SIMILAR_TO') n
                 ORDER BY confidence DESC, other LIMIT $2) e",
        &[TEXT_ARRAY, INT8],
        false,
    );
    client
        .select(
            &*p,
            None,
            &[seeds.to_vec().into(), (hy::GRAPH_FANOUT as i64).into()],
        )
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok()??,
                r.get::<String>(2).ok()??,
                r.get::<f64>(3).ok()??,
            ))
        })
        .collect()
}

/// Which of `ids` are rows of the collection within the search's filter and user scope.
fn rows_in_scope(
    client: &SpiClient<'_>,
    t: &Target,
    scope: &str,
    opts: &SearchOptions,
    ids: &[String],
) -> HashSet<String> {
    if ids.is_empty() {
        return HashSet::new();
    }
    let sql = format!(
        "SELECT {id}::text FROM {table} WHERE {id} = ANY($1::text[]::{id_type}[]){scope}",
        id = t.id,
        table = t.table,
        id_type = t.id_type
    );
    let p = plan(client, &sql, &[TEXT_ARRAY, INT8, JSONB, TEXT], false);
    // $2 is unused here
    client
        .select(
            &*p,
            None,
            &with_scope(ids.to_vec().into(), 0i64.into(), opts),
        )
        .unwrap_or_else(|e| error!("hybrid_search: graph neighbours: {e}"))
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect()
}

fn read_factors(client: &SpiClient<'_>, func: &str, ids: &[String]) -> HashMap<String, f64> {
    let p = plan(
        client,
        "SELECT node_id, weight FROM qortex.interoception_factors WHERE node_id = ANY($1)",
        &[TEXT_ARRAY],
        false,
    );
    client
        .select(&*p, None, &[ids.to_vec().into()])
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok().flatten()?,
                r.get::<f64>(2).ok().flatten()?,
            ))
        })
        .collect()
}

type Details = (Option<String>, Option<String>, Option<Value>);

fn read_rows(
    client: &SpiClient<'_>,
    func: &str,
    t: &Target,
    ids: &[String],
) -> HashMap<String, Details> {
    if ids.is_empty() {
        return HashMap::new();
    }
    let sql = format!(
        "SELECT {id}::text, {doc}, {content}, {meta} FROM {table}
          WHERE {id} = ANY($1::text[]::{id_type}[])",
        id = t.id,
        doc = t
            .document_id
            .as_ref()
            .map_or("NULL::text".into(), |d| format!("{d}::text")),
        content = t
            .content
            .as_ref()
            .map_or("NULL::text".into(), |c| format!("{c}::text")),
        meta = t.metadata.as_deref().unwrap_or("NULL::jsonb"),
        table = t.table,
        id_type = t.id_type
    );
    let p = plan(client, &sql, &[TEXT_ARRAY], false);
    client
        .select(&*p, None, &[ids.to_vec().into()])
        .unwrap_or_else(|e| error!("{func}: {e}"))
        .filter_map(|r| {
            Some((
                r.get::<String>(1).ok().flatten()?,
                (
                    r.get::<String>(2).ok().flatten(),
                    r.get::<String>(3).ok().flatten(),
                    r.get::<JsonB>(4).ok().flatten().map(|j| j.0),
                ),
            ))
        })
        .collect()
}
