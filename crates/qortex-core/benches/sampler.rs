//! Per-draw cost of the Thompson sampler and of a whole selection.
//!
//!     cargo bench -p qortex-core --bench sampler
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use qortex_core::bandit::{rng_for, select, Candidate, SelectRequest};
use rand::Rng;
use rand_distr::{Beta, Distribution};

fn arms(n: usize) -> Vec<Candidate> {
    let mut rng = rng_for(Some(7));
    (0..n)
        .map(|_| Candidate {
            alpha: 1.0 + rng.gen_range(0.0..50.0),
            beta: 1.0 + rng.gen_range(0.0..50.0),
            pulls: 10,
            token_cost: 0,
        })
        .collect()
}

fn request(k: usize) -> SelectRequest {
    SelectRequest {
        k: Some(k),
        token_budget: None,
        baseline_rate: 0.0,
        min_pulls: 0,
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = rng_for(Some(1));
    c.bench_function("one Beta(12.5, 30.5) draw", |b| {
        let d = Beta::new(12.5, 30.5).unwrap();
        b.iter(|| black_box(d.sample(&mut rng)))
    });
    c.bench_function("one Beta(1, 1) draw (fresh arm)", |b| {
        let d = Beta::new(1.0, 1.0).unwrap();
        b.iter(|| black_box(d.sample(&mut rng)))
    });
    // A call with `seed` builds its generator; unseeded calls share one per backend.
    c.bench_function("seeding a generator (select with seed)", |b| {
        b.iter(|| black_box(rng_for(Some(black_box(42)))))
    });
    let mut g = c.benchmark_group("select");
    for (n, k) in [(10, 1), (1000, 5), (1000, 1000)] {
        let cands = arms(n);
        let req = request(k);
        g.bench_with_input(BenchmarkId::new(format!("top-{k} of"), n), &n, |b, _| {
            b.iter(|| black_box(select(&cands, &req, &mut rng).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
