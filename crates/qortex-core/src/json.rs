//! Limits on JSON arguments, checked on their text before anything parses them.

/// Deepest nesting of arrays and objects qortex parses. serde_json refuses deeper than 128
/// (its recursion limit), and a deep value recurses again when dropped; nothing qortex
/// reads (options, filters, metadata, outcomes) needs a tenth of this.
pub const MAX_DEPTH: usize = 100;

/// How deeply arrays and objects nest in the JSON text `s` (0 for a scalar), brackets inside
/// strings not counted. Linear, no recursion, whatever the input.
pub fn nesting_depth(s: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in s.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth("3"), 0);
        assert_eq!(nesting_depth("\"[[[\""), 0);
        assert_eq!(nesting_depth("{\"a\": [1, {\"b\": []}]}"), 4);
        assert_eq!(nesting_depth("{\"a\\\"[\": [1]}"), 2);
        assert_eq!(nesting_depth("[[], [], [[]]]"), 3);
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        assert_eq!(nesting_depth(&deep), 5000);
    }
}
