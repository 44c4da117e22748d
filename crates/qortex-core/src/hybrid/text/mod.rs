//! The text leg without a server: tsvectors read in place, BM25, and the plan that decides
//! what to read.
mod bm25;
mod plan;
mod tsvector;

pub use bm25::{idf, Bm25};
pub use plan::{index_share, rows_needed, Pass, TextLeg, TextSource};
pub use tsvector::TsVector;
