//! The learner context hash, byte-identical to the Python `qortex-learning` package:
//! `sha256(json.dumps(ctx, sort_keys=True, separators=(",", ":")))[:16]`, or `"default"`
//! for a missing or empty context.
//!
//! The input is the context as PostgreSQL's jsonb presents it. jsonb keeps a number's text
//! (`1.0` stays `1.0`), so a number with a fraction or exponent is a Python float and is
//! printed as Python's `repr(float)`; any other number is a Python int, printed digit for
//! digit. jsonb cannot keep `1e16` apart from `10000000000000000` (both become the int) nor
//! `-0.0` apart from `0.0`: such floats hash as jsonb presents them.
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The context hash stored in `learning_arm_states.context_hash`.
pub fn context_hash(ctx: Option<&Value>) -> String {
    match ctx {
        None | Some(Value::Null) => "default".to_string(),
        Some(Value::Object(m)) if m.is_empty() => "default".to_string(),
        Some(v) => {
            let digest = Sha256::digest(python_json(v).as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// `json.dumps(v, sort_keys=True, separators=(",", ":"))` with Python's defaults otherwise
/// (`ensure_ascii=True`).
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, &n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts keys by code point; UTF-8 byte order is the same order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, &map[*k]);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, text: &str) {
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => out.push_str(&python_float_repr(f)),
            // Out of f64 range: Python's json would have produced inf; jsonb never holds that.
            _ => out.push_str(text),
        }
    } else {
        out.push_str(text);
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in [-4, 16), else `d.ddde±XX`.
pub fn python_float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "1.2345e-5", "1e16".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                format!("{digits}{}.0", "0".repeat((int_len - n) as usize))
            } else {
                format!(
                    "{}.{}",
                    &digits[..int_len as usize],
                    &digits[int_len as usize..]
                )
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// A JSON string as Python writes it with `ensure_ascii=True`: every character outside
/// printable ASCII (space to `~`) is escaped, astral characters as UTF-16 surrogate pairs.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn missing_or_empty_context_is_default() {
        assert_eq!(context_hash(None), "default");
        assert_eq!(context_hash(Some(&Value::Null)), "default");
        assert_eq!(context_hash(Some(&json!({}))), "default");
    }

    #[test]
    fn hashes_the_python_bytes() {
        // sha256(b'{"task":"type-check"}')[:16], as the API contract states.
        assert_eq!(
            python_json(&json!({"task": "type-check"})),
            r#"{"task":"type-check"}"#
        );
        assert_eq!(
            context_hash(Some(&json!({"task": "type-check"}))),
            "80981f96a0582a8a"
        );
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v = parse(r#"{"b": {"z": 1, "a": [ {"y": 2, "x": 3} ]}, "a": null}"#);
        assert_eq!(
            python_json(&v),
            r#"{"a":null,"b":{"a":[{"x":3,"y":2}],"z":1}}"#
        );
    }

    #[test]
    fn strings_are_ascii_escaped_like_python() {
        let v = json!({"s": "é\u{1F600}\"\\\n\t\u{01}\u{7f}/"});
        assert_eq!(
            python_json(&v),
            r#"{"s":"\u00e9\ud83d\ude00\"\\\n\t\u0001\u007f/"}"#
        );
    }

    #[test]
    fn numbers_keep_python_int_and_float_forms() {
        let v = parse(
            r#"[0.1, 1.0, 0.00001, 0.00000025, 123.456, 100.0, 1e22, 0.0001, -2.5,
                123456789012345678901234567890, -7, 1234567890123456.0]"#,
        );
        assert_eq!(
            python_json(&v),
            "[0.1,1.0,1e-05,2.5e-07,123.456,100.0,1e+22,0.0001,-2.5,\
             123456789012345678901234567890,-7,1234567890123456.0]"
        );
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.5e-5, "1.5e-05"),
            (0.3, "0.3"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(python_float_repr(f), want, "{f:e}");
        }
    }
}

#[cfg(test)]
mod python_vectors {
    use super::*;

    /// The vectors scripts/gen_context_vectors.py wrote with Python's own json and hashlib.
    #[test]
    fn matches_every_python_vector() {
        let vectors: Vec<Value> = serde_json::from_str(include_str!(
            "../../../tests/data/context_hash_vectors.json"
        ))
        .unwrap();
        assert!(vectors.len() >= 30);
        for v in vectors {
            let ctx: Value = serde_json::from_str(v["context"].as_str().unwrap()).unwrap();
            if ctx != Value::Object(Default::default()) {
                assert_eq!(python_json(&ctx), v["canonical"].as_str().unwrap());
            }
            assert_eq!(
                context_hash(Some(&ctx)),
                v["hash"].as_str().unwrap(),
                "{}",
                v["context"]
            );
        }
    }
}
