//! Building the impact-ordered text index of a collection: for every lexeme, its rows
//! ordered by their BM25 term weight, stored in blocks of `POSTING_BLOCK` (ids and impacts
//! as arrays), so `hybrid_search` reads the best rows of each query term from one or two
//! index rows instead of reading and scoring every matching row (the search reads it in
//! `search::text_leg`; names and metadata are the catalog's).
//!
//! Built (and rebuilt) by `qortex_refresh_text_index`. A statement trigger on the
//! collection's table marks it stale on any change; a stale index is not used (the text
//! leg falls back to the GIN index, exact and slower) until the next refresh.
use crate::catalog;
use crate::errors::required;
use crate::settings;
use crate::spi::{plan, run, spi_failed, JSONB, TEXT};
use pgrx::prelude::*;
use pgrx::JsonB;
use qortex_core::hybrid::text::POSTING_BLOCK;
use serde_json::json;

/// Build the collection's text index from its current rows; returns what was built.
#[pg_extern(volatile)]
fn qortex_refresh_text_index(collection: Option<String>) -> JsonB {
    const F: &str = "qortex_refresh_text_index";
    let name = required(F, "collection", collection);
    Spi::connect_mut(|client| {
        let t = catalog::layout(client, F, &name);
        let postings = catalog::postings_table(&name);
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
            .unwrap_or_else(spi_failed(F))
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
            .unwrap_or_else(spi_failed(F))
            .next()
            .is_some();
        if !exists {
            run(client, F, &catalog::stale_trigger_sql(&name, &t.table));
        }
        let p = plan(
            client,
            "UPDATE qortex.collections
                SET text_index = $2::regclass, text_index_stats = $3, text_index_stale = false
              WHERE name = $1",
            &[TEXT, TEXT, JSONB],
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
            .unwrap_or_else(spi_failed(F));
        JsonB(stats)
    })
}
