//! A document as the write buffer stores it: one line item per document,
//! `flags u8 | tid 6 bytes | length u32 | n u16 | n × (lexeme length u16, lexeme, tf u16)`,
//! lexemes sorted and distinct. VACUUM sets the dead flag in place (the same size).
use super::{pack_tid, unpack_tid, Tid};

/// The flag byte's bit for a document VACUUM found dead.
pub const DEAD: u8 = 1;
/// Bytes before the first lexeme.
pub const HEADER: usize = 1 + 6 + 4 + 2;

/// A document: its heap TID, its length (Σ over lexemes of max(1, positions)), and its
/// lexemes with term frequencies, sorted by lexeme and distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub tid: Tid,
    pub len: u32,
    pub terms: Vec<(Vec<u8>, u16)>,
}

/// The term standing for a scope value (the hash of a value of the index's second column):
/// a NUL byte, which no lexeme holds, then the hash. It sorts before every lexeme.
pub fn scope_lexeme(hash: u64) -> Vec<u8> {
    let mut l = Vec::with_capacity(9);
    l.push(0);
    l.extend_from_slice(&hash.to_be_bytes());
    l
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Bytes that are not a record (a corrupt page).
    Corrupt,
    /// More distinct lexemes than a record holds (65,535).
    TooManyTerms(usize),
}

impl Doc {
    /// A document from a tsvector's entries (lexeme, positions), in the tsvector's order
    /// (sorted, distinct). `None` for a document without lexemes: it can match no query, so
    /// it is not indexed and does not count in the statistics.
    pub fn from_entries<'a>(
        tid: Tid,
        entries: impl IntoIterator<Item = (&'a [u8], u16)>,
    ) -> Option<Doc> {
        let mut len = 0u32;
        let terms: Vec<(Vec<u8>, u16)> = entries
            .into_iter()
            .map(|(l, npos)| {
                let tf = npos.max(1);
                len = len.saturating_add(tf as u32);
                (l.to_vec(), tf)
            })
            .collect();
        (!terms.is_empty()).then_some(Doc { tid, len, terms })
    }

    /// The document with the term of its scope (the index's second column) added; a scope
    /// term does not count in the document's length.
    pub fn with_scope(mut self, hash: u64) -> Doc {
        let l = scope_lexeme(hash);
        if let Err(i) = self.terms.binary_search_by(|(t, _)| t.as_slice().cmp(&l)) {
            self.terms.insert(i, (l, 1));
        }
        self
    }

    /// Whether it holds `lexeme`.
    pub fn holds(&self, lexeme: &[u8]) -> bool {
        self.terms
            .binary_search_by(|(t, _)| t.as_slice().cmp(lexeme))
            .is_ok()
    }

    /// Bytes of this document's record.
    pub fn encoded_len(&self) -> usize {
        HEADER + self.terms.iter().map(|(l, _)| 4 + l.len()).sum::<usize>()
    }

    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let n = u16::try_from(self.terms.len())
            .map_err(|_| RecordError::TooManyTerms(self.terms.len()))?;
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(0);
        let (block, offset) = unpack_tid(self.tid);
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        for (l, tf) in &self.terms {
            out.extend_from_slice(&(l.len() as u16).to_le_bytes());
            out.extend_from_slice(l);
            out.extend_from_slice(&tf.to_le_bytes());
        }
        Ok(out)
    }

    /// The document and whether it is dead.
    pub fn decode(data: &[u8]) -> Result<(Doc, bool), RecordError> {
        let mut terms = Vec::new();
        let (flags, tid, len) = walk(data, |lex, tf| terms.push((lex.to_vec(), tf)))?;
        Ok((Doc { tid, len, terms }, flags & DEAD != 0))
    }
}

/// Hand `each` every (lexeme, tf) of a record, in order; its flags, TID and length. The
/// whole record is checked: entries within it, none after the last.
fn walk(data: &[u8], mut each: impl FnMut(&[u8], u16)) -> Result<(u8, Tid, u32), RecordError> {
    let (flags, tid) = header(data)?;
    let len = u32::from_le_bytes(data[7..11].try_into().unwrap());
    let n = u16::from_le_bytes(data[11..13].try_into().unwrap()) as usize;
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
            .ok_or(RecordError::Corrupt)
    };
    let mut at = HEADER;
    for _ in 0..n {
        let l = u16_at(at)? as usize;
        let lex = data.get(at + 2..at + 2 + l).ok_or(RecordError::Corrupt)?;
        each(lex, u16_at(at + 2 + l)?);
        at += 4 + l;
    }
    if at != data.len() {
        return Err(RecordError::Corrupt);
    }
    Ok((flags, tid, len))
}

/// A buffered document as a query reads it: its TID, length and dead flag, whether it
/// holds the query's scope term, and each query lexeme's tf in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub tid: Tid,
    pub len: u32,
    pub dead: bool,
    /// Whether it holds the scope term (true for a query without one).
    pub in_scope: bool,
    /// Each query lexeme's tf in it, in the query's order; 0 where it does not hold it.
    pub tfs: Vec<u16>,
}

/// A query's lexemes (distinct) and scope term, sorted, to read records against: a
/// record's lexemes are sorted too, so one merge of the two finds the query's in it
/// without copying any (a query reads every buffered document).
pub struct QueryTerms<'a> {
    /// (lexeme, its position in the query; the scope term's is the number of lexemes)
    sorted: Vec<(&'a [u8], usize)>,
    n: usize,
    scoped: bool,
}

impl<'a> QueryTerms<'a> {
    pub fn new(lexemes: &'a [Vec<u8>], scope: Option<&'a [u8]>) -> QueryTerms<'a> {
        let mut sorted: Vec<(&[u8], usize)> = lexemes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_slice(), i))
            .chain(scope.map(|s| (s, lexemes.len())))
            .collect();
        sorted.sort_unstable();
        QueryTerms {
            sorted,
            n: lexemes.len(),
            scoped: scope.is_some(),
        }
    }

    /// A record as this query needs it (the whole record is still checked).
    pub fn read(&self, data: &[u8]) -> Result<Matched, RecordError> {
        let mut tfs = vec![0u16; self.n + 1];
        let mut q = 0;
        let (flags, tid, len) = walk(data, |lex, tf| {
            while q < self.sorted.len() && self.sorted[q].0 < lex {
                q += 1;
            }
            if q < self.sorted.len() && self.sorted[q].0 == lex {
                tfs[self.sorted[q].1] = tf.max(1);
                q += 1;
            }
        })?;
        let in_scope = !self.scoped || tfs[self.n] > 0;
        tfs.truncate(self.n);
        Ok(Matched {
            tid,
            len,
            dead: flags & DEAD != 0,
            in_scope,
            tfs,
        })
    }
}

/// A record's flags and TID, without decoding its lexemes (VACUUM's read).
pub fn header(data: &[u8]) -> Result<(u8, Tid), RecordError> {
    if data.len() < HEADER {
        return Err(RecordError::Corrupt);
    }
    let block = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let offset = u16::from_le_bytes(data[5..7].try_into().unwrap());
    Ok((data[0], pack_tid(block, offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = Doc::from_entries(pack_tid(7, 3), [(&b"fox"[..], 2), (&b"jump"[..], 0)]).unwrap();
        assert_eq!(d.len, 3);
        assert_eq!(d.terms[1], (b"jump".to_vec(), 1));
        let bytes = d.encode().unwrap();
        assert_eq!(bytes.len(), d.encoded_len());
        assert_eq!(Doc::decode(&bytes).unwrap(), (d.clone(), false));
        let mut dead = bytes.clone();
        dead[0] |= DEAD;
        assert_eq!(Doc::decode(&dead).unwrap(), (d, true));
        assert_eq!(header(&dead).unwrap(), (DEAD, pack_tid(7, 3)));
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        let d = Doc::from_entries(1, [(&b"a"[..], 1)]).unwrap();
        let bytes = d.encode().unwrap();
        assert_eq!(
            Doc::decode(&bytes[..bytes.len() - 1]),
            Err(RecordError::Corrupt)
        );
        assert_eq!(Doc::decode(&bytes[..5]), Err(RecordError::Corrupt));
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(Doc::decode(&longer), Err(RecordError::Corrupt));
        assert!(Doc::from_entries(1, []).is_none());
        let q = [b"a".to_vec()];
        let read = |b: &[u8]| QueryTerms::new(&q, None).read(b);
        assert_eq!(read(&longer), Err(RecordError::Corrupt));
        assert_eq!(read(&longer[..longer.len() - 2]), Err(RecordError::Corrupt));
        assert_eq!(read(&longer[..5]), Err(RecordError::Corrupt));
    }

    #[test]
    fn a_query_reads_its_lexemes_tfs_and_scope_from_a_record() {
        let d = Doc::from_entries(
            pack_tid(2, 9),
            [(&b"cat"[..], 2), (&b"dog"[..], 1), (&b"fox"[..], 4)],
        )
        .unwrap()
        .with_scope(7);
        let mut bytes = d.encode().unwrap();
        let q = [b"fox".to_vec(), b"ant".to_vec(), b"cat".to_vec()];
        let m = QueryTerms::new(&q, None).read(&bytes).unwrap();
        assert_eq!(
            m,
            Matched {
                tid: pack_tid(2, 9),
                len: 7,
                dead: false,
                in_scope: true,
                tfs: vec![4, 0, 2]
            }
        );
        let in_7 = scope_lexeme(7);
        assert!(
            QueryTerms::new(&q, Some(&in_7))
                .read(&bytes)
                .unwrap()
                .in_scope
        );
        let in_8 = scope_lexeme(8);
        let other = QueryTerms::new(&q, Some(&in_8)).read(&bytes).unwrap();
        assert!(!other.in_scope && other.tfs == [4, 0, 2]);
        bytes[0] |= DEAD;
        assert!(QueryTerms::new(&q, None).read(&bytes).unwrap().dead);
        // what decode reads, for every lexeme the record holds
        let all: Vec<Vec<u8>> = d.terms.iter().map(|(l, _)| l.clone()).collect();
        let m = QueryTerms::new(&all, None).read(&bytes).unwrap();
        assert_eq!(m.tfs, d.terms.iter().map(|t| t.1).collect::<Vec<_>>());
    }
}
