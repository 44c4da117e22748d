//! The BM25 index qortex keeps for a collection: doc-ordered posting blocks with block-max
//! headers (`codec`), changes folded into them (`merge`), and an exact top-k that reads
//! only the blocks that can matter (`topk`).
pub mod codec;
pub mod merge;
pub mod topk;

pub use codec::{blocks, decode, encode, BlockHeader, Posting, BLOCK};
pub use merge::{apply, decode_heads, encode_heads, slots_to_read, Heads, Written};
pub use topk::{top_k, BlockSource, Query, TermList, Work};
