//! `hybrid_search` (API.md §3) without a server, one concern per module: the `options`
//! argument and its `filter`, the text leg (`text`: tsvectors, BM25, postings, the read plan) and the
//! fusion of the two legs with factors and the graph boost.
pub mod filter;
pub mod fusion;
pub mod options;
pub mod text;
pub mod vector;

pub use filter::SplitFilter;
pub use fusion::{castable_id, fuse, graph_boost, rank_leg, Fused, LegHit, GRAPH_FANOUT};
pub use options::{
    parse_k, Fusion, SearchOptions, TextMode, MAX_CANDIDATES, MAX_K, MAX_OFFSET, RRF_POOL_FLOOR,
    WEIGHTED_POOL_FACTOR, WEIGHTED_POOL_FLOOR,
};
