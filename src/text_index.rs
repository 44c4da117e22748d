//! The impact-ordered text index of a collection: for every lexeme, its rows ordered by
//! their BM25 term weight, so `hybrid_search` reads the best rows of each query term with
//! an index scan instead of reading and scoring every matching row.
//!
//! Built (and rebuilt) by `qortex_refresh_text_index`. A statement trigger on the
//! collection's table marks it stale on any change; a stale index is not used (the text
//! leg falls back to the GIN index, exact and slower) until the next refresh.
use crate::search::Target;
use crate::settings;
use crate::spi_util::{plan, required, FLOAT8_ARRAY, INT8, TEXT, TEXT_ARRAY};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::JsonB;
use qortex_core::hybrid::LegHit;
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
        let run = |client: &mut SpiClient<'_>, sql: &str| {
            client
                .update(sql, None, &[])
                .unwrap_or_else(|e| error!("{F}: {e}"));
        };
        run(client, &format!("DROP TABLE IF EXISTS {postings}"));
        run(
            client,
            &format!(
                "CREATE TABLE {postings} (lexeme TEXT NOT NULL, impact REAL NOT NULL,
                                          id TEXT NOT NULL)"
            ),
        );
        // One pass over the table: every row's tsvector and length are computed once, then
        // give both the average length and the impacts that depend on it.
        let dl = format!(
            "(SELECT pg_catalog.sum(COALESCE(pg_catalog.array_length(l.positions, 1), 1))
                FROM pg_catalog.unnest({}) l)",
            t.tsv
        );
        let (avgdl, rows) = client
            .update(
                &format!(
                    "WITH d AS MATERIALIZED (SELECT {id}::text AS id, {tsv} AS tsv, {dl} AS dl
                                               FROM {table}),
                          a AS (SELECT GREATEST(COALESCE(pg_catalog.avg(dl), 1), 1)::float8 AS avgdl
                                  FROM d),
                          ins AS (
                              INSERT INTO {postings} (lexeme, impact, id)
                              SELECT l.lexeme,
                                     (c.n * ($1 + 1) / (c.n + $1 * (1 - $2 + $2 * d.dl / a.avgdl)))
                                         ::real,
                                     d.id
                                FROM d, a, pg_catalog.unnest(d.tsv) l,
                                     LATERAL (SELECT COALESCE(pg_catalog.array_length(l.positions, 1),
                                                              1)::float8 AS n) c
                              RETURNING 1)
                     SELECT (SELECT avgdl FROM a), (SELECT pg_catalog.count(*) FROM ins)",
                    id = t.id,
                    tsv = t.tsv,
                    table = t.table,
                ),
                Some(1),
                &[k1.into(), b.into()],
            )
            .unwrap_or_else(|e| error!("{F}: {e}"))
            .next()
            .map(|r| {
                (
                    r.get::<f64>(1).ok().flatten().unwrap_or(1.0),
                    r.get::<i64>(2).ok().flatten().unwrap_or(0),
                )
            })
            .unwrap_or((1.0, 0));
        run(
            client,
            &format!("CREATE INDEX ON {postings} (lexeme, impact DESC) INCLUDE (id)"),
        );
        run(client, &format!("ANALYZE {postings}"));
        let stats = json!({"k1": k1, "b": b, "avgdl": avgdl, "postings": rows});
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
            run(client, &trigger_sql(&name, &t.table));
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
/// BM25 parameters in force. `terms` are (lexeme, idf); each term contributes its best
/// `per_term` rows. A row's score adds idf × impact over the terms whose lists hold it;
/// the best `pool` rows come back, best first.
pub fn leg(
    client: &SpiClient<'_>,
    func: &str,
    t: &Target,
    terms: &[(String, f64)],
    per_term: usize,
    pool: usize,
) -> Option<Vec<LegHit>> {
    let postings = usable(t)?;
    let sql = format!(
        "SELECT p.id, pg_catalog.sum(q.idf * p.impact)::float8 AS score
           FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::float8[]))
                AS q(l, idf)
           CROSS JOIN LATERAL (SELECT id, impact FROM {postings}
                                WHERE lexeme = q.l ORDER BY impact DESC LIMIT $3) p
          GROUP BY p.id ORDER BY score DESC, p.id LIMIT $4"
    );
    let p = plan(client, &sql, &[TEXT_ARRAY, FLOAT8_ARRAY, INT8, INT8], false);
    let (lexemes, idfs): (Vec<String>, Vec<f64>) = terms.iter().cloned().unzip();
    Some(
        client
            .select(
                &*p,
                None,
                &[
                    lexemes.into(),
                    idfs.into(),
                    (per_term as i64).into(),
                    (pool as i64).into(),
                ],
            )
            .unwrap_or_else(|e| error!("{func}: text index: {e}"))
            .filter_map(|r| {
                Some(LegHit {
                    id: r.get::<String>(1).ok()??,
                    score: r.get::<f64>(2).ok()??,
                })
            })
            .collect(),
    )
}

/// The postings table, if the index may be used now: switched on, fresh, built with the
/// BM25 parameters in force.
pub fn usable(t: &Target) -> Option<&str> {
    let idx = t.text_index.as_ref()?;
    let ok = settings::USE_TEXT_INDEX.get()
        && !t.text_index_stale
        && idx.k1 == settings::BM25_K1.get()
        && idx.b == settings::BM25_B.get();
    ok.then_some(idx.table.as_str())
}

/// What `Target` keeps about a collection's text index.
#[derive(Clone)]
pub struct IndexInfo {
    pub table: String,
    pub k1: f64,
    pub b: f64,
}
