//! A user's memory that grows by appends and keeps its newest characters within a bound:
//! what an append pushes out of the bound, and when the text pushed out was written.
//!
//! The memory remembers when its text was written as segments: consecutive runs of its
//! characters, each with the earliest and latest time any of them was appended. An append
//! adds one; there are at most [`MAX_SEGMENTS`], the two adjacent ones shortest together
//! merging into one (its times the wider range), so times stay right, only coarser.
use serde_json::{json, Value};

/// Segments one memory keeps at most.
pub const MAX_SEGMENTS: usize = 64;

/// Characters `[previous end, end)` of the memory, appended between `first` and `last`
/// (microseconds, any epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub end: usize,
    pub first: i64,
    pub last: i64,
}

/// The oldest characters of a memory, pushed out of the bound by an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedOut {
    pub text: String,
    /// When the earliest and the latest of its characters were appended.
    pub first: i64,
    pub last: i64,
}

/// A memory after an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub memory: String,
    pub segments: Vec<Segment>,
    pub pushed_out: Option<PushedOut>,
}

/// The segments stored with a memory of `chars` characters (`[[end, first, last], ...]`),
/// or, where there are none or they do not describe this memory (it was replaced since, by
/// `qortex_remember` or another writer), the whole memory as one segment written at
/// `written` (when it was replaced).
pub fn segments_or(stored: Option<&Value>, chars: usize, written: i64) -> Vec<Segment> {
    let parsed: Option<Vec<Segment>> = stored.and_then(Value::as_array).and_then(|a| {
        a.iter()
            .map(|s| {
                let s = s.as_array().filter(|s| s.len() == 3)?;
                Some(Segment {
                    end: usize::try_from(s[0].as_u64()?).ok()?,
                    first: s[1].as_i64()?,
                    last: s[2].as_i64()?,
                })
            })
            .collect()
    });
    match parsed {
        Some(v) if consistent(&v, chars) => v,
        _ if chars == 0 => Vec::new(),
        _ => vec![Segment {
            end: chars,
            first: written,
            last: written,
        }],
    }
}

/// Whether `segments` cover `chars` characters: ends increasing, the last one `chars`.
fn consistent(segments: &[Segment], chars: usize) -> bool {
    let increasing = segments.windows(2).all(|w| w[0].end < w[1].end);
    let ordered = segments.iter().all(|s| s.first <= s.last);
    let covers = segments.last().map_or(0, |s| s.end) == chars;
    increasing && ordered && covers && segments.first().is_none_or(|s| s.end > 0)
}

/// Segments as stored: `[[end, first, last], ...]`.
pub fn segments_json(segments: &[Segment]) -> Value {
    Value::Array(
        segments
            .iter()
            .map(|s| json!([s.end, s.first, s.last]))
            .collect(),
    )
}

/// `memory` (described by `segments`) with `text` appended at `now` (after `separator`
/// unless the memory is empty), its oldest characters beyond `bound` pushed out: the
/// memory keeps the newest `bound` characters exactly, and the text pushed out followed by
/// the memory is the text before followed by the text appended, character for character.
pub fn append(
    memory: &str,
    segments: &[Segment],
    text: &str,
    separator: &str,
    now: i64,
    bound: usize,
) -> Appended {
    let mut whole = String::with_capacity(memory.len() + separator.len() + text.len());
    whole.push_str(memory);
    if !memory.is_empty() {
        whole.push_str(separator);
    }
    whole.push_str(text);
    let chars = whole.chars().count();
    let mut segs = segments.to_vec();
    if chars > segs.last().map_or(0, |s| s.end) {
        segs.push(Segment {
            end: chars,
            first: now,
            last: now,
        });
    }
    let cut = chars.saturating_sub(bound);
    let pushed_out = (cut > 0).then(|| {
        let covered = segs.iter().take_while(|s| s.end < cut).count() + 1;
        let at = whole
            .char_indices()
            .nth(cut)
            .map_or(whole.len(), |(i, _)| i);
        PushedOut {
            text: whole[..at].to_owned(),
            first: segs[..covered].iter().map(|s| s.first).min().unwrap_or(now),
            last: segs[..covered].iter().map(|s| s.last).max().unwrap_or(now),
        }
    });
    if let Some(p) = &pushed_out {
        whole.replace_range(..p.text.len(), "");
        segs.retain(|s| s.end > cut);
        for s in &mut segs {
            s.end -= cut;
        }
    }
    while segs.len() > MAX_SEGMENTS {
        merge_shortest_pair(&mut segs);
    }
    Appended {
        memory: whole,
        segments: segs,
        pushed_out,
    }
}

/// Merge the two adjacent segments shortest together (the oldest such pair).
fn merge_shortest_pair(segs: &mut Vec<Segment>) {
    let start = |i: usize| if i == 0 { 0 } else { segs[i - 1].end };
    let i = (0..segs.len() - 1)
        .min_by_key(|&i| segs[i + 1].end - start(i))
        .expect("two segments or more");
    let next = segs.remove(i + 1);
    let s = &mut segs[i];
    s.end = next.end;
    s.first = s.first.min(next.first);
    s.last = s.last.max(next.last);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(end: usize, first: i64, last: i64) -> Segment {
        Segment { end, first, last }
    }

    #[test]
    fn an_append_within_the_bound_pushes_nothing_out() {
        let a = append("", &[], "likes tea", "\n", 10, 100);
        assert_eq!(a.memory, "likes tea");
        assert_eq!(a.segments, vec![seg(9, 10, 10)]);
        assert_eq!(a.pushed_out, None);
        let b = append(&a.memory, &a.segments, "hates rain", "\n", 20, 100);
        assert_eq!(b.memory, "likes tea\nhates rain");
        assert_eq!(b.segments, vec![seg(9, 10, 10), seg(20, 20, 20)]);
        assert_eq!(b.pushed_out, None);
    }

    #[test]
    fn the_oldest_characters_beyond_the_bound_go_with_their_times() {
        let a = append("aaaa", &[seg(4, 1, 1)], "bbbb", "|", 2, 6);
        // "aaaa|bbbb": 9 characters, 6 kept
        assert_eq!(a.memory, "a|bbbb");
        let p = a.pushed_out.unwrap();
        assert_eq!(p.text, "aaa");
        assert_eq!((p.first, p.last), (1, 1));
        assert_eq!(a.segments, vec![seg(1, 1, 1), seg(6, 2, 2)]);
        // a cut into the newest segment takes the times of every segment it reaches
        let b = append(&a.memory, &a.segments, "cccc", "|", 3, 4);
        assert_eq!(b.memory, "cccc");
        let p = b.pushed_out.unwrap();
        assert_eq!(p.text, "a|bbbb|");
        assert_eq!((p.first, p.last), (1, 3));
        assert_eq!(b.segments, vec![seg(4, 3, 3)]);
    }

    #[test]
    fn a_cut_at_a_segment_end_takes_only_that_segment() {
        let a = append("abc", &[seg(3, 1, 1)], "def", "", 2, 3);
        assert_eq!(a.memory, "def");
        let p = a.pushed_out.unwrap();
        assert_eq!((p.text.as_str(), p.first, p.last), ("abc", 1, 1));
        assert_eq!(a.segments, vec![seg(3, 2, 2)]);
    }

    #[test]
    fn an_append_longer_than_the_bound_keeps_its_end() {
        let a = append("old", &[seg(3, 1, 1)], "0123456789", " ", 5, 4);
        assert_eq!(a.memory, "6789");
        assert_eq!(a.pushed_out.unwrap().text, "old 012345");
        assert_eq!(a.segments, vec![seg(4, 5, 5)]);
    }

    #[test]
    fn characters_not_bytes_are_counted_and_cut() {
        let a = append("héé", &[seg(3, 1, 1)], "ßü", "", 2, 3);
        assert_eq!(a.memory, "éßü");
        assert_eq!(a.pushed_out.unwrap().text, "hé");
    }

    #[test]
    fn nothing_is_lost_over_many_appends() {
        let (mut memory, mut segs, mut history) = (String::new(), Vec::new(), String::new());
        let mut everything = String::new();
        for i in 0..500 {
            let text = "x".repeat(i % 7) + &i.to_string();
            if !everything.is_empty() {
                everything.push(',');
            }
            everything.push_str(&text);
            let a = append(&memory, &segs, &text, ",", i as i64, 50);
            if let Some(p) = &a.pushed_out {
                assert!(p.first <= p.last && p.last <= i as i64);
                history.push_str(&p.text);
            }
            assert!(a.memory.chars().count() <= 50);
            assert!(a.segments.len() <= MAX_SEGMENTS);
            assert!(consistent(&a.segments, a.memory.chars().count()));
            (memory, segs) = (a.memory, a.segments);
        }
        assert_eq!(history + &memory, everything);
    }

    #[test]
    fn segments_beyond_the_limit_merge_the_shortest_pair() {
        let mut segs: Vec<Segment> = (1..=MAX_SEGMENTS)
            .map(|i| seg(i * 10, i as i64, i as i64))
            .collect();
        // the 2nd segment is short: it merges with its shorter neighbour
        segs[1].end = 11;
        let a = append(
            "x".repeat(MAX_SEGMENTS * 10).as_str(),
            &segs,
            "y",
            "",
            1000,
            10_000,
        );
        assert_eq!(a.segments.len(), MAX_SEGMENTS);
        assert_eq!(a.segments[0], seg(11, 1, 2));
        assert_eq!(a.segments[1], seg(30, 3, 3));
        assert_eq!(
            a.segments.last(),
            Some(&seg(MAX_SEGMENTS * 10 + 1, 1000, 1000))
        );
    }

    #[test]
    fn stored_segments_are_used_only_when_they_describe_the_memory() {
        let stored = segments_json(&[seg(2, 1, 1), seg(5, 3, 4)]);
        assert_eq!(
            segments_or(Some(&stored), 5, 9),
            vec![seg(2, 1, 1), seg(5, 3, 4)]
        );
        // the memory was replaced since: one segment, written when it was replaced
        assert_eq!(segments_or(Some(&stored), 7, 9), vec![seg(7, 9, 9)]);
        assert_eq!(segments_or(None, 7, 9), vec![seg(7, 9, 9)]);
        assert_eq!(segments_or(Some(&json!("x")), 7, 9), vec![seg(7, 9, 9)]);
        assert_eq!(segments_or(None, 0, 9), vec![]);
    }
}
