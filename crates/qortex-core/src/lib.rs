//! The pure core of qortex: everything that can be computed without a PostgreSQL server.
//! No pgrx types here; the extension crate converts, runs SPI and raises errors.
pub mod bandit;
pub mod bm25;
pub mod collections;
pub mod context;
pub mod counters;
pub mod hybrid;
pub mod interoception;
pub mod json;
pub mod memory;
pub mod recall;

/// A bad argument: the extension raises it as SQLSTATE 22023 (invalid_parameter_value).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// The SQL argument (or config key) at fault, e.g. `reward` or `config.baseline_rate`.
    pub arg: String,
    pub message: String,
}

impl ParamError {
    pub fn new(arg: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            arg: arg.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.arg, self.message)
    }
}

impl std::error::Error for ParamError {}

/// A decay factor (learners and interoception factors): `0 < f ≤ 1`.
pub fn check_decay_factor(f: f64) -> Result<(), ParamError> {
    if f.is_finite() && f > 0.0 && f <= 1.0 {
        Ok(())
    } else {
        Err(ParamError::new(
            "factor",
            format!("must be within (0, 1], got {f}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_factor_range() {
        assert!(check_decay_factor(1.0).is_ok());
        assert!(check_decay_factor(0.01).is_ok());
        for bad in [0.0, -0.5, 1.01, f64::NAN] {
            assert_eq!(check_decay_factor(bad).unwrap_err().arg, "factor");
        }
    }
}
