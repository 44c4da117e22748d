//! The text leg without a server: tsvectors read in place, BM25, the impact-ordered
//! postings of the text index, and the plan that decides what to read.
mod bm25;
mod plan;
mod postings;
mod tsvector;

pub use bm25::{idf, Bm25};
pub use plan::{rows_needed, Pass, TextLeg, TextSource};
pub use postings::{score_blocks, PostingBlock, Postings, POSTING_BLOCK};
pub use tsvector::TsVector;
