//! The plan of the vector leg: the HNSW index, or an exact scan of the rows in scope, decided
//! on the table's size and the planner's estimate of the rows a filter or user scope admits,
//! never on the planner's cost model (which does not price reading embeddings out of TOAST,
//! and so takes a sequential scan of a whole table for an approximate top-100).

/// How the vector leg reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VectorPath {
    /// `ORDER BY distance` on the HNSW index, with these settings for the call.
    Ann {
        ef_search: i32,
        /// pgvector's iterative scan: keeps going past rows a filter drops.
        iterative: bool,
        /// `hnsw.max_scan_tuples` for the call, when the default (20,000) would stop an
        /// iterative scan before it found the pool.
        max_scan_tuples: Option<i64>,
    },
    /// Distances of every row in scope, computed and sorted: exact.
    Exact,
}

impl VectorPath {
    /// Whether the leg reads each row's distance (and sorts by it) rather than ids in the
    /// index's order: where fusion or `min_similarity` needs it (`needed`), and for an
    /// iterative scan, which then runs in pgvector's relaxed order: strict order cost more
    /// than reading the pool's distances out of TOAST (5.5 against 4.1 ms at 100k rows in
    /// a user scope, BENCHMARKS.md), and relaxed order has the better recall.
    pub fn reads_distances(&self, needed: bool) -> bool {
        needed
            || matches!(
                self,
                VectorPath::Ann {
                    iterative: true,
                    ..
                }
            )
    }
}

/// pgvector's default `hnsw.max_scan_tuples`.
pub const DEFAULT_MAX_SCAN_TUPLES: f64 = 20_000.0;

/// Microseconds per row the HNSW scan visits: the graph walk to it (distances to its
/// neighbours in the index) and, in scope, the heap fetch that checks the filter. Measured
/// on SciFact with TOASTed embeddings (BENCHMARKS.md, "Vector leg: index or exact"); the
/// same at 384 and 1536 dimensions within the noise.
pub const VISIT_US: f64 = 12.0;

/// Microseconds per row an exact scan reads through an index: the heap fetch, the
/// embedding out of TOAST and its distance; grows with the embedding's size.
pub fn exact_row_us(dims: i32) -> f64 {
    7.0 + dims.max(0) as f64 / 256.0
}

/// Microseconds per table row a sequential scan costs where no index finds the rows in
/// scope (the filter is checked on every row; only rows in scope have embeddings read).
pub const SCAN_ROW_US: f64 = 0.8;

/// What the plan is decided on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorInputs {
    /// The planner's estimate of the rows in the table.
    pub table_rows: f64,
    /// The planner's estimate of the rows the filter and user scope admit (`None`: no
    /// filter, no user scope).
    pub scope_rows: Option<f64>,
    /// Whether those rows can only be found by reading the whole table (no index serves
    /// the filter or user scope).
    pub scope_needs_full_scan: bool,
    /// The embedding's dimensions.
    pub dims: i32,
    /// Rows the leg returns.
    pub pool: usize,
    /// `ef_search` the caller asked for.
    pub ef_search: Option<i32>,
    /// Whether some vector hits may be dropped after the scan (`min_similarity`).
    pub min_similarity: bool,
    /// Whether the embedding column has an HNSW (or IVFFlat) index.
    pub indexed: bool,
}

/// `hnsw.ef_search` of an index scan for `pool` rows: at least pgvector's default (40) and
/// the pool (up to 1,000, pgvector's limit), or what the caller asked for if more.
pub fn ef_search_for(requested: Option<i32>, pool: usize) -> i32 {
    requested.unwrap_or(40).max(pool.min(1000) as i32)
}

/// The expected cost, in microseconds, of each path: (index, exact).
pub fn costs(i: &VectorInputs) -> (f64, f64) {
    let table = i.table_rows.max(1.0);
    let rows = i.scope_rows.unwrap_or(table).clamp(0.0, table);
    let ef = ef_search_for(i.ef_search, i.pool) as f64;
    // Filling the pool visits about pool / selectivity rows (all of them within ef).
    let visits = (i.pool as f64 * table / rows.max(1.0)).max(ef).min(table);
    let index = VISIT_US * visits;
    let scan = if i.scope_needs_full_scan && i.scope_rows.is_some() {
        SCAN_ROW_US * table
    } else {
        0.0
    };
    (index, exact_row_us(i.dims) * rows + scan)
}

/// The vector leg's path for a search: the cheaper of the two by `costs`, the exact scan
/// where there is no vector index.
pub fn plan(i: &VectorInputs) -> VectorPath {
    let (index, exact) = costs(i);
    if !i.indexed || exact <= index {
        return VectorPath::Exact;
    }
    let table = i.table_rows.max(1.0);
    let rows = i.scope_rows.unwrap_or(table).clamp(1.0, table);
    let ef_search = ef_search_for(i.ef_search, i.pool);
    let scoped = i.scope_rows.is_some();
    // An iterative scan visits about pool / selectivity rows to fill the pool; let it.
    let max_scan_tuples = scoped
        .then(|| (2.0 * i.pool as f64 * table / rows).ceil())
        .filter(|&t| t > DEFAULT_MAX_SCAN_TUPLES)
        .map(|t| t as i64);
    VectorPath::Ann {
        ef_search,
        iterative: scoped || i.min_similarity,
        max_scan_tuples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(table_rows: f64, scope_rows: Option<f64>) -> VectorInputs {
        VectorInputs {
            table_rows,
            scope_rows,
            scope_needs_full_scan: false,
            dims: 384,
            pool: 100,
            ef_search: None,
            min_similarity: false,
            indexed: true,
        }
    }

    fn ann(ef_search: i32, iterative: bool, max_scan_tuples: Option<i64>) -> VectorPath {
        VectorPath::Ann {
            ef_search,
            iterative,
            max_scan_tuples,
        }
    }

    #[test]
    fn ef_search_is_at_least_the_default_and_the_pool() {
        assert_eq!(ef_search_for(None, 10), 40);
        assert_eq!(ef_search_for(None, 100), 100);
        assert_eq!(ef_search_for(Some(200), 100), 200);
        assert_eq!(ef_search_for(Some(1), 10), 10);
        assert_eq!(ef_search_for(None, 5_000), 1000);
    }

    #[test]
    fn small_tables_and_narrow_scopes_are_read_exactly() {
        assert_eq!(plan(&inputs(100.0, None)), VectorPath::Exact);
        // SciFact: a user's rows and the global ones (~500 of 5,183), a 1% filter
        assert_eq!(plan(&inputs(5_183.0, Some(508.0))), VectorPath::Exact);
        assert_eq!(plan(&inputs(100_000.0, Some(1_000.0))), VectorPath::Exact);
        // an estimate above the table's size is the table's size
        assert_eq!(plan(&inputs(100.0, Some(5_000.0))), VectorPath::Exact);
        let unindexed = VectorInputs {
            indexed: false,
            ..inputs(1e6, None)
        };
        assert_eq!(plan(&unindexed), VectorPath::Exact);
    }

    #[test]
    fn large_tables_take_the_index_whatever_the_storage() {
        assert_eq!(plan(&inputs(5_183.0, None)), ann(100, false, None));
        assert_eq!(plan(&inputs(100_000.0, None)), ann(100, false, None));
        let wide = VectorInputs {
            ef_search: Some(400),
            pool: 50,
            min_similarity: true,
            ..inputs(100_000.0, None)
        };
        assert_eq!(plan(&wide), ann(400, true, None));
    }

    #[test]
    fn distances_are_read_where_needed_and_for_iterative_scans() {
        let ann = |iterative| VectorPath::Ann {
            ef_search: 40,
            iterative,
            max_scan_tuples: None,
        };
        assert!(!ann(false).reads_distances(false));
        assert!(ann(false).reads_distances(true));
        assert!(ann(true).reads_distances(false));
        assert!(!VectorPath::Exact.reads_distances(false));
        assert!(VectorPath::Exact.reads_distances(true));
    }

    #[test]
    fn scoped_scans_are_iterative_and_may_visit_what_fills_the_pool() {
        // 10% of 100k: about 1,000 visits against 10,000 rows read exactly
        assert_eq!(
            plan(&inputs(100_000.0, Some(10_000.0))),
            ann(100, true, None)
        );
        // 0.5% of 10M: about 20,000 visits fill the pool (let it visit twice that), where
        // reading the 50,000 rows in scope exactly costs more
        assert_eq!(plan(&inputs(1e7, Some(5e4))), ann(100, true, Some(40_000)));
    }

    #[test]
    fn a_scope_no_index_finds_costs_the_whole_table_to_read_exactly() {
        let found = inputs(200_000.0, Some(3_000.0));
        let unfound = VectorInputs {
            scope_needs_full_scan: true,
            ..found
        };
        let (i, e) = costs(&found);
        let (i2, e2) = costs(&unfound);
        assert_eq!(i, i2);
        assert!((e2 - e - SCAN_ROW_US * 200_000.0).abs() < 1e-6);
        assert_eq!(plan(&found), VectorPath::Exact);
        assert!(matches!(plan(&unfound), VectorPath::Ann { .. }));
    }

    #[test]
    fn wider_embeddings_cost_more_to_read_exactly() {
        assert!(exact_row_us(1536) > exact_row_us(384));
        let (_, narrow) = costs(&inputs(1_000.0, None));
        let (_, wide) = costs(&VectorInputs {
            dims: 1536,
            ..inputs(1_000.0, None)
        });
        assert!(wide > narrow);
    }
}
