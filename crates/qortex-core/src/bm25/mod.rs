//! The algorithms of the `qortex_bm25` index access method, without pages: the shell in
//! `src/bm25am/` reads and writes pages and hands their bytes here.
//!
//! - `record`: a document as the write buffer holds it (one line item per document).
//! - `segment`: an immutable segment's bytes (sorted dictionary, posting blocks with true
//!   block bounds, document → TID map, dead-document bitmap) and reading them back;
//!   `pack`: its posting blocks, bit-packed.
//! - `search`: the exact top-k over a write buffer and any number of segments, with the
//!   statistics (N, average length, document frequencies) counted over all of them.
//! - `topk`: one segment's exact top-k, document at a time (MaxScore, block-max bounds).
//! - `merge`: segments (and buffered documents) folded into one segment's documents,
//!   dropping the dead.
//! - `check`: a segment's structure, and an index's documents against its table's.
pub mod check;
pub mod codec;
pub mod merge;
pub mod pack;
pub mod record;
pub mod search;
pub mod segment;
pub mod topk;

pub use merge::{live_docs, merge_pages, next_merge, tier_of, SegStat, MERGE_FANOUT};
pub use record::{scope_lexeme, Doc, Matched, QueryTerms, RecordError};
pub use search::{Hit, Prepared, Searcher};
pub use segment::{encode_segment, Bytes, Corrupt, Segment, TermEntry};

/// A heap tuple id packed as `block << 16 | offset`, the order of TIDs.
pub type Tid = u64;

pub fn pack_tid(block: u32, offset: u16) -> Tid {
    ((block as u64) << 16) | offset as u64
}

pub fn unpack_tid(tid: Tid) -> (u32, u16) {
    ((tid >> 16) as u32, tid as u16)
}

/// Distinct lexemes a query may have: more is refused (SQLSTATE 54000), so what a scan holds
/// is bounded whatever its argument.
pub const MAX_QUERY_TERMS: usize = 1_000;
