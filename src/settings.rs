//! Settings (API.md §5): GUCs under `qortex.*`, documented in docs/settings.md; and
//! settings of other extensions changed for the length of one call.
use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Rows the text leg of `hybrid_search` reads at most to find its candidates.
pub static TEXT_ROW_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(500);
/// Whether hybrid_search may read a collection's qortex_bm25 index.
pub static USE_TEXT_INDEX: GucSetting<bool> = GucSetting::<bool>::new(true);
/// The smallest share of a collection's rows a filter may admit for the text leg to read
/// the qortex_bm25 index under it (else GIN within the filter).
pub static TEXT_INDEX_MIN_SHARE: GucSetting<f64> = GucSetting::<f64>::new(0.2);
/// Whether hybrid_search reports how it read each leg (a NOTICE per call).
pub static DEBUG_PLANS: GucSetting<bool> = GucSetting::<bool>::new(false);
/// BM25's term-frequency saturation.
pub static BM25_K1: GucSetting<f64> = GucSetting::<f64>::new(1.2);
/// BM25's document-length normalisation.
pub static BM25_B: GucSetting<f64> = GucSetting::<f64>::new(0.75);

/// Characters one user memory holds: `qortex_remember` refuses more, `qortex_remember_append`
/// pushes the oldest beyond it into the memory's history.
pub static MEMORY_MAX_CHARS: GucSetting<i32> = GucSetting::<i32>::new(65_536);

/// Factor steps of interoception_update, and the bounds weights are clamped to.
pub static FEEDBACK_ACCEPTED: GucSetting<f64> = GucSetting::<f64>::new(0.1);
pub static FEEDBACK_REJECTED: GucSetting<f64> = GucSetting::<f64>::new(-0.05);
pub static FEEDBACK_PARTIAL: GucSetting<f64> = GucSetting::<f64>::new(0.03);
pub static FACTOR_MIN: GucSetting<f64> = GucSetting::<f64>::new(0.1);
pub static FACTOR_MAX: GucSetting<f64> = GucSetting::<f64>::new(5.0);

fn float(
    name: &'static std::ffi::CStr,
    doc: &'static std::ffi::CStr,
    s: &'static GucSetting<f64>,
    lo: f64,
    hi: f64,
) {
    GucRegistry::define_float_guc(
        name,
        doc,
        c"",
        s,
        lo,
        hi,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// Called from `_PG_init`.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"qortex.use_text_index",
        c"Let hybrid_search read a collection's qortex_bm25 index.",
        c"Off: the text leg scores the rows the GIN index finds.",
        &USE_TEXT_INDEX,
        GucContext::Userset,
        GucFlags::default(),
    );
    float(
        c"qortex.text_index_min_share",
        c"The smallest share of a collection's rows a filter may admit for hybrid_search's text leg to read the qortex_bm25 index under it.",
        &TEXT_INDEX_MIN_SHARE,
        0.0,
        1.0,
    );
    GucRegistry::define_bool_guc(
        c"qortex.debug_plans",
        c"Report how hybrid_search read each leg, as a NOTICE per call.",
        c"The vector leg's path (index or exact) with the estimates it was chosen on; the \
          text leg's reads.",
        &DEBUG_PLANS,
        GucContext::Userset,
        GucFlags::default(),
    );
    float(
        c"qortex.feedback_accepted",
        c"Factor step of an accepted outcome.",
        &FEEDBACK_ACCEPTED,
        -10.0,
        10.0,
    );
    float(
        c"qortex.feedback_rejected",
        c"Factor step of a rejected outcome.",
        &FEEDBACK_REJECTED,
        -10.0,
        10.0,
    );
    float(
        c"qortex.feedback_partial",
        c"Factor step of a partial outcome.",
        &FEEDBACK_PARTIAL,
        -10.0,
        10.0,
    );
    float(
        c"qortex.factor_min",
        c"Lowest interoception factor.",
        &FACTOR_MIN,
        0.0,
        1000.0,
    );
    float(
        c"qortex.factor_max",
        c"Highest interoception factor.",
        &FACTOR_MAX,
        0.0,
        1000.0,
    );
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
    GucRegistry::define_int_guc(
        c"qortex.memory_max_chars",
        c"Characters one user memory holds.",
        c"qortex_remember refuses a longer memory; qortex_remember_append moves the oldest \
          characters beyond it into the user's memory history.",
        &MEMORY_MAX_CHARS,
        64,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    float(
        c"qortex.bm25_k1",
        c"BM25 term-frequency saturation (k1) of hybrid_search's text leg.",
        &BM25_K1,
        0.0,
        10.0,
    );
    float(
        c"qortex.bm25_b",
        c"BM25 document-length normalisation (b) of hybrid_search's text leg.",
        &BM25_B,
        0.0,
        1.0,
    );
}

/// Settings changed for the length of one call (`hnsw.ef_search` for the vector leg, say),
/// put back when it returns; an error puts them back by aborting the (sub)transaction.
pub struct ForCall(i32);

impl ForCall {
    pub fn new() -> Self {
        ForCall(unsafe { pg_sys::NewGUCNestLevel() })
    }

    pub fn set(&self, name: &str, value: &str) {
        let (n, v) = (
            CString::new(name).expect("a setting's name has no NUL"),
            CString::new(value).expect("a setting's value has no NUL"),
        );
        unsafe {
            pg_sys::set_config_option(
                n.as_ptr(),
                v.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }

    pub fn restore(self) {
        unsafe { pg_sys::AtEOXact_GUC(true, self.0) };
    }
}
