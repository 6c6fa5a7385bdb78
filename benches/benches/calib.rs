//! Histogram update throughput of calibration observers (DESIGN.md §6): one activation-sized
//! slice (1M f32, the size of a mid-network feature map) per sample into a 2048-bin state,
//! serial path (below the parallel threshold) and the rayon path, plus an exact merge.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qopt_calib::{ObserverConfig, Statistics};
use std::hint::black_box;

fn signal(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            (u - 0.3) * 8.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("observer_update");
    for &n in &[60_000usize, 1_000_000] {
        let xs = signal(n, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_f32_2048_bins"), |b| {
            let mut s = ObserverConfig::default().new_state().unwrap();
            b.iter(|| s.update(black_box(&xs)))
        });
    }
    g.finish();
    let mut a = ObserverConfig::default().new_state().unwrap();
    let mut b2 = ObserverConfig::default().new_state().unwrap();
    a.update(&signal(100_000, 2));
    b2.update(
        &signal(100_000, 3)
            .iter()
            .map(|x| x * 3.0)
            .collect::<Vec<_>>(),
    );
    c.bench_function("observer_merge_2048_bins", |b| {
        b.iter(|| {
            let mut m = a.clone();
            m.merge(black_box(&b2)).unwrap();
            m
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
