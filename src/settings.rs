//! Settings (API.md §5): GUCs under `qortex.*`, documented in the README.
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Rows the text leg of `hybrid_search` reads at most to find its candidates.
pub static TEXT_ROW_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(500);
/// BM25's term-frequency saturation.
pub static BM25_K1: GucSetting<f64> = GucSetting::<f64>::new(1.2);
/// BM25's document-length normalisation.
pub static BM25_B: GucSetting<f64> = GucSetting::<f64>::new(0.75);

/// Called from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"qortex.text_row_budget",
        c"Rows the text leg of hybrid_search reads at most to find its candidates.",
        c"Query terms are enumerated rarest first while their document frequencies fit; \
          more common terms still score every candidate.",
        &TEXT_ROW_BUDGET,
        100,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"qortex.bm25_k1",
        c"BM25 term-frequency saturation (k1) of hybrid_search's text leg.",
        c"",
        &BM25_K1,
        0.0,
        10.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"qortex.bm25_b",
        c"BM25 document-length normalisation (b) of hybrid_search's text leg.",
        c"",
        &BM25_B,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
}
