//! `hybrid_search` (API.md §3) without a server: options, BM25 over PostgreSQL tsvectors,
//! the choice of which query terms generate text candidates, and fusion of the two legs.
use crate::ParamError;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    Rrf,
    Weighted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    Or,
    And,
    Websearch,
}

/// Smallest candidate pool per leg.
pub const MIN_CANDIDATES: usize = 100;
pub const MAX_CANDIDATES: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    pub fusion: Fusion,
    pub rrf_k: f64,
    pub vector_weight: f64,
    pub text_weight: f64,
    /// Candidates per leg, before `k + offset` is taken into account.
    pub candidates: usize,
    pub offset: usize,
    pub filter: Option<Value>,
    pub user_id: Option<String>,
    pub min_similarity: Option<f64>,
    pub ef_search: Option<i32>,
    pub text_mode: TextMode,
    pub feedback: bool,
    /// Spread scores one hop over promoted edges, with this weight (None: off).
    pub graph: Option<f64>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            fusion: Fusion::Rrf,
            rrf_k: 60.0,
            // Tuned on half of SciFact's train queries (BENCHMARKS.md).
            vector_weight: 0.4,
            text_weight: 0.6,
            candidates: MIN_CANDIDATES,
            offset: 0,
            filter: None,
            user_id: None,
            min_similarity: None,
            ef_search: None,
            text_mode: TextMode::Or,
            feedback: true,
            graph: None,
        }
    }
}

const KEYS: [&str; 14] = [
    "fusion",
    "rrf_k",
    "vector_weight",
    "text_weight",
    "candidates",
    "offset",
    "filter",
    "user_id",
    "min_similarity",
    "ef_search",
    "text_mode",
    "feedback",
    "graph",
    "graph_weight",
];

fn num(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ParamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(Some(x)),
            _ => Err(ParamError::new(
                format!("options.{key}"),
                format!("must be a number within [{lo}, {hi}], got {v}"),
            )),
        },
    }
}

fn int(obj: &Map<String, Value>, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ParamError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(ParamError::new(
                format!("options.{key}"),
                format!("must be an integer within [{lo}, {hi}], got {v}"),
            )),
        },
    }
}

impl SearchOptions {
    pub fn parse(options: Option<&Value>) -> Result<SearchOptions, ParamError> {
        let empty = Map::new();
        let obj = match options {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(v) => {
                return Err(ParamError::new(
                    "options",
                    format!("must be a JSON object, got {v}"),
                ))
            }
        };
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ParamError::new(
                format!("options.{k}"),
                format!("unknown option (allowed: {})", KEYS.join(", ")),
            ));
        }
        let d = SearchOptions::default();
        let fusion = match obj.get("fusion") {
            None | Some(Value::Null) => d.fusion,
            Some(v) => match v.as_str() {
                Some("rrf") => Fusion::Rrf,
                Some("weighted") => Fusion::Weighted,
                _ => {
                    return Err(ParamError::new(
                        "options.fusion",
                        format!("must be 'rrf' or 'weighted', got {v}"),
                    ))
                }
            },
        };
        let text_mode = match obj.get("text_mode") {
            None | Some(Value::Null) => d.text_mode,
            Some(v) => match v.as_str() {
                Some("or") => TextMode::Or,
                Some("and") => TextMode::And,
                Some("websearch") => TextMode::Websearch,
                _ => {
                    return Err(ParamError::new(
                        "options.text_mode",
                        format!("must be 'or', 'and' or 'websearch', got {v}"),
                    ))
                }
            },
        };
        let vector_weight = num(obj, "vector_weight", 0.0, 1e6)?.unwrap_or(d.vector_weight);
        let text_weight = num(obj, "text_weight", 0.0, 1e6)?.unwrap_or(d.text_weight);
        if vector_weight == 0.0 && text_weight == 0.0 {
            return Err(ParamError::new(
                "options.vector_weight",
                "and options.text_weight must not both be 0",
            ));
        }
        let filter = match obj.get("filter") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(v) => {
                return Err(ParamError::new(
                    "options.filter",
                    format!("must be a JSON object (matched with @> on metadata), got {v}"),
                ))
            }
        };
        let user_id = match obj.get("user_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(ParamError::new(
                    "options.user_id",
                    format!("must be text, got {v}"),
                ))
            }
        };
        let feedback = match obj.get("feedback") {
            None | Some(Value::Null) => d.feedback,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ParamError::new(
                    "options.feedback",
                    format!("must be true or false, got {v}"),
                ))
            }
        };
        let graph = match obj.get("graph") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(v) => {
                return Err(ParamError::new(
                    "options.graph",
                    format!("must be true or false, got {v}"),
                ))
            }
        };
        let graph_weight = num(obj, "graph_weight", 0.0, 10.0)?;
        if graph_weight.is_some() && !graph {
            return Err(ParamError::new(
                "options.graph_weight",
                "needs \"graph\": true",
            ));
        }
        Ok(SearchOptions {
            graph: graph.then(|| graph_weight.unwrap_or(0.5)),
            fusion,
            rrf_k: num(obj, "rrf_k", 1e-9, 1e6)?.unwrap_or(d.rrf_k),
            vector_weight,
            text_weight,
            candidates: int(obj, "candidates", 1, MAX_CANDIDATES as i64)?
                .map_or(d.candidates, |c| c as usize),
            offset: int(obj, "offset", 0, 1_000_000)?.map_or(0, |o| o as usize),
            filter,
            user_id,
            min_similarity: num(obj, "min_similarity", -1e6, 1e6)?,
            ef_search: int(obj, "ef_search", 1, 1000)?.map(|e| e as i32),
            text_mode,
            feedback,
        })
    }

    /// Candidates each leg returns: the option, at least `k + offset`, at least 100.
    pub fn pool(&self, k: usize) -> usize {
        self.candidates
            .max(MIN_CANDIDATES)
            .max(k + self.offset)
            .min(MAX_CANDIDATES.max(k + self.offset))
    }
}

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

/// Okapi BM25 with Lucene's non-negative idf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    pub k1: f64,
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25 { k1: 1.2, b: 0.75 }
    }
}

pub fn idf(n: f64, df: f64) -> f64 {
    let df = df.clamp(0.0, n.max(0.0));
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl Bm25 {
    /// Score of one document: `terms` are (lexeme, idf) of the query; `doc` the document's
    /// lexemes with term frequencies; a lexeme without positions counts once. The
    /// document's length is its number of positions (tokens other than stop words).
    /// The reference formula; searches use `score_tsvector`.
    #[cfg(test)]
    pub fn score(&self, terms: &[(String, f64)], doc: &[(&str, u16)], avgdl: f64) -> f64 {
        let dl: f64 = doc.iter().map(|(_, n)| (*n).max(1) as f64).sum();
        let norm = self.k1 * (1.0 - self.b + self.b * dl / avgdl.max(1e-9));
        terms
            .iter()
            .filter_map(|(t, idf)| {
                let tf = doc.iter().find(|(l, _)| l == t)?.1.max(1) as f64;
                Some(idf * tf * (self.k1 + 1.0) / (tf + norm))
            })
            .sum()
    }

    /// BM25 of a tsvector in PostgreSQL's in-memory layout (see `score` for the terms).
    pub fn score_tsvector(&self, terms: &[(String, f64)], doc: &TsVector<'_>, avgdl: f64) -> f64 {
        let norm = self.k1 * (1.0 - self.b + self.b * doc.length() / avgdl.max(1e-9));
        terms
            .iter()
            .map(|(t, idf)| match doc.tf(t.as_bytes()) {
                0 => 0.0,
                tf => idf * tf as f64 * (self.k1 + 1.0) / (tf as f64 + norm),
            })
            .sum()
    }
}

/// Which query terms (sorted rarest first) to fetch text candidates with: rarer terms
/// first while their document frequencies fit in `budget` rows. Terms left out are too
/// common to enumerate; they still count in every candidate's score. At least the rarest
/// term is used.
pub fn essential_terms(dfs: &[f64], budget: f64) -> usize {
    let mut used = 0.0;
    let mut n = 0;
    for &df in dfs {
        if n > 0 && used + df > budget {
            break;
        }
        used += df;
        n += 1;
    }
    n
}

/// Postings per row of the text index: a lexeme's rows in impact order are stored in
/// blocks of this many, so a search reads a term's best rows from one or two index rows.
pub const POSTING_BLOCK: usize = 128;

/// One block of a query term's postings: the term's idf, the position of the block's first
/// posting in the term's impact order, and the rows with their impacts (BM25 term weights
/// without the idf), best first.
pub struct PostingBlock<'a> {
    pub idf: f64,
    pub first: usize,
    pub ids: Vec<&'a str>,
    pub impacts: Vec<f32>,
}

/// The text leg from impact-ordered postings: each term contributes its best `per_term`
/// rows, a row scores the sum of idf × impact over the terms that reach it; the best `pool`
/// rows, best first (ties by id).
pub fn score_blocks<'a>(
    blocks: impl IntoIterator<Item = PostingBlock<'a>>,
    per_term: usize,
    pool: usize,
) -> Vec<LegHit> {
    let mut scores: HashMap<&'a str, f64> = HashMap::with_capacity(4 * per_term);
    for b in blocks {
        let take = per_term.saturating_sub(b.first);
        for (id, impact) in b.ids.into_iter().zip(b.impacts).take(take) {
            *scores.entry(id).or_insert(0.0) += b.idf * impact as f64;
        }
    }
    let mut best: Vec<(&str, f64)> = scores.into_iter().collect();
    let order = |a: &(&str, f64), b: &(&str, f64)| best_first((a.1, a.0), (b.1, b.0));
    if best.len() > pool && pool > 0 {
        best.select_nth_unstable_by(pool - 1, order);
    }
    best.truncate(pool);
    best.sort_unstable_by(order);
    best.into_iter()
        .map(|(id, score)| LegHit {
            id: id.to_owned(),
            score,
        })
        .collect()
}

/// One result of one leg, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct LegHit {
    pub id: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: String,
    pub score: f64,
    pub vector_rank: Option<i32>,
    pub vector_similarity: Option<f64>,
    pub text_rank: Option<i32>,
    pub text_score: Option<f64>,
    pub factor: f64,
}

fn min_max(hits: &[LegHit]) -> impl Fn(f64) -> f64 {
    let lo = hits.iter().map(|h| h.score).fold(f64::INFINITY, f64::min);
    let hi = hits
        .iter()
        .map(|h| h.score)
        .fold(f64::NEG_INFINITY, f64::max);
    move |x| {
        if hi > lo {
            (x - lo) / (hi - lo)
        } else {
            1.0
        }
    }
}

/// Fuse the legs (each best first), multiply by the factors, and order totally: score
/// descending, then id ascending, so pages taken with `offset` never repeat or skip.
pub fn fuse(
    vector: &[LegHit],
    text: &[LegHit],
    opts: &SearchOptions,
    factors: &HashMap<String, f64>,
) -> Vec<Fused> {
    let mut order: Vec<Fused> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slot = |id: &str, order: &mut Vec<Fused>| -> usize {
        *index.entry(id.to_owned()).or_insert_with(|| {
            order.push(Fused {
                id: id.to_owned(),
                score: 0.0,
                vector_rank: None,
                vector_similarity: None,
                text_rank: None,
                text_score: None,
                factor: 1.0,
            });
            order.len() - 1
        })
    };
    let vnorm = min_max(vector);
    let tnorm = min_max(text);
    for (r, h) in vector.iter().enumerate() {
        let i = slot(&h.id, &mut order);
        let f = &mut order[i];
        f.vector_rank = Some(r as i32 + 1);
        f.vector_similarity = Some(h.score);
        f.score += match opts.fusion {
            Fusion::Rrf => 1.0 / (opts.rrf_k + (r + 1) as f64),
            Fusion::Weighted => opts.vector_weight * vnorm(h.score),
        };
    }
    for (r, h) in text.iter().enumerate() {
        let i = slot(&h.id, &mut order);
        let f = &mut order[i];
        f.text_rank = Some(r as i32 + 1);
        f.text_score = Some(h.score);
        f.score += match opts.fusion {
            Fusion::Rrf => 1.0 / (opts.rrf_k + (r + 1) as f64),
            Fusion::Weighted => opts.text_weight * tnorm(h.score),
        };
    }
    for f in &mut order {
        if let Some(&w) = factors.get(&f.id) {
            f.factor = w;
            f.score *= w;
        }
    }
    order.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
    order
}

/// Whether `id` can be the text of an id column of the type named `typname` (pg_type's
/// name). Graph neighbours come from a table shared by every collection; only those that
/// can be ids of this one are looked up in it. Unknown types: none (neighbours then boost
/// rows that are already results, but none joins).
pub fn castable_id(typname: &str, id: &str) -> bool {
    match typname {
        "int2" => id.parse::<i16>().is_ok(),
        "int4" => id.parse::<i32>().is_ok(),
        "int8" => id.parse::<i64>().is_ok(),
        "uuid" => {
            id.len() == 36
                && id.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        "text" | "varchar" | "bpchar" | "name" => true,
        _ => false,
    }
}

/// Edges each seed passes its score along at most, its strongest: a hub with thousands of
/// edges spreads no further than any other seed.
pub const GRAPH_FANOUT: usize = 20;

/// One-hop spread over promoted edges: every fused result among the first `seeds` passes
/// `weight × its score × edge confidence` to each neighbour, which is added to the
/// neighbour's score (a neighbour that no leg returned joins with that score alone, its
/// factor applied). `edges` are `(seed, neighbour, confidence)`, at most `GRAPH_FANOUT` per
/// seed. Scores only grow, from the factor-weighted seed scores, and the order stays total.
pub fn graph_boost(
    fused: &mut Vec<Fused>,
    edges: &[(String, String, f64)],
    weight: f64,
    seeds: usize,
    factors: &HashMap<String, f64>,
) {
    let seed_scores: HashMap<String, f64> = fused
        .iter()
        .take(seeds)
        .map(|f| (f.id.clone(), f.score))
        .collect();
    let mut boost: HashMap<&str, f64> = HashMap::new();
    for (seed, neighbour, conf) in edges {
        if let Some(s) = seed_scores.get(seed) {
            *boost.entry(neighbour.as_str()).or_default() += weight * s * conf;
        }
    }
    for f in fused.iter_mut() {
        if let Some(b) = boost.remove(f.id.as_str()) {
            f.score += b;
        }
    }
    for (id, b) in boost {
        let factor = factors.get(id).copied().unwrap_or(1.0);
        fused.push(Fused {
            id: id.to_owned(),
            score: b * factor,
            vector_rank: None,
            vector_similarity: None,
            text_rank: None,
            text_score: None,
            factor,
        });
    }
    fused.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
}

/// The order of every ranking here: score descending, then id ascending (a total order, so
/// pages never repeat or skip).
fn best_first(a: (f64, &str), b: (f64, &str)) -> Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

/// Order one leg's hits: score descending, then id ascending.
pub fn rank_leg(hits: &mut [LegHit]) {
    hits.sort_by(|a, b| best_first((a.score, &a.id), (b.score, &b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn score_blocks_sums_idf_times_impact_over_each_terms_best_rows() {
        let block = |idf, first, ids: &[&'static str], impacts: &[f32]| PostingBlock {
            idf,
            first,
            ids: ids.to_vec(),
            impacts: impacts.to_vec(),
        };
        let blocks = vec![
            block(2.0, 0, &["a", "b"], &[1.5, 1.0]),
            // second block of the same term: positions 2 and 3, cut at per_term = 3
            block(2.0, 2, &["c", "d"], &[0.5, 0.25]),
            block(1.0, 0, &["b", "d", "e"], &[1.0, 1.0, 0.75]),
        ];
        let hits = score_blocks(blocks, 3, 10);
        let got: Vec<(&str, f64)> = hits.iter().map(|h| (h.id.as_str(), h.score)).collect();
        // d is the first term's 4th row (cut) and the second term's 2nd: 1.0 only
        assert_eq!(
            got,
            vec![("a", 3.0), ("b", 3.0), ("c", 1.0), ("d", 1.0), ("e", 0.75)]
        );
        assert_eq!(score_blocks(Vec::new(), 3, 10), Vec::new());
        let top = score_blocks(
            vec![block(1.0, 0, &["x", "y", "z"], &[1.0, 2.0, 3.0])],
            3,
            2,
        );
        assert_eq!(
            top.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            vec!["z", "y"]
        );
    }

    fn hits(v: &[(&str, f64)]) -> Vec<LegHit> {
        v.iter()
            .map(|(id, s)| LegHit {
                id: (*id).into(),
                score: *s,
            })
            .collect()
    }

    #[test]
    fn options() {
        let o = SearchOptions::parse(Some(&json!({}))).unwrap();
        assert_eq!(o, SearchOptions::default());
        assert_eq!(o.pool(10), 100);
        let o = SearchOptions::parse(Some(&json!({"candidates": 50, "offset": 120}))).unwrap();
        assert_eq!(o.pool(10), 130);
        for (bad, arg) in [
            (json!({"fusion": "max"}), "options.fusion"),
            (json!({"rrf_k": 0}), "options.rrf_k"),
            (json!({"vector_weight": -1}), "options.vector_weight"),
            (
                json!({"vector_weight": 0, "text_weight": 0}),
                "options.vector_weight",
            ),
            (json!({"candidates": 0}), "options.candidates"),
            (json!({"offset": -1}), "options.offset"),
            (json!({"filter": [1]}), "options.filter"),
            (json!({"user_id": 3}), "options.user_id"),
            (json!({"ef_search": 0}), "options.ef_search"),
            (json!({"ef_search": 1001}), "options.ef_search"),
            (json!({"text_mode": "phrase"}), "options.text_mode"),
            (json!({"feedback": "no"}), "options.feedback"),
            (json!({"limit": 3}), "options.limit"),
            (json!(3), "options"),
        ] {
            assert_eq!(
                SearchOptions::parse(Some(&bad)).unwrap_err().arg,
                arg,
                "{bad}"
            );
        }
    }

    /// A tsvector in memory, as PostgreSQL lays it out (lexemes given sorted).
    fn memory_image(entries: &[(&str, &[u16])]) -> Vec<u8> {
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
        assert!(TsVector::new(&img[..6]).is_err());
        let bm = Bm25::default();
        let terms = vec![("cat".to_string(), 1.3), ("dogs".to_string(), 0.4)];
        let doc = [("a", 1u16), ("cat", 3), ("dogs", 1), ("zz", 1)];
        assert!((bm.score_tsvector(&terms, &v, 5.0) - bm.score(&terms, &doc, 5.0)).abs() < 1e-12);
    }

    #[test]
    fn bm25_matches_the_formula() {
        let bm = Bm25 { k1: 1.5, b: 0.75 };
        let doc = [("cat", 2u16), ("purr", 1), ("dog", 1)]; // dl = 4
        let terms = vec![("cat".to_string(), 2.0), ("fish".to_string(), 5.0)];
        let norm = 1.5 * (1.0 - 0.75 + 0.75 * 4.0 / 8.0);
        let want = 2.0 * 2.0 * 2.5 / (2.0 + norm);
        assert!((bm.score(&terms, &doc, 8.0) - want).abs() < 1e-12);
        assert_eq!(bm.score(&[("fish".into(), 5.0)], &doc, 8.0), 0.0);
        assert!((idf(100.0, 1.0) - (1.0f64 + 99.5 / 1.5).ln()).abs() < 1e-12);
        assert!(idf(10.0, 10.0) > 0.0);
    }

    #[test]
    fn essential_terms_fit_the_budget_but_keep_the_rarest() {
        assert_eq!(essential_terms(&[3.0, 10.0, 500.0, 4000.0], 1000.0), 3);
        assert_eq!(essential_terms(&[3000.0, 4000.0], 1000.0), 1);
        assert_eq!(essential_terms(&[], 1000.0), 0);
    }

    #[test]
    fn rrf_fusion_explains_and_orders_totally() {
        let v = hits(&[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        let t = hits(&[("c", 9.0), ("d", 3.0)]);
        let f = fuse(&v, &t, &SearchOptions::default(), &HashMap::new());
        let ids: Vec<_> = f.iter().map(|x| x.id.as_str()).collect();
        // c: 1/63 + 1/61; a: 1/61; b: 1/62 and d: 1/62 tie -> by id
        assert_eq!(ids, ["c", "a", "b", "d"]);
        assert!((f[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-15);
        assert_eq!((f[0].vector_rank, f[0].text_rank), (Some(3), Some(1)));
        assert_eq!((f[3].vector_rank, f[3].text_score), (None, Some(3.0)));
    }

    #[test]
    fn castable_ids_by_column_type() {
        assert!(castable_id("int8", "42") && castable_id("int8", "-9223372036854775808"));
        assert!(!castable_id("int8", "h01") && !castable_id("int4", "3000000000"));
        assert!(castable_id("int2", "7") && !castable_id("int2", "70000"));
        assert!(castable_id("uuid", "0e37df36-f698-11e6-8dd4-cb9ced3df976"));
        assert!(!castable_id("uuid", "0e37df36f69811e68dd4cb9ced3df976"));
        assert!(!castable_id("uuid", "0e37df36-f698-11e6-8dd4-cb9ced3df97g"));
        assert!(castable_id("text", "anything") && castable_id("varchar", ""));
        assert!(!castable_id("numeric", "1"));
    }

    #[test]
    fn graph_boost_spreads_one_hop_from_the_seeds() {
        let opts = SearchOptions::default();
        let v = hits(&[("a", 0.9), ("b", 0.8)]);
        let mut f = fuse(&v, &[], &opts, &HashMap::new());
        let (sa, sb) = (f[0].score, f[1].score);
        let edge = |a: &str, b: &str, c| (a.to_string(), b.to_string(), c);
        let edges = vec![
            edge("a", "z", 0.8),
            // the edge a-b, read from both of its seeds
            edge("b", "a", 0.5),
            edge("a", "b", 0.5),
            edge("y", "x", 1.0), // from a node that is not a seed
        ];
        let factors = HashMap::from([("z".to_string(), 2.0)]);
        graph_boost(&mut f, &edges, 0.5, 10, &factors);
        let got: HashMap<_, _> = f.iter().map(|x| (x.id.as_str(), x.score)).collect();
        assert!((got["a"] - (sa + 0.5 * sb * 0.5)).abs() < 1e-15);
        assert!((got["b"] - (sb + 0.5 * sa * 0.5)).abs() < 1e-15);
        assert!((got["z"] - 0.5 * sa * 0.8 * 2.0).abs() < 1e-15);
        assert!(!got.contains_key("x"));
        assert_eq!(f.iter().find(|x| x.id == "z").unwrap().vector_rank, None);
        let o = SearchOptions::parse(Some(&json!({"graph": true}))).unwrap();
        assert_eq!(o.graph, Some(0.5));
        assert_eq!(
            SearchOptions::parse(Some(&json!({"graph_weight": 1})))
                .unwrap_err()
                .arg,
            "options.graph_weight"
        );
    }

    #[test]
    fn weighted_fusion_normalises_each_leg_and_factors_multiply() {
        let opts = SearchOptions {
            fusion: Fusion::Weighted,
            vector_weight: 0.3,
            text_weight: 0.7,
            ..SearchOptions::default()
        };
        let v = hits(&[("a", 0.9), ("b", 0.5)]);
        let t = hits(&[("b", 10.0), ("c", 5.0)]);
        let factors = HashMap::from([("a".to_string(), 0.5)]);
        let f = fuse(&v, &t, &opts, &factors);
        let got: Vec<_> = f
            .iter()
            .map(|x| (x.id.as_str(), x.score, x.factor))
            .collect();
        assert_eq!(got, [("b", 0.7, 1.0), ("a", 0.15, 0.5), ("c", 0.0, 1.0)]);
    }
}
