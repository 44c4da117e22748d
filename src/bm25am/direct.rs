//! A qortex_bm25 index read by qortex itself (hybrid_search's text leg), not by the
//! executor: which index of a table serves its tsvector column, and its exact top-k as
//! heap TIDs with their scores, from the same `Searcher` an index scan uses. The caller
//! turns TIDs into rows under its snapshot (visibility, row-level security) and asks for
//! more when some are not visible.
use super::page::Pinned;
use super::scan::searcher;
use super::store::PageBytes;
use super::{columns, is_ours, scope_hash};
use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};
use qortex_core::bm25::{scope_lexeme, unpack_tid, Searcher, MAX_QUERY_TERMS};
use std::ffi::{CStr, CString};

/// A qortex_bm25 index on a table's tsvector column.
#[derive(Debug, Clone)]
pub struct AmIndex {
    pub oid: pg_sys::Oid,
    pub name: String,
    /// The scope column's name and type, if the index has one.
    pub scope_column: Option<(String, pg_sys::Oid)>,
    /// The scope when it is an expression: as `pg_get_indexdef` writes it, its whitespace
    /// made single spaces.
    pub scope_expr: Option<String>,
}

/// What a qortex_bm25 index must have as its first key to serve a collection's text leg.
pub enum Key<'a> {
    /// The table's stored tsvector column of this name.
    Column(&'a str),
    /// `to_tsvector(config, column)`: the text column of this name under the text search
    /// configuration of this name (schema-qualified unless in pg_catalog).
    ToTsvector { config: &'a str, column: &'a str },
}

/// The first valid qortex_bm25 index of `table` whose first key is `key` and that has no
/// predicate; `None` if there is none.
pub fn find(table: pg_sys::Oid, key: Key<'_>) -> Option<AmIndex> {
    let column = match key {
        Key::Column(c) | Key::ToTsvector { column: c, .. } => CString::new(c).ok()?,
    };
    let config = match key {
        Key::ToTsvector { config, .. } => CString::new(config).ok()?,
        Key::Column(_) => CString::default(),
    };
    // SAFETY: the table and each index are opened with AccessShareLock, kept to the end of
    // the transaction (as the planner keeps its own) and closed before this returns; the
    // index list is a fresh List this function frees; each index's pg_index row, name and
    // expressions are read while it is open. regconfigin takes a cstring and returns an OID
    // (or raises an error for a configuration that no longer exists, as the collection's
    // own tsvector expression then does).
    unsafe {
        let config: pg_sys::Oid = match key {
            Key::ToTsvector { .. } => {
                pgrx::direct_function_call(pg_sys::regconfigin, &[config.as_c_str().into_datum()])
                    .expect("regconfigin returns an OID")
            }
            Key::Column(_) => pg_sys::InvalidOid,
        };
        let attnum = pg_sys::get_attnum(table, column.as_ptr());
        if attnum <= 0 {
            return None;
        }
        let heap = pg_sys::table_open(table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let list = pg_sys::RelationGetIndexList(heap);
        let n = if list.is_null() { 0 } else { (*list).length };
        let oids: Vec<pg_sys::Oid> = (0..n).map(|i| pg_sys::list_nth_oid(list, i)).collect();
        pg_sys::list_free(list);
        pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
        for oid in oids {
            let rel = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let ix = &*(*rel).rd_index;
            let keys = ix.indkey.values.as_slice(ix.indnatts as usize);
            let first_key = match key {
                Key::Column(_) => keys.first() == Some(&attnum),
                Key::ToTsvector { .. } => {
                    keys.first() == Some(&0)
                        && is_to_tsvector(first_expression(rel), config, attnum)
                }
            };
            let usable = is_ours(rel)
                && ix.indisvalid
                && ix.indisready
                && first_key
                && pg_sys::RelationGetIndexPredicate(rel).is_null();
            let found = usable.then(|| AmIndex {
                oid,
                name: CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
                scope_column: (columns(rel) == 2 && keys[1] > 0).then(|| {
                    let name = CStr::from_ptr(pg_sys::get_attname(table, keys[1], false));
                    (
                        name.to_string_lossy().into_owned(),
                        pg_sys::get_atttype(table, keys[1]),
                    )
                }),
                scope_expr: (keys.len() == 2 && keys[1] == 0).then(|| column_def(oid, 2)),
            });
            pg_sys::index_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// The first of an open index's key expressions (null if it has none).
///
/// # Safety
/// `rel` is an open index.
unsafe fn first_expression(rel: pg_sys::Relation) -> *mut pg_sys::Node {
    // a copy the relcache made for the caller, planner-ready (constants folded)
    let exprs = pg_sys::RelationGetIndexExpressions(rel);
    if exprs.is_null() || (*exprs).length == 0 {
        return std::ptr::null_mut();
    }
    pg_sys::list_nth(exprs, 0) as *mut pg_sys::Node
}

/// Whether `node` is `to_tsvector(config, column)`: the two-argument function with the
/// configuration a constant of OID `config` and the text a plain reference to the table's
/// column `attnum` (through a binary-coercible cast, as varchar is read as text).
///
/// # Safety
/// `node` is null or an expression tree of an open index.
unsafe fn is_to_tsvector(node: *mut pg_sys::Node, config: pg_sys::Oid, attnum: i16) -> bool {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_FuncExpr {
        return false;
    }
    let f = &*(node as *mut pg_sys::FuncExpr);
    if f.funcid != pg_sys::Oid::from(pg_sys::F_TO_TSVECTOR_REGCONFIG_TEXT)
        || f.args.is_null()
        || (*f.args).length != 2
    {
        return false;
    }
    let cfg = pg_sys::list_nth(f.args, 0) as *mut pg_sys::Node;
    let config_is = (*cfg).type_ == pg_sys::NodeTag::T_Const && {
        let c = &*(cfg as *mut pg_sys::Const);
        c.consttype == pg_sys::REGCONFIGOID
            && !c.constisnull
            && pg_sys::Oid::from_datum(c.constvalue, false) == Some(config)
    };
    let mut text = pg_sys::list_nth(f.args, 1) as *mut pg_sys::Node;
    while (*text).type_ == pg_sys::NodeTag::T_RelabelType {
        text = (*(text as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
    }
    let column_is = (*text).type_ == pg_sys::NodeTag::T_Var && {
        let v = &*(text as *mut pg_sys::Var);
        v.varattno == attnum && v.varlevelsup == 0
    };
    config_is && column_is
}

fn column_def(index: pg_sys::Oid, column: i32) -> String {
    // SAFETY: the SQL function pg_get_indexdef(oid, int, bool), called with arguments of
    // its types; it returns text (NULL only for an index that does not exist).
    let def: Option<String> = unsafe {
        pgrx::direct_function_call(
            pg_sys::pg_get_indexdef_ext,
            &[index.into_datum(), column.into_datum(), false.into_datum()],
        )
    };
    def.unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The most distinct lexemes a search takes.
pub const MAX_TERMS: usize = MAX_QUERY_TERMS;

/// One search of an index: its `Searcher`, the index held open until `close`.
pub struct Direct {
    rel: pg_sys::Relation,
    searcher: Searcher<PageBytes>,
    /// The metapage's pin, held while `searcher` reads (let go when dropped).
    _pin: Pinned,
}

/// A hit: the row's heap TID (block, offset) and its BM25 score.
pub type TidHit = (u32, u16, f64);

impl Direct {
    /// A search of `index` for `lexemes` (distinct, the query's under the index's
    /// configuration; at least one, at most `MAX_TERMS`), within the rows whose scope column
    /// equals `scope` (the value as text, read by the scope column type's input function:
    /// 22P02 if it is not one) when given.
    pub fn open(index: pg_sys::Oid, lexemes: &[String], scope: Option<&str>) -> Direct {
        assert!(!lexemes.is_empty() && lexemes.len() <= MAX_TERMS);
        let lexemes: Vec<Vec<u8>> = lexemes.iter().map(|l| l.as_bytes().to_vec()).collect();
        // SAFETY: opened with AccessShareLock (as an index scan would be) and closed in
        // `close`; on an error the transaction's abort releases it.
        let rel = unsafe { pg_sys::index_open(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
        let scope = scope.map(|value| scope_lexeme(scope_value_hash(rel, value)));
        let (searcher, pin) = searcher(rel, lexemes, scope);
        Direct {
            rel,
            searcher,
            _pin: pin,
        }
    }

    /// The best `k` rows (fewer if fewer match), best first.
    pub fn top(&mut self, k: usize) -> Vec<TidHit> {
        let hits = self
            .searcher
            .top(k)
            .unwrap_or_else(|e| super::store::corrupt(self.rel, e));
        hits.into_iter()
            .map(|h| {
                let (block, offset) = unpack_tid(h.tid);
                (block, offset, h.score)
            })
            .collect()
    }

    /// Whether the index has no rows beyond the best `k`.
    pub fn exhausted(&self, k: usize) -> bool {
        self.searcher.exhausted(k)
    }

    pub fn close(self) {
        // SAFETY: opened in `open`; its lock is kept to the end of the transaction.
        unsafe { pg_sys::index_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
    }
}

/// The scope hash of `value` (text) read as the scope column's operator class's type.
fn scope_value_hash(rel: pg_sys::Relation, value: &str) -> u64 {
    if columns(rel) != 2 {
        crate::errors::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "qortex_bm25: a scope asked of an index without a scope column",
        );
    }
    let text = CString::new(value).unwrap_or_else(|_| {
        crate::errors::raise(
            pgrx::PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            "qortex_bm25: a scope value holds NUL",
        )
    });
    // SAFETY: the index has a second column (checked), whose operator class's input type
    // has an input function; it is called with a C string and returns a datum of that type
    // (or raises 22P02 and the like for text that is not one), which scope_hash reads.
    unsafe {
        let ty = *(*rel).rd_opcintype.add(1);
        let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::getTypeInputInfo(ty, &mut input, &mut ioparam);
        let datum = pg_sys::OidInputFunctionCall(input, text.as_ptr() as *mut _, ioparam, -1);
        scope_hash(rel, datum, ty)
    }
}
