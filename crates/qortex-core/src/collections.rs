//! Collections (API.md §2) without a server: names, options, and the validation of a
//! document with its chunks before anything is written.
use crate::ParamError;
use serde_json::{Map, Value};
use std::fmt::Write;

/// The longest collection name: its tables are `<name>_documents` / `<name>_chunks`, and
/// index names add a suffix too, all within PostgreSQL's 63-byte identifiers.
pub const MAX_NAME_LEN: usize = 40;
/// pgvector's HNSW index handles `vector` columns of up to 2,000 dimensions.
pub const MAX_DIMENSIONS: i32 = 2000;
/// Chunks one `qortex_ingest` call takes; split larger documents across documents.
pub const MAX_CHUNKS: usize = 10_000;
/// Characters of one chunk's content (PostgreSQL's tsvector holds at most 1 MB).
pub const MAX_CHUNK_CHARS: usize = 500_000;
pub const DOCUMENT_TYPES: [&str; 5] = ["text", "markdown", "html", "pdf", "code"];

/// A collection name: letters, digits, `_` and `-`, starting with a letter or `_`.
pub fn check_name(arg: &str, name: &str) -> Result<(), ParamError> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_start || !ok_chars {
        return Err(ParamError::new(
            arg,
            format!(
                "must be 1 to {MAX_NAME_LEN} characters of letters, digits, '_' and '-', \
                 starting with a letter or '_', got {name:?}"
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    Cosine,
    L2,
    Ip,
}

impl Distance {
    pub fn parse(s: &str) -> Option<Distance> {
        match s {
            "cosine" => Some(Distance::Cosine),
            "l2" => Some(Distance::L2),
            "ip" => Some(Distance::Ip),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Distance::Cosine => "cosine",
            Distance::L2 => "l2",
            Distance::Ip => "ip",
        }
    }
    /// The pgvector operator class of an HNSW index with this distance.
    pub fn opclass(self) -> &'static str {
        match self {
            Distance::Cosine => "vector_cosine_ops",
            Distance::L2 => "vector_l2_ops",
            Distance::Ip => "vector_ip_ops",
        }
    }
    /// The pgvector operator that orders by this distance.
    pub fn operator(self) -> &'static str {
        match self {
            Distance::Cosine => "<=>",
            Distance::L2 => "<->",
            Distance::Ip => "<#>",
        }
    }
}

/// `qortex_create_collection` options.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionOptions {
    pub m: i32,
    pub ef_construction: i32,
    pub distance: Distance,
    pub text_config: String,
}

impl Default for CollectionOptions {
    fn default() -> Self {
        CollectionOptions {
            m: 16,
            ef_construction: 64,
            distance: Distance::Cosine,
            text_config: "english".into(),
        }
    }
}

fn int_in(
    obj: &Map<String, Value>,
    key: &str,
    lo: i64,
    hi: i64,
    default: i32,
) -> Result<i32, ParamError> {
    match obj.get(key) {
        None => Ok(default),
        Some(v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(n as i32),
            _ => Err(ParamError::new(
                format!("options.{key}"),
                format!("must be an integer within [{lo}, {hi}], got {v}"),
            )),
        },
    }
}

impl CollectionOptions {
    /// Parse the options object; the text search config's existence is checked by the caller.
    pub fn parse(options: Option<&Value>) -> Result<CollectionOptions, ParamError> {
        let empty = Map::new();
        let obj = match options {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(ParamError::new(
                    "options",
                    format!("must be a JSON object, got {other}"),
                ))
            }
        };
        const KEYS: [&str; 4] = ["m", "ef_construction", "distance", "text_config"];
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ParamError::new(
                format!("options.{k}"),
                format!("unknown option (allowed: {})", KEYS.join(", ")),
            ));
        }
        let d = CollectionOptions::default();
        let m = int_in(obj, "m", 2, 100, d.m)?;
        let ef_construction = int_in(obj, "ef_construction", 4, 1000, d.ef_construction)?;
        if ef_construction < 2 * m {
            return Err(ParamError::new(
                "options.ef_construction",
                format!("must be at least 2 * m = {}, got {ef_construction}", 2 * m),
            ));
        }
        let distance = match obj.get("distance") {
            None => d.distance,
            Some(v) => v.as_str().and_then(Distance::parse).ok_or_else(|| {
                ParamError::new(
                    "options.distance",
                    format!("must be 'cosine', 'l2' or 'ip', got {v}"),
                )
            })?,
        };
        let text_config = match obj.get("text_config") {
            None => d.text_config,
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v) => {
                return Err(ParamError::new(
                    "options.text_config",
                    format!("must be the name of a text search configuration, got {v}"),
                ))
            }
        };
        Ok(CollectionOptions {
            m,
            ef_construction,
            distance,
            text_config,
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "m": self.m,
            "ef_construction": self.ef_construction,
            "distance": self.distance.name(),
            "text_config": self.text_config,
        })
    }
}

/// A document to ingest, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub user_id: Option<String>,
    pub is_global: bool,
    pub document_type: String,
    pub content: Option<String>,
    pub metadata: Value,
    pub external_id: Option<String>,
}

/// Chunks in columns, ready to bind: pgvector text literals for the embeddings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunks {
    pub content: Vec<String>,
    pub embedding: Vec<String>,
    pub metadata: Vec<Value>,
}

fn opt_text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ParamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ParamError::new(
            format!("document.{key}"),
            format!("must be text, got {v}"),
        )),
    }
}

/// Check a document object.
pub fn parse_document(doc: &Value) -> Result<Document, ParamError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| ParamError::new("document", format!("must be a JSON object, got {doc}")))?;
    const KEYS: [&str; 6] = [
        "user_id",
        "is_global",
        "document_type",
        "content",
        "metadata",
        "external_id",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ParamError::new(
            format!("document.{k}"),
            format!("unknown key (allowed: {})", KEYS.join(", ")),
        ));
    }
    let is_global = match obj.get("is_global") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ParamError::new(
                "document.is_global",
                format!("must be true or false, got {v}"),
            ))
        }
    };
    let document_type = opt_text(obj, "document_type")?.unwrap_or_else(|| "text".into());
    if !DOCUMENT_TYPES.contains(&document_type.as_str()) {
        return Err(ParamError::new(
            "document.document_type",
            format!(
                "must be one of {}, got {document_type:?}",
                DOCUMENT_TYPES.join(", ")
            ),
        ));
    }
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => {
            return Err(ParamError::new(
                "document.metadata",
                format!("must be a JSON object, got {v}"),
            ))
        }
    };
    Ok(Document {
        user_id: opt_text(obj, "user_id")?,
        is_global,
        document_type,
        content: opt_text(obj, "content")?,
        metadata,
        external_id: opt_text(obj, "external_id")?,
    })
}

/// Check the chunks array against the collection's dimensions. Errors name the chunk
/// (`chunks[i].key`, indexes from 0 as `chunk_index` is).
pub fn parse_chunks(chunks: &Value, dimensions: usize) -> Result<Chunks, ParamError> {
    let items = chunks.as_array().ok_or_else(|| {
        ParamError::new(
            "chunks",
            format!("must be a JSON array of chunk objects, got {chunks}"),
        )
    })?;
    if items.is_empty() {
        return Err(ParamError::new("chunks", "must hold at least one chunk"));
    }
    if items.len() > MAX_CHUNKS {
        return Err(ParamError::new(
            "chunks",
            format!(
                "holds {} chunks; one document takes at most {MAX_CHUNKS}",
                items.len()
            ),
        ));
    }
    let mut out = Chunks {
        content: Vec::with_capacity(items.len()),
        embedding: Vec::with_capacity(items.len()),
        metadata: Vec::with_capacity(items.len()),
    };
    for (i, item) in items.iter().enumerate() {
        let err = |key: &str, msg: String| ParamError::new(format!("chunks[{i}]{key}"), msg);
        let obj = item
            .as_object()
            .ok_or_else(|| err("", format!("must be a JSON object, got {item}")))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["content", "embedding", "metadata"].contains(&k.as_str()))
        {
            return Err(err(
                &format!(".{k}"),
                "unknown key (allowed: content, embedding, metadata)".into(),
            ));
        }
        let content = match obj.get("content") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) => return Err(err(".content", "must not be empty".into())),
            other => {
                return Err(err(
                    ".content",
                    format!("must be non-empty text, got {}", show(other)),
                ))
            }
        };
        let chars = content.chars().count();
        if chars > MAX_CHUNK_CHARS {
            return Err(err(
                ".content",
                format!("has {chars} characters; a chunk holds at most {MAX_CHUNK_CHARS}"),
            ));
        }
        let embedding =
            vector_literal(obj.get("embedding"), dimensions).map_err(|m| err(".embedding", m))?;
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(v) => return Err(err(".metadata", format!("must be a JSON object, got {v}"))),
        };
        out.content.push(content.clone());
        out.embedding.push(embedding);
        out.metadata.push(metadata);
    }
    Ok(out)
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".into(), |v| v.to_string())
}

/// The embedding of a chunk as a pgvector literal `[x,y,...]`: from a JSON array of
/// `dimensions` finite numbers, or from a string that is already such a literal (what
/// pgvector clients print; it skips jsonb's number conversions).
pub fn vector_literal(v: Option<&Value>, dimensions: usize) -> Result<String, String> {
    let arr = match v {
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) => return check_literal(s, dimensions),
        other => {
            return Err(format!(
                "must be an array of {dimensions} numbers (or a vector literal \"[x,y,...]\"), \
                 got {}",
                show(other)
            ))
        }
    };
    if arr.len() != dimensions {
        return Err(format!(
            "has {} dimensions; the collection has {dimensions}",
            arr.len()
        ));
    }
    let mut s = String::with_capacity(arr.len() * 12 + 2);
    s.push('[');
    for (j, x) in arr.iter().enumerate() {
        let f = x
            .as_f64()
            .ok_or_else(|| format!("element {j} must be a number, got {x}"))?;
        // pgvector stores float4: a finite double can still overflow it.
        if !f.is_finite() || (f as f32).is_infinite() {
            return Err(format!("element {j} must be a finite float4, got {x}"));
        }
        if j > 0 {
            s.push(',');
        }
        write!(s, "{f}").expect("writing to a String");
    }
    s.push(']');
    Ok(s)
}

fn check_literal(s: &str, dimensions: usize) -> Result<String, String> {
    let inner = s
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("a vector literal must look like \"[x,y,...]\", got {s:?}"))?;
    let mut n = 0;
    for (j, part) in inner.split(',').enumerate() {
        let x: f32 = part
            .trim()
            .parse()
            .map_err(|_| format!("element {j} must be a number, got {:?}", part.trim()))?;
        if !x.is_finite() {
            return Err(format!(
                "element {j} must be a finite float4, got {:?}",
                part.trim()
            ));
        }
        n += 1;
    }
    if n != dimensions {
        return Err(format!(
            "has {n} dimensions; the collection has {dimensions}"
        ));
    }
    Ok(s.trim().to_owned())
}

/// Documents one `qortex_ingest_batch` call takes at most.
pub const MAX_BATCH: usize = 10_000;

/// The documents of a batch: a JSON array of at most `MAX_BATCH` elements; 22023 otherwise.
pub fn batch_items(documents: &Value) -> Result<&[Value], ParamError> {
    let items = documents.as_array().ok_or_else(|| {
        ParamError::new(
            "documents",
            "must be a JSON array of document objects, each with its \"chunks\"",
        )
    })?;
    if items.len() > MAX_BATCH {
        return Err(ParamError::new(
            "documents",
            format!(
                "holds {} documents; one call takes at most {MAX_BATCH} (CALL \
                 qortex_ingest_batches splits a larger load)",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// Element `i` of a batch: a document object as `qortex_ingest` takes it, with its chunks
/// under the key `chunks`; a problem names `documents[i]`.
pub fn parse_batch_document(
    i: usize,
    item: &Value,
    dimensions: usize,
) -> Result<(Document, Chunks), ParamError> {
    let at = |e: ParamError| {
        let rest = e.arg.strip_prefix("document").unwrap_or(&e.arg);
        let rest = match rest.starts_with('.') || rest.is_empty() {
            true => rest.to_owned(),
            false => format!(".{rest}"),
        };
        ParamError::new(format!("documents[{i}]{rest}"), e.message)
    };
    let mut obj = item
        .as_object()
        .ok_or_else(|| {
            ParamError::new(
                format!("documents[{i}]"),
                format!("must be a JSON object, got {item}"),
            )
        })?
        .clone();
    let chunks = obj.remove("chunks").ok_or_else(|| {
        ParamError::new(
            format!("documents[{i}].chunks"),
            "is required: the document's chunks",
        )
    })?;
    let doc = parse_document(&Value::Object(obj)).map_err(at)?;
    let chunks = parse_chunks(&chunks, dimensions).map_err(at)?;
    Ok((doc, chunks))
}

/// Job status from its counts (API.md §2).
pub fn job_status(total: i64, processed: i64, failed: i64) -> &'static str {
    let done = processed + failed;
    if done == 0 {
        "queued"
    } else if done < total {
        "processing"
    } else if failed == 0 {
        "completed"
    } else if processed == 0 {
        "failed"
    } else {
        "partial"
    }
}

/// Percent of the job's documents handled, 0 to 100, one decimal.
pub fn progress_percent(total: i64, processed: i64, failed: i64) -> f64 {
    if total <= 0 {
        return 100.0;
    }
    let p = 100.0 * (processed + failed) as f64 / total as f64;
    (p.min(100.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {

    #[test]
    fn batch_documents_carry_their_chunks_and_errors_name_their_place() {
        let item = json!({"external_id": "a", "user_id": "u1",
                          "chunks": [{"content": "cats", "embedding": [1, 0]}]});
        let (doc, ch) = parse_batch_document(0, &item, 2).unwrap();
        assert_eq!(doc.external_id.as_deref(), Some("a"));
        assert_eq!(doc.user_id.as_deref(), Some("u1"));
        assert_eq!(ch.content, vec!["cats".to_owned()]);
        let arg = |i, v: Value| parse_batch_document(i, &v, 2).unwrap_err().arg;
        assert_eq!(arg(3, json!({"content": "x"})), "documents[3].chunks");
        assert_eq!(arg(1, json!("x")), "documents[1]");
        assert_eq!(
            arg(2, json!({"colour": 1, "chunks": []})),
            "documents[2].colour"
        );
        assert_eq!(
            arg(4, json!({"chunks": [{"content": "c", "embedding": [1]}]})),
            "documents[4].chunks[0].embedding"
        );
        assert_eq!(arg(5, json!({"chunks": {}})), "documents[5].chunks");
        assert!(batch_items(&json!({})).is_err());
        assert_eq!(batch_items(&json!([1, 2])).unwrap().len(), 2);
        let big = Value::Array(vec![Value::Null; MAX_BATCH + 1]);
        assert!(batch_items(&big)
            .unwrap_err()
            .message
            .contains("at most 10000"));
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        for ok in ["docs", "_x", "My-Docs_2", &"a".repeat(MAX_NAME_LEN)] {
            assert!(check_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-x",
            "a b",
            "a\"b",
            "é",
            "a;drop",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert_eq!(check_name("name", bad).unwrap_err().arg, "name", "{bad}");
        }
    }

    #[test]
    fn options_defaults_ranges_and_unknown_keys() {
        assert_eq!(
            CollectionOptions::parse(Some(&json!({}))).unwrap(),
            CollectionOptions::default()
        );
        let o = CollectionOptions::parse(Some(
            &json!({"m": 8, "ef_construction": 40, "distance": "ip", "text_config": "simple"}),
        ))
        .unwrap();
        assert_eq!((o.m, o.ef_construction, o.distance), (8, 40, Distance::Ip));
        for (bad, arg) in [
            (json!({"m": 1}), "options.m"),
            (json!({"m": 101}), "options.m"),
            (json!({"m": 2.5}), "options.m"),
            (
                json!({"m": 32, "ef_construction": 50}),
                "options.ef_construction",
            ),
            (json!({"ef_construction": 1001}), "options.ef_construction"),
            (json!({"distance": "hamming"}), "options.distance"),
            (json!({"text_config": 3}), "options.text_config"),
            (json!({"lists": 3}), "options.lists"),
            (json!([1]), "options"),
        ] {
            assert_eq!(
                CollectionOptions::parse(Some(&bad)).unwrap_err().arg,
                arg,
                "{bad}"
            );
        }
    }

    #[test]
    fn documents() {
        let d = parse_document(&json!({"user_id": "u", "is_global": true,
            "document_type": "code", "content": "x", "metadata": {"a": 1}, "external_id": "e"}))
        .unwrap();
        assert_eq!(d.document_type, "code");
        assert!(d.is_global);
        let d = parse_document(&json!({})).unwrap();
        assert_eq!((d.document_type.as_str(), d.is_global), ("text", false));
        assert_eq!(d.metadata, json!({}));
        for (bad, arg) in [
            (json!({"document_type": "docx"}), "document.document_type"),
            (json!({"is_global": "yes"}), "document.is_global"),
            (json!({"metadata": [1]}), "document.metadata"),
            (json!({"user_id": 7}), "document.user_id"),
            (json!({"title": "t"}), "document.title"),
            (json!("text"), "document"),
        ] {
            assert_eq!(parse_document(&bad).unwrap_err().arg, arg, "{bad}");
        }
    }

    #[test]
    fn chunks_are_checked_one_by_one_and_named() {
        let c = parse_chunks(
            &json!([{"content": "a", "embedding": [1, 0.5, -2e-3]},
                    {"content": "b", "embedding": [0, 0, 1], "metadata": {"p": 2}}]),
            3,
        )
        .unwrap();
        assert_eq!(c.embedding, vec!["[1,0.5,-0.002]", "[0,0,1]"]);
        assert_eq!(c.metadata[0], json!({}));
        let e = |v: Value| parse_chunks(&v, 2).unwrap_err();
        let good = json!({"content": "ok", "embedding": [1, 2]});
        assert_eq!(
            e(json!([good, {"content": "x", "embedding": [1]}])).arg,
            "chunks[1].embedding"
        );
        assert!(e(json!([{"content": "x", "embedding": [1]}]))
            .message
            .contains("has 1 dimensions"));
        assert_eq!(
            e(json!([{"content": "x", "embedding": [1, "a"]}])).arg,
            "chunks[0].embedding"
        );
        assert_eq!(
            e(json!([{"content": "x", "embedding": [1, 1e39]}])).arg,
            "chunks[0].embedding"
        );
        let lit =
            parse_chunks(&json!([{"content": "x", "embedding": " [1, -2.5e-3] "}]), 2).unwrap();
        assert_eq!(lit.embedding, vec!["[1, -2.5e-3]"]);
        for bad in [
            "[1]", "[1,x]", "1,2", "[1,NaN]", "[1,inf]", "[1,1e39]", "[]",
        ] {
            assert_eq!(
                e(json!([{"content": "x", "embedding": bad}])).arg,
                "chunks[0].embedding",
                "{bad}"
            );
        }
        assert_eq!(
            e(json!([good, good, {"content": " ", "embedding": [1, 2]}])).arg,
            "chunks[2].content"
        );
        assert_eq!(e(json!([{"embedding": [1, 2]}])).arg, "chunks[0].content");
        assert_eq!(
            e(json!([{"content": "x", "embedding": [1, 2], "vec": 1}])).arg,
            "chunks[0].vec"
        );
        assert_eq!(
            e(json!([{"content": "x", "embedding": [1, 2], "metadata": 1}])).arg,
            "chunks[0].metadata"
        );
        assert_eq!(e(json!([])).arg, "chunks");
        assert_eq!(e(json!({})).arg, "chunks");
        let many: Vec<Value> = (0..=MAX_CHUNKS).map(|_| good.clone()).collect();
        assert!(e(Value::Array(many)).message.contains("at most"));
        let big = "x".repeat(MAX_CHUNK_CHARS + 1);
        assert_eq!(
            e(json!([{"content": big, "embedding": [1, 2]}])).arg,
            "chunks[0].content"
        );
    }

    #[test]
    fn job_states_and_progress() {
        assert_eq!(job_status(10, 0, 0), "queued");
        assert_eq!(job_status(10, 3, 1), "processing");
        assert_eq!(job_status(10, 10, 0), "completed");
        assert_eq!(job_status(10, 7, 3), "partial");
        assert_eq!(job_status(10, 0, 10), "failed");
        assert_eq!(progress_percent(3, 1, 0), 33.3);
        assert_eq!(progress_percent(10, 7, 3), 100.0);
        assert_eq!(progress_percent(0, 0, 0), 100.0);
    }
}
