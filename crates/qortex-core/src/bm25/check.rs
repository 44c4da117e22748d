//! Checking an index against its table, as amcheck checks a B-tree against its heap: each
//! segment's structure (postings in order and within the segment, block bounds true, each
//! term's df its postings), then the documents the index holds alive against those the
//! table's rows make.
use super::record::Doc;
use super::segment::{is_dead, Bytes, Corrupt, Segment};
use super::{unpack_tid, Tid};
use std::collections::HashMap;

/// Examples of problems kept at most.
pub const MAX_EXAMPLES: usize = 20;

/// What a check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows of the table the index must hold (those with lexemes).
    pub rows: u64,
    /// Documents the index holds alive (not marked dead).
    pub indexed: u64,
    /// Rows the index does not hold.
    pub missing: u64,
    /// Rows whose document in the index differs from the row's (lexemes, counts, length).
    pub differing: u64,
    /// TIDs the index holds alive more than once.
    pub duplicates: u64,
    /// Documents alive in the index whose row is gone (deleted, or written by a transaction
    /// that aborted): expected until VACUUM marks them; not a problem.
    pub gone: u64,
    /// Structural problems of segments (postings, block bounds, df).
    pub structure: u64,
    pub examples: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.differing == 0 && self.duplicates == 0 && self.structure == 0
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(what);
        }
    }
}

fn tid_str(tid: Tid) -> String {
    let (b, o) = unpack_tid(tid);
    format!("({b},{o})")
}

/// Check one segment's structure (`name` for the examples): docnos strictly increasing and
/// below the segment's documents, each block's header its postings' true bounds, each
/// term's df its postings' count, a document's postings agreeing on its length, the lengths
/// summing to the header's total, every live document with at least one lexeme.
pub fn verify_segment<B: Bytes>(
    s: &Segment<B>,
    name: &str,
    report: &mut Report,
) -> Result<(), Corrupt> {
    let n = s.num_docs();
    let dead = s.dead_bits()?;
    // each document's length as its postings give it (0: none seen yet)
    let mut dl_of = vec![0u32; n as usize];
    for (lex, e) in s.terms()? {
        let term = String::from_utf8_lossy(&lex).into_owned();
        let mut count = 0u64;
        let mut prev: Option<u32> = None;
        for b in s.blocks(&e)? {
            let ps = s.postings(&b)?;
            let h = &b.header;
            let bad_bounds = ps.is_empty()
                || h.n as usize != ps.len()
                || h.first != ps[0].docno
                || h.last != ps[ps.len() - 1].docno
                || ps.iter().any(|p| p.tf > h.max_tf || p.dl < h.min_dl)
                || !ps.iter().any(|p| p.tf == h.max_tf)
                || !ps.iter().any(|p| p.dl == h.min_dl);
            if bad_bounds {
                report.structure += 1;
                report.note(format!(
                    "{name}: term {term:?}: a block's header is not its postings' bounds"
                ));
            }
            for p in &ps {
                if p.docno >= n || prev.is_some_and(|q| q >= p.docno) {
                    report.structure += 1;
                    report.note(format!(
                        "{name}: term {term:?}: docno {} out of order or range",
                        p.docno
                    ));
                } else {
                    let dl = &mut dl_of[p.docno as usize];
                    if *dl != 0 && *dl != p.dl {
                        report.structure += 1;
                        report.note(format!(
                            "{name}: document {}: postings disagree on its length",
                            p.docno
                        ));
                    }
                    *dl = p.dl;
                }
                prev = Some(p.docno);
            }
            count += ps.len() as u64;
        }
        if count != e.df() as u64 {
            report.structure += 1;
            report.note(format!(
                "{name}: term {term:?}: df {} but {count} postings",
                e.df()
            ));
        }
    }
    let total: u64 = dl_of.iter().map(|&d| d as u64).sum();
    if total != s.total_len() {
        report.structure += 1;
        report.note(format!(
            "{name}: lengths sum to {total}, the header says {}",
            s.total_len()
        ));
    }
    if let Some(d) = (0..n).find(|&d| dl_of[d as usize] == 0 && !is_dead(&dead, d)) {
        report.structure += 1;
        report.note(format!("{name}: document {d} has no lexeme"));
    }
    Ok(())
}

/// Compare the documents the table's rows make (`table`) with those the index holds alive
/// (`indexed`), by TID.
pub fn compare(table: Vec<Doc>, indexed: Vec<Doc>, report: &mut Report) {
    report.rows += table.len() as u64;
    report.indexed += indexed.len() as u64;
    let mut by_tid: HashMap<Tid, Doc> = HashMap::with_capacity(indexed.len());
    for mut d in indexed {
        d.terms.sort();
        if let Some(prev) = by_tid.insert(d.tid, d) {
            report.duplicates += 1;
            report.note(format!(
                "TID {} is indexed more than once",
                tid_str(prev.tid)
            ));
        }
    }
    for mut row in table {
        row.terms.sort();
        match by_tid.remove(&row.tid) {
            None => {
                report.missing += 1;
                report.note(format!("row {} is not in the index", tid_str(row.tid)));
            }
            Some(d) if d.len != row.len || d.terms != row.terms => {
                report.differing += 1;
                report.note(format!(
                    "row {}: the index holds another document",
                    tid_str(row.tid)
                ));
            }
            Some(_) => {}
        }
    }
    report.gone += by_tid.len() as u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::segment::encode_segment;
    use crate::bm25::{live_docs, pack_tid};

    fn doc(tid: Tid, terms: &[(&str, u16)]) -> Doc {
        let terms: Vec<(Vec<u8>, u16)> = terms
            .iter()
            .map(|(l, tf)| (l.as_bytes().to_vec(), *tf))
            .collect();
        Doc {
            tid,
            len: terms.iter().map(|t| t.1 as u32).sum(),
            terms,
        }
    }

    fn corpus() -> Vec<Doc> {
        (0..400u32)
            .map(|i| {
                let mut t = vec![("all", 1 + (i % 3) as u16)];
                if i % 7 == 0 {
                    t.push(("seven", 2));
                }
                t.push((["a", "b", "c", "d"][i as usize % 4], 1));
                t.sort();
                doc(pack_tid(i / 40, (i % 40) as u16 + 1), &t)
            })
            .collect()
    }

    #[test]
    fn an_index_equal_to_its_table_is_ok() {
        let docs = corpus();
        let s = Segment::open(encode_segment(&docs, 8104)).unwrap();
        let mut r = Report::default();
        verify_segment(&s, "segment 1", &mut r).unwrap();
        let dead = s.dead_bits().unwrap();
        let held = live_docs(&[(&s, dead)]).unwrap();
        compare(docs.clone(), held, &mut r);
        assert!(r.ok(), "{r:?}");
        assert_eq!(
            (r.rows, r.indexed, r.missing, r.differing, r.gone),
            (400, 400, 0, 0, 0)
        );
    }

    #[test]
    fn missing_differing_duplicate_and_gone_rows_are_counted() {
        let docs = corpus();
        let mut held = docs.clone();
        held.remove(5); // missing
        held[10].terms[0].1 += 1; // differing counts
        held[10].len += 1;
        held.push(held[20].clone()); // a duplicate
        held.push(doc(pack_tid(999, 1), &[("all", 1)])); // gone from the table
        let mut r = Report::default();
        compare(docs, held, &mut r);
        assert_eq!(
            (r.missing, r.differing, r.duplicates, r.gone),
            (1, 1, 1, 1),
            "{r:?}"
        );
        assert!(!r.ok());
        assert_eq!(r.examples.len(), 3);
        assert!(
            r.examples.iter().any(|e| e.contains("(0,6)")),
            "{:?}",
            r.examples
        );
    }

    #[test]
    fn a_damaged_segment_is_found_out() {
        let docs = corpus();
        let bytes = encode_segment(&docs, 8104);
        let clean = Segment::open(bytes.clone()).unwrap();
        // every 3rd byte of every posting block
        let mut offsets = Vec::new();
        for (_, e) in clean.terms().unwrap() {
            for b in clean.blocks(&e).unwrap() {
                let at = b.off;
                offsets.extend((at..at + b.len as u64).map(|o| o as usize));
            }
        }
        let offsets: Vec<usize> = offsets.into_iter().step_by(3).collect();
        assert!(offsets.len() > 100);
        let mut found = 0;
        for &at in &offsets {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let mut r = Report::default();
            let held = Segment::open(b).and_then(|s| {
                verify_segment(&s, "segment", &mut r)?;
                let dead = s.dead_bits()?;
                live_docs(&[(&s, dead)])
            });
            match held {
                Err(_) => found += 1,
                Ok(held) => {
                    compare(docs.clone(), held, &mut r);
                    if !r.ok() {
                        found += 1;
                    }
                }
            }
        }
        assert_eq!(
            found,
            offsets.len(),
            "every damaged posting byte is noticed"
        );
    }

    #[test]
    fn examples_are_bounded() {
        let docs = corpus();
        let mut r = Report::default();
        compare(docs, Vec::new(), &mut r);
        assert_eq!(r.missing, 400);
        assert_eq!(r.examples.len(), MAX_EXAMPLES);
    }
}
