//! A search's `filter` split between the collection's filter columns (real columns of a
//! registered table, compared for equality) and its metadata (matched with `@>`).
use crate::ParamError;
use serde_json::{Map, Value};

/// The two parts of a filter.
#[derive(Debug, Default, PartialEq)]
pub struct SplitFilter {
    /// Keys matched against the metadata, as one object for `@>`; `None` if there are none.
    pub metadata: Option<Value>,
    /// Keys naming filter columns, with their values (strings, numbers or booleans).
    pub columns: Map<String, Value>,
}

impl SplitFilter {
    /// Split `filter` by `columns`, the keys that name filter columns. A column's value must
    /// be a string, number or boolean: the column is compared with `=` to it.
    pub fn new(filter: &Map<String, Value>, columns: &[&str]) -> Result<SplitFilter, ParamError> {
        let mut metadata = Map::new();
        let mut by_column = Map::new();
        for (key, value) in filter {
            if !columns.contains(&key.as_str()) {
                metadata.insert(key.clone(), value.clone());
                continue;
            }
            match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                    by_column.insert(key.clone(), value.clone());
                }
                other => {
                    return Err(ParamError::new(
                        format!("options.filter.{key}"),
                        format!(
                            "names a column, which is compared with = to a string, number \
                             or boolean; got {other}"
                        ),
                    ))
                }
            }
        }
        Ok(SplitFilter {
            metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
            columns: by_column,
        })
    }

    /// The metadata part's top-level keys.
    pub fn metadata_keys(&self) -> Vec<String> {
        match &self.metadata {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(filter: Value, columns: &[&str]) -> Result<SplitFilter, ParamError> {
        SplitFilter::new(filter.as_object().unwrap(), columns)
    }

    #[test]
    fn keys_go_to_their_column_or_to_the_metadata() {
        let s = split(
            json!({"topic": "cats", "year": 2024, "lang": "en", "tags": ["a"]}),
            &["topic", "year", "unused"],
        )
        .unwrap();
        assert_eq!(s.metadata, Some(json!({"lang": "en", "tags": ["a"]})));
        assert_eq!(
            Value::Object(s.columns),
            json!({"topic": "cats", "year": 2024})
        );
    }

    #[test]
    fn only_columns_or_only_metadata() {
        let s = split(json!({"topic": true}), &["topic"]).unwrap();
        assert_eq!(s.metadata, None);
        assert_eq!(s.metadata_keys(), Vec::<String>::new());
        let s = split(json!({"a": {"b": 1}}), &[]).unwrap();
        assert_eq!(s.metadata, Some(json!({"a": {"b": 1}})));
        assert!(s.columns.is_empty());
        assert_eq!(s.metadata_keys(), vec!["a".to_string()]);
    }

    #[test]
    fn a_column_takes_a_scalar_only() {
        for bad in [json!(null), json!([1]), json!({"x": 1})] {
            let e = split(json!({"topic": bad}), &["topic"]).unwrap_err();
            assert_eq!(e.arg, "options.filter.topic");
            assert!(e.message.contains("names a column"), "{}", e.message);
        }
    }
}
