//! The planner hook: a qortex_bm25 index scan's own `tsv <@> query` in its output (the
//! ORDER BY's sort column, or the score in a SELECT list) becomes
//! `COALESCE(qortex_bm25_scored(index, ctid), tsv <@> query)`: the score the scan ordered
//! the row by, without reading (and detoasting) the row's tsvector again. COALESCE
//! evaluates its second argument only when the first is NULL, so where the scan cannot say
//! for sure (two scans of the index last returned the same row) the operator scores as
//! before.
//!
//! Installed when a backend loads qortex (`_PG_init`), chained to any hook before it; a
//! backend that has not loaded qortex yet plans its first statement without it and scores
//! with the operator, which returns the same values.
use pgrx::pg_sys;
use std::ffi::c_void;

static mut PREV: pg_sys::planner_hook_type = None;

/// Called from `_PG_init`.
pub fn init() {
    // SAFETY: `_PG_init` runs once per backend, before any planning; the previous hook is
    // kept and called first.
    unsafe {
        PREV = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the arguments are the planner's, passed on unchanged.
    let stmt = match PREV {
        Some(prev) => prev(parse, query_string, cursor_options, bound_params),
        None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
    };
    let mut ctx = Ctx {
        am: None,
        scored: None,
    };
    // SAFETY: a finished plan, in the planner's memory context, not yet shared with anyone.
    walk(&mut ctx, (*stmt).planTree);
    for sub in list_ptrs((*stmt).subplans) {
        walk(&mut ctx, sub as *mut pg_sys::Plan);
    }
    stmt
}

/// Looked up once per plan, and only when it has an ordered index scan.
struct Ctx {
    /// qortex_bm25's access method (InvalidOid when the extension is not in this database).
    am: Option<pg_sys::Oid>,
    /// qortex_bm25_scored's OID, found beside the operator's function.
    scored: Option<pg_sys::Oid>,
}

unsafe fn list_ptrs(list: *mut pg_sys::List) -> Vec<*mut c_void> {
    // SAFETY (caller): `list` is NIL or a pointer list.
    if list.is_null() {
        return Vec::new();
    }
    (0..(*list).length as usize)
        .map(|i| (*(*list).elements.add(i)).ptr_value)
        .collect()
}

/// Every plan node under `plan`, each ordered qortex_bm25 index scan rewritten.
unsafe fn walk(ctx: &mut Ctx, plan: *mut pg_sys::Plan) {
    // SAFETY (caller): `plan` is NULL or a node of a finished plan tree; each node's tag
    // says which struct it is.
    if plan.is_null() {
        return;
    }
    let node = plan as *mut pg_sys::Node;
    let children: Vec<*mut c_void> = match (*node).type_ {
        pg_sys::NodeTag::T_IndexScan => {
            rewrite(ctx, plan as *mut pg_sys::IndexScan);
            Vec::new()
        }
        pg_sys::NodeTag::T_Append => list_ptrs((*(plan as *mut pg_sys::Append)).appendplans),
        pg_sys::NodeTag::T_MergeAppend => {
            list_ptrs((*(plan as *mut pg_sys::MergeAppend)).mergeplans)
        }
        pg_sys::NodeTag::T_SubqueryScan => {
            vec![(*(plan as *mut pg_sys::SubqueryScan)).subplan as *mut c_void]
        }
        pg_sys::NodeTag::T_CustomScan => {
            list_ptrs((*(plan as *mut pg_sys::CustomScan)).custom_plans)
        }
        _ => Vec::new(),
    };
    for c in children {
        walk(ctx, c as *mut pg_sys::Plan);
    }
    walk(ctx, (*plan).lefttree);
    walk(ctx, (*plan).righttree);
}

unsafe fn our_am(ctx: &mut Ctx) -> pg_sys::Oid {
    // SAFETY: a catalog lookup by name (missing_ok).
    *ctx.am
        .get_or_insert_with(|| pg_sys::get_am_oid(c"qortex_bm25".as_ptr(), true))
}

/// The scan's ORDER BY expression, if it is a qortex_bm25 index's `<@>`.
unsafe fn ordering(ctx: &mut Ctx, scan: *mut pg_sys::IndexScan) -> Option<*mut pg_sys::OpExpr> {
    // SAFETY (caller): `scan` is an IndexScan node of a finished plan.
    let orig = list_ptrs((*scan).indexorderbyorig);
    let [expr] = orig[..] else {
        return None;
    };
    let am = our_am(ctx);
    if am == pg_sys::InvalidOid {
        return None;
    }
    let rel = pg_sys::RelationIdGetRelation((*scan).indexid);
    if rel.is_null() {
        return None;
    }
    let ours = (*(*rel).rd_rel).relam == am;
    pg_sys::RelationClose(rel);
    let op = expr as *mut pg_sys::OpExpr;
    let is_op = (*(op as *mut pg_sys::Node)).type_ == pg_sys::NodeTag::T_OpExpr;
    (ours && is_op).then_some(op)
}

/// qortex_bm25_scored(oid, tid), in the schema of the operator's function (the
/// extension's).
unsafe fn scored_fn(ctx: &mut Ctx, op: *mut pg_sys::OpExpr) -> pg_sys::Oid {
    // SAFETY (caller): `op` is a planned OpExpr (its function's OID set).
    *ctx.scored.get_or_insert_with(|| {
        let ns = pg_sys::get_func_namespace((*op).opfuncid);
        let schema = pg_sys::get_namespace_name(ns);
        if schema.is_null() {
            return pg_sys::InvalidOid;
        }
        let name = pg_sys::list_make2_impl(
            pg_sys::NodeTag::T_List,
            pg_sys::ListCell {
                ptr_value: pg_sys::makeString(schema) as *mut c_void,
            },
            pg_sys::ListCell {
                ptr_value: pg_sys::makeString(c"qortex_bm25_scored".as_ptr() as *mut _)
                    as *mut c_void,
            },
        );
        let types = [pg_sys::OIDOID, pg_sys::TIDOID];
        pg_sys::LookupFuncName(name, 2, types.as_ptr(), true)
    })
}

unsafe fn rewrite(ctx: &mut Ctx, scan: *mut pg_sys::IndexScan) {
    // SAFETY (caller): `scan` is an IndexScan node of a finished plan; its target list is
    // a list of TargetEntry whose Vars name the scanned relation as `scanrelid`.
    let Some(op) = ordering(ctx, scan) else {
        return;
    };
    let func = scored_fn(ctx, op);
    if func == pg_sys::InvalidOid {
        return;
    }
    let plan = &mut (*scan).scan.plan;
    if plan.targetlist.is_null() {
        return;
    }
    let index = pg_sys::makeConst(
        pg_sys::OIDOID,
        -1,
        pg_sys::InvalidOid,
        4,
        pg_sys::Datum::from((*scan).indexid),
        false,
        true,
    );
    let ctid = pg_sys::makeVar(
        (*scan).scan.scanrelid as _,
        pg_sys::SelfItemPointerAttributeNumber as _,
        pg_sys::TIDOID,
        -1,
        pg_sys::InvalidOid,
        0,
    );
    let mut args = pg_sys::lappend(std::ptr::null_mut(), index as *mut c_void);
    args = pg_sys::lappend(args, ctid as *mut c_void);
    let call = pg_sys::makeFuncExpr(
        func,
        pg_sys::FLOAT8OID,
        args,
        pg_sys::InvalidOid,
        pg_sys::InvalidOid,
        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
    );
    let mut m = Mutate {
        find: op as *mut pg_sys::Node,
        call: call as *mut pg_sys::Node,
    };
    plan.targetlist = mutate(
        plan.targetlist as *mut pg_sys::Node,
        &mut m as *mut Mutate as _,
    ) as *mut pg_sys::List;
}

struct Mutate {
    /// The scan's `<@>`, and the call that returns its score.
    find: *mut pg_sys::Node,
    call: *mut pg_sys::Node,
}

unsafe extern "C-unwind" fn mutate(node: *mut pg_sys::Node, ctx: *mut c_void) -> *mut pg_sys::Node {
    // SAFETY: called by `rewrite` and by expression_tree_mutator with the `Mutate` `rewrite`
    // passed, on nodes of an expression tree.
    if node.is_null() {
        return node;
    }
    let m = &*(ctx as *const Mutate);
    if pg_sys::equal(node as *const c_void, m.find as *const c_void) {
        let c = pg_sys::palloc0(std::mem::size_of::<pg_sys::CoalesceExpr>())
            as *mut pg_sys::CoalesceExpr;
        (*c).xpr.type_ = pg_sys::NodeTag::T_CoalesceExpr;
        (*c).coalescetype = pg_sys::FLOAT8OID;
        (*c).coalescecollid = pg_sys::InvalidOid;
        let first = pg_sys::copyObjectImpl(m.call as *const c_void);
        (*c).args = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), first), node as _);
        (*c).location = -1;
        return c as *mut pg_sys::Node;
    }
    #[cfg(feature = "pg15")]
    {
        // SAFETY: PostgreSQL 15 declares the callback without arguments; it calls it as
        // (Node *, void *), which `mutate` is.
        let f: unsafe extern "C-unwind" fn() -> *mut pg_sys::Node = std::mem::transmute(
            mutate
                as unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> *mut pg_sys::Node,
        );
        pg_sys::expression_tree_mutator(node, Some(f), ctx)
    }
    #[cfg(not(feature = "pg15"))]
    pg_sys::expression_tree_mutator_impl(node, Some(mutate), ctx)
}
