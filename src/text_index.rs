//! The impact-ordered text index of a collection: for every lexeme, its rows ordered by
//! their BM25 term weight, stored in blocks of `POSTING_BLOCK` (ids and impacts as arrays),
//! so `hybrid_search` reads the best rows of each query term from one or two index rows
//! instead of reading and scoring every matching row.
//!
//! Built (and rebuilt) by `qortex_refresh_text_index`. A statement trigger on the
//! collection's table marks it stale on any change; a stale index is not used (the text
//! leg falls back to the GIN index, exact and slower) until the next refresh.
use crate::collections::run;
use crate::search::Target;
use crate::settings;
use crate::spi_util::{plan, required, INT4, TEXT, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::Array;
use pgrx::JsonB;
use qortex_core::hybrid::{self as hy, LegHit, PostingBlock, POSTING_BLOCK};
use serde_json::json;

/// The quoted name of a collection's postings table.
pub fn table_name(collection: &str) -> String {
    format!(
        "{}.{}",
        quote_identifier("qortex"),
        quote_identifier(format!("{collection}_postings"))
    )
}

/// The trigger that marks the index stale, on the collection's table.
pub fn trigger_sql(collection: &str, source: &str) -> String {
    format!(
        "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {source}
           FOR EACH STATEMENT EXECUTE FUNCTION qortex.text_index_stale({})",
        trigger_name(collection),
        quote_literal(collection)
    )
}

pub fn trigger_name(collection: &str) -> String {
    quote_identifier(format!("qortex_stale_{collection}"))
}

/// Build the collection's text index from its current rows; returns what was built.
#[pg_extern(volatile)]
fn qortex_refresh_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_refresh_text_index";
    let name = required(F, "collection", collection);
    Spi::connect_mut(|client| {
        let t = crate::search::target(client, F, &name);
        let postings = table_name(&name);
        let (k1, b) = (settings::BM25_K1.get(), settings::BM25_B.get());
        run(client, F, &format!("DROP TABLE IF EXISTS {postings}"));
        // Rows up to 8 kB stay inline and uncompressed: a search reads them as they are.
        run(
            client,
            F,
            &format!(
                "CREATE TABLE {postings} (lexeme TEXT NOT NULL, block INT NOT NULL,
                                          df INT NOT NULL, ids TEXT[] NOT NULL,
                                          impacts REAL[] NOT NULL)
                   WITH (toast_tuple_target = 8160)"
            ),
        );
        // One pass over the table: every row's tsvector and length are computed once, then
        // give both the average length and the impacts that depend on it. Each lexeme's rows
        // go in impact order (ties by id) into blocks; every block carries the lexeme's
        // document frequency.
        let dl = format!(
            "(SELECT pg_catalog.sum(COALESCE(pg_catalog.array_length(l.positions, 1), 1))
                FROM pg_catalog.unnest({}) l)",
            t.tsv
        );
        let (avgdl, documents, rows) = client
            .update(
                &format!(
                    "WITH d AS MATERIALIZED (SELECT {id}::text AS id, {tsv} AS tsv, {dl} AS dl
                                               FROM {table}),
                          a AS (SELECT GREATEST(COALESCE(pg_catalog.avg(dl), 1), 1)::float8 AS avgdl,
                                       pg_catalog.count(*) AS n
                                  FROM d),
                          p AS (SELECT l.lexeme,
                                       (c.n * ($1 + 1) / (c.n + $1 * (1 - $2 + $2 * d.dl / a.avgdl)))
                                           ::real AS impact,
                                       d.id
                                  FROM d, a, pg_catalog.unnest(d.tsv) l,
                                       LATERAL (SELECT COALESCE(pg_catalog.array_length(l.positions, 1),
                                                                1)::float8 AS n) c),
                          r AS (SELECT lexeme, impact, id,
                                       (pg_catalog.row_number() OVER w - 1) / $3 AS block,
                                       pg_catalog.count(*) OVER (PARTITION BY lexeme) AS df
                                  FROM p WINDOW w AS (PARTITION BY lexeme ORDER BY impact DESC, id)),
                          ins AS (
                              INSERT INTO {postings} (lexeme, block, df, ids, impacts)
                              SELECT lexeme, block, pg_catalog.max(df),
                                     pg_catalog.array_agg(id ORDER BY impact DESC, id),
                                     pg_catalog.array_agg(impact ORDER BY impact DESC, id)
                                FROM r GROUP BY lexeme, block
                              RETURNING pg_catalog.cardinality(ids) AS n)
                     SELECT (SELECT avgdl FROM a), (SELECT n FROM a),
                            (SELECT COALESCE(pg_catalog.sum(n), 0)::int8 FROM ins)",
                    id = t.id,
                    tsv = t.tsv,
                    table = t.table,
                ),
                Some(1),
                &[k1.into(), b.into(), (POSTING_BLOCK as i64).into()],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .map(|r| {
                (
                    r.get::<f64>(1).ok().flatten().unwrap_or(1.0),
                    r.get::<i64>(2).ok().flatten().unwrap_or(0),
                    r.get::<i64>(3).ok().flatten().unwrap_or(0),
                )
            })
            .unwrap_or((1.0, 0, 0));
        run(
            client,
            F,
            &format!("CREATE UNIQUE INDEX ON {postings} (lexeme, block)"),
        );
        run(client, F, &format!("ANALYZE {postings}"));
        let stats = json!({"k1": k1, "b": b, "avgdl": avgdl, "documents": documents,
                           "postings": rows, "block": POSTING_BLOCK});
        let exists = client
            .select(
                "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2",
                Some(1),
                &[t.source.into(), format!("qortex_stale_{name}").into()],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .is_some();
        if !exists {
            run(client, F, &trigger_sql(&name, &t.table));
        }
        let p = plan(
            client,
            "UPDATE qortex.collections
                SET text_index = $2::regclass, text_index_stats = $3, text_index_stale = false
              WHERE name = $1",
            &[TEXT, TEXT, crate::spi_util::JSONB],
            true,
        );
        client
            .update(
                &*p,
                None,
                &[
                    name.as_str().into(),
                    postings.as_str().into(),
                    JsonB(stats.clone()).into(),
                ],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"));
        JsonB(stats)
    })
}

/// The text leg from the index, if it is usable for this search: fresh, built with the
/// BM25 parameters in force. Each query term contributes its best `per_term` rows, scored
/// idf × impact with the document frequencies and count of the build; the best `pool` rows
/// come back, best first.
pub fn leg(
    client: &SpiClient<'_>,
    func: &str,
    t: &Target,
    lexemes: &[String],
    per_term: usize,
    pool: usize,
) -> Option<Vec<LegHit>> {
    let index = usable(t)?;
    let sql = format!(
        "SELECT df, block, ids, impacts FROM {}
          WHERE lexeme = ANY($1::text[]) AND block < $2",
        index.table
    );
    let p = plan(client, &sql, &[TEXT_ARRAY, INT4], false);
    let nblocks = per_term.div_ceil(POSTING_BLOCK) as i32;
    let rows = client
        .select(&*p, None, &[lexemes.to_vec().into(), nblocks.into()])
        .unwrap_or_else(|e| error!("{func}: text index: {e}"));
    // The arrays point into the rows SPI returned; the blocks borrow their ids from them.
    let mut read = Vec::new();
    for r in rows {
        if let (Some(df), Some(block), Some(ids), Some(impacts)) = (
            r.get::<i32>(1).ok().flatten(),
            r.get::<i32>(2).ok().flatten(),
            r.get::<Array<&str>>(3).ok().flatten(),
            r.get::<Array<f32>>(4).ok().flatten(),
        ) {
            read.push((df, block, ids, impacts));
        }
    }
    let blocks = read.iter().map(|(df, block, ids, impacts)| PostingBlock {
        idf: hy::idf(index.documents, *df as f64),
        first: *block as usize * POSTING_BLOCK,
        ids: ids.iter().flatten().collect(),
        impacts: impacts.iter().flatten().collect(),
    });
    Some(hy::score_blocks(blocks, per_term, pool))
}

/// The index, if it may be used now: switched on, fresh, built in this layout with the
/// BM25 parameters in force, and the table has no row-level security in force for this
/// user (the index was built from every row).
pub fn usable(t: &Target) -> Option<&IndexInfo> {
    let idx = t.text_index.as_ref()?;
    let ok = settings::USE_TEXT_INDEX.get()
        && !t.text_index_stale
        && idx.k1 == settings::BM25_K1.get()
        && idx.b == settings::BM25_B.get()
        && unsafe { pg_sys::check_enable_rls(t.source, pg_sys::InvalidOid, false) }
            != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32;
    ok.then_some(idx)
}

/// What `Target` keeps about a collection's text index.
#[derive(Clone)]
pub struct IndexInfo {
    pub table: String,
    pub k1: f64,
    pub b: f64,
    /// Rows in the collection when the index was built.
    pub documents: f64,
}

impl IndexInfo {
    /// From the stats `qortex_refresh_text_index` stored; `None` for an index built in an
    /// earlier layout (rows of single postings), which is not used until rebuilt.
    pub fn from_stats(table: &str, stats: &serde_json::Value) -> Option<IndexInfo> {
        if stats["block"].as_u64() != Some(POSTING_BLOCK as u64) {
            return None;
        }
        Some(IndexInfo {
            table: table.to_owned(),
            k1: stats["k1"].as_f64()?,
            b: stats["b"].as_f64()?,
            documents: stats["documents"].as_f64()?,
        })
    }
}
