//! jsonb in and out of qortex's functions, without serde_json's recursion limit turning a
//! deeply nested value into an internal error (or a deep drop into a crash).
//! - [`Jsonb`]: a jsonb argument, parsed after its nesting is checked: deeper than
//!   [`MAX_DEPTH`] is refused with 54001 (statement too complex) before it is parsed.
//! - [`JsonbText`]: a jsonb passed through as its text, never parsed: rows' metadata read
//!   from users' tables and returned as they are, however they nest.
//! - [`object_arg`]: an optional jsonb argument that must be an object (NULL → `{}`).
use crate::errors::{error, invalid_param};
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::{direct_function_call, FromDatum, IntoDatum};
use qortex_core::json::{nesting_depth, MAX_DEPTH};
use qortex_core::ParamError;
use serde_json::Value;
use std::ffi::{CStr, CString};

/// A jsonb argument, parsed.
#[derive(Debug, Clone)]
pub struct Jsonb(pub Value);

/// A jsonb value as its text.
#[derive(Debug, Clone)]
pub struct JsonbText(pub String);

/// An optional jsonb argument that must be an object: NULL → `{}`, else 22023 naming `arg`.
pub fn object_arg(func: &str, arg: &str, v: Option<Jsonb>) -> Value {
    match v.map(|j| j.0) {
        None | Some(Value::Null) => serde_json::json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(v) => invalid_param(
            func,
            ParamError::new(arg, format!("must be a JSON object, got {v}")),
        ),
    }
}

/// The text of a jsonb datum.
unsafe fn text_of(datum: pg_sys::Datum) -> String {
    unsafe {
        let varlena = datum.cast_mut_ptr();
        let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
        let cstr = direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(detoasted.into())])
            .expect("jsonb_out returns text");
        let text = cstr.to_string_lossy().into_owned();
        pg_sys::pfree(cstr.as_ptr() as *mut std::ffi::c_void);
        if detoasted != varlena {
            pg_sys::pfree(detoasted as *mut std::ffi::c_void);
        }
        text
    }
}

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        let text = unsafe { text_of(datum) };
        let depth = nesting_depth(&text);
        if depth > MAX_DEPTH {
            error(
                PgSqlErrorCode::ERRCODE_STATEMENT_TOO_COMPLEX,
                format!(
                    "a jsonb argument nests arrays and objects {depth} levels deep; qortex \
                     functions accept at most {MAX_DEPTH}"
                ),
            )
            .raise();
        }
        // jsonb_out always writes valid JSON, and the depth is within serde_json's limit
        Some(Jsonb(
            serde_json::from_str(&text).expect("jsonb_out writes valid JSON"),
        ))
    }
}

impl FromDatum for JsonbText {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then(|| JsonbText(unsafe { text_of(datum) }))
    }
}

impl IntoDatum for JsonbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let text = CString::new(self.0).expect("jsonb text has no NUL");
        unsafe {
            direct_function_call::<pg_sys::Datum>(pg_sys::jsonb_in, &[text.as_c_str().into_datum()])
        }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Jsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

// (a column of a function's result rows)
unsafe impl BoxRet for JsonbText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            Some(d) => unsafe { fcinfo.return_raw_datum(d) },
            None => fcinfo.return_null(),
        }
    }
}

macro_rules! sql_jsonb {
    ($($t:ty),*) => {$(
        unsafe impl SqlTranslatable for $t {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($t);
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
                Ok(SqlMappingRef::literal("jsonb"));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
                Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
        }
    )*};
}
sql_jsonb!(Jsonb, JsonbText);
