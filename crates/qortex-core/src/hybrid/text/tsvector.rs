//! PostgreSQL's tsvector, read in place from its in-memory layout (no conversion).
use std::cmp::Ordering;

/// A tsvector in PostgreSQL's in-memory layout (the bytes after the varlena header):
/// int32 count, `count` WordEntry words (bit 0 haspos, bits 1-11 length, bits 12-31 offset
/// of the lexeme), the lexemes, and after each lexeme (2-byte aligned) a uint16 position
/// count and the positions. Lexemes are sorted bytewise, so lookups are binary searches.
pub struct TsVector<'a> {
    data: &'a [u8],
    count: usize,
}

impl<'a> TsVector<'a> {
    pub fn new(data: &'a [u8]) -> Result<TsVector<'a>, String> {
        let count = i32::from_le_bytes(
            data.get(..4)
                .ok_or("truncated tsvector")?
                .try_into()
                .unwrap(),
        );
        let count = usize::try_from(count).map_err(|_| "negative tsvector size")?;
        if data.len() < 4 + 4 * count {
            return Err("truncated tsvector".into());
        }
        Ok(TsVector { data, count })
    }

    fn entry(&self, i: usize) -> (bool, usize, usize) {
        let w = u32::from_le_bytes(self.data[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        (w & 1 == 1, ((w >> 1) & 0x7ff) as usize, (w >> 12) as usize)
    }

    fn strbase(&self) -> usize {
        4 + 4 * self.count
    }

    fn lexeme(&self, i: usize) -> &'a [u8] {
        let (_, len, pos) = self.entry(i);
        let at = self.strbase() + pos;
        self.data.get(at..at + len).unwrap_or(&[])
    }

    /// Positions of entry `i` (a lexeme stored without positions counts once).
    fn npos(&self, i: usize) -> u16 {
        let (haspos, len, pos) = self.entry(i);
        if !haspos {
            return 1;
        }
        let at = self.strbase() + ((pos + len + 1) & !1);
        self.data
            .get(at..at + 2)
            .map_or(1, |b| u16::from_le_bytes([b[0], b[1]]).max(1))
    }

    /// Its lexemes with their term frequencies (a lexeme without positions counts once),
    /// in the stored (bytewise) order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a [u8], u16)> + '_ {
        (0..self.count).map(|i| (self.lexeme(i), self.npos(i)))
    }

    /// The document's length: its number of positions.
    pub fn length(&self) -> f64 {
        (0..self.count).map(|i| self.npos(i) as f64).sum()
    }

    /// The term frequency of a lexeme (0 if absent).
    pub fn tf(&self, lexeme: &[u8]) -> u16 {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.lexeme(mid).cmp(lexeme) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return self.npos(mid),
            }
        }
        0
    }
}

/// Test helpers: tsvectors built byte for byte as PostgreSQL lays them out.
#[cfg(test)]
pub mod testing {
    /// A tsvector in memory, as PostgreSQL lays it out (lexemes given sorted).
    pub fn memory_image(entries: &[(&str, &[u16])]) -> Vec<u8> {
        let mut words = Vec::new();
        let mut strings: Vec<u8> = Vec::new();
        for (l, pos) in entries {
            let offset = strings.len();
            strings.extend_from_slice(l.as_bytes());
            if !pos.is_empty() {
                if strings.len() % 2 == 1 {
                    strings.push(0);
                }
                strings.extend_from_slice(&(pos.len() as u16).to_le_bytes());
                for p in *pos {
                    strings.extend_from_slice(&p.to_le_bytes());
                }
            }
            let haspos = u32::from(!pos.is_empty());
            words.push(haspos | ((l.len() as u32) << 1) | ((offset as u32) << 12));
        }
        let mut b = (entries.len() as i32).to_le_bytes().to_vec();
        for w in words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&strings);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testing::memory_image;
    use super::*;

    #[test]
    fn tsvector_memory_layout() {
        let img = memory_image(&[
            ("a", &[3]),
            ("cat", &[1, 4, 9]),
            ("dogs", &[2]),
            ("zz", &[]),
        ]);
        let v = TsVector::new(&img).unwrap();
        assert_eq!(
            (v.tf(b"cat"), v.tf(b"dogs"), v.tf(b"a"), v.tf(b"zz")),
            (3, 1, 1, 1)
        );
        assert_eq!(
            (v.tf(b"ca"), v.tf(b"cats"), v.tf(b"b"), v.tf(b"zzz")),
            (0, 0, 0, 0)
        );
        assert_eq!(v.length(), 6.0);
        let entries: Vec<(&[u8], u16)> = v.entries().collect();
        assert_eq!(
            entries,
            [(&b"a"[..], 1), (b"cat", 3), (b"dogs", 1), (b"zz", 1)]
        );
        assert!(TsVector::new(&img[..6]).is_err());
    }
}
