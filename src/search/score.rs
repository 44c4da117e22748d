//! `qortex.bm25`: one row's BM25 score as a SQL function, so a statement can score rows
//! where they are stored. On a distributed table (Citus) the text leg sends it to every
//! shard inside `ORDER BY score DESC LIMIT k`: each shard scores its own matching rows and
//! returns only its best ids and scores, instead of every candidate's tsvector travelling to
//! the coordinator to be scored there. The score is `qortex_core`'s, bit for bit.
use crate::errors::invalid_param;
use pgrx::prelude::*;
use qortex_core::hybrid::text::{Bm25, TsVector};
use qortex_core::ParamError;

/// BM25 of `document` for query terms `lexemes` with their `idf`s (same length), against an
/// average document length `avgdl` (in positions).
#[pg_extern(
    immutable,
    parallel_safe,
    strict,
    sql = r#"
CREATE FUNCTION qortex.bm25(
    document tsvector, lexemes TEXT[], idf double precision[], avgdl double precision,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75
) RETURNS double precision
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
"#
)]
fn bm25(
    document: &[u8],
    lexemes: Array<'_, &str>,
    idf: Array<'_, f64>,
    avgdl: f64,
    k1: default!(f64, 1.2),
    b: default!(f64, 0.75),
) -> f64 {
    const F: &str = "qortex.bm25";
    if lexemes.len() != idf.len() {
        invalid_param(
            F,
            ParamError::new(
                "idf",
                format!(
                    "has {} elements and lexemes {}; give one idf per lexeme",
                    idf.len(),
                    lexemes.len()
                ),
            ),
        );
    }
    let doc = TsVector::new(document).unwrap_or_else(|e| {
        invalid_param(
            F,
            ParamError::new("document", format!("is not a tsvector: {e}")),
        )
    });
    // (read in place, once per row: a statement scores every row it finds)
    let terms = lexemes
        .iter()
        .zip(idf.iter())
        .filter_map(|(l, i)| Some((l?.as_bytes(), i?)));
    Bm25 { k1, b }.score_terms(terms, &doc, avgdl)
}
