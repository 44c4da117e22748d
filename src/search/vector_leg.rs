//! The vector leg: `ORDER BY embedding <op> $q LIMIT pool` on the HNSW index, with
//! `hnsw.ef_search` raised to the pool and iterative scans when filtered; both settings are
//! put back when the call returns.
use super::Scope;
use crate::catalog::Layout;
use crate::settings::ForCall;
use crate::spi::{plan, spi_failed, INT8, JSONB, TEXT};
use pgrx::datum::DatumWithOid;
use pgrx::spi::SpiClient;
use qortex_core::collections::Distance;
use qortex_core::hybrid::{rank_leg, LegHit, SearchOptions};

pub fn run(
    client: &SpiClient<'_>,
    func: &str,
    t: &Layout,
    scope: &Scope<'_>,
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
        table = t.table,
        scope = scope.sql
    );
    let p = plan(
        client,
        &sql,
        &[pgrx::PgOid::from(t.vector_type), INT8, JSONB, TEXT],
        false,
    );
    let settings = ForCall::new();
    let ef = opts.ef_search.unwrap_or(40).max(pool.min(1000) as i32);
    settings.set("hnsw.ef_search", &ef.to_string());
    if !scope.sql.is_empty() || opts.min_similarity.is_some() {
        settings.set("hnsw.iterative_scan", "relaxed_order");
    }
    let args = scope.args(
        unsafe { DatumWithOid::new(embedding, t.vector_type) },
        (pool as i64).into(),
    );
    let mut hits: Vec<LegHit> = client
        .select(&*p, None, &args)
        .unwrap_or_else(spi_failed(func))
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
    rank_leg(&mut hits);
    hits.truncate(pool);
    hits
}
