//! Criterion benches of the fp32 interpreter's heavy kernels, single-threaded, at shapes taken
//! from EfficientNet-Lite0 and PP-OCRv4 det: `cargo bench -p qopt-benches --bench interp_kernels`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qopt_interp::kernels::activation::Activation;
use qopt_interp::kernels::conv::{ConvGeometry, conv2col};
use qopt_interp::kernels::depthwise::depthwise;
use qopt_interp::kernels::gemm::{Bias, Epilogue, MatRef, sgemm};

fn geom(c_in: usize, c_out: usize, group: usize, hw: usize, k: usize, s: usize) -> ConvGeometry {
    let p = k / 2;
    let o = (hw + 2 * p - k) / s + 1;
    ConvGeometry {
        batch: 1,
        c_in,
        c_out,
        group,
        in_sp: vec![hw, hw],
        out_sp: vec![o, o],
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pad_begin: vec![p as isize, p as isize],
    }
}

fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
}

fn conv(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let pool = one_thread();
    let x = data(g.batch * g.c_in * g.in_len());
    let w = data(g.c_out * g.c_in_g() * g.k_len());
    let b = data(g.c_out);
    let mut y = vec![0f32; g.batch * g.c_out * g.out_len()];
    let flops = 2 * g.c_out * g.c_in_g() * g.k_len() * g.out_len();
    let mut grp = c.benchmark_group("conv");
    grp.throughput(Throughput::Elements(flops as u64));
    let pad: Vec<usize> = g.pad_begin.iter().map(|&p| p as usize).collect();
    grp.bench_function(name, |bn| {
        bn.iter(|| {
            pool.install(|| {
                if g.group > 1 {
                    depthwise(
                        &g,
                        &pad,
                        &x,
                        &w,
                        Some(&b),
                        Activation::Clip(0.0, 6.0),
                        &mut y,
                    )
                } else {
                    conv2col(
                        &g,
                        &x,
                        &w,
                        &mut y,
                        &Epilogue {
                            bias: Bias::Row(&b),
                            act: Activation::Clip(0.0, 6.0),
                        },
                    )
                }
            })
        })
    });
    grp.finish();
}

fn kernels(c: &mut Criterion) {
    // PP-OCRv4 det head: 96 -> 24 channels, 3x3, 160x160 (im2col + GEMM).
    conv(c, "3x3_96to24_160", geom(96, 24, 1, 160, 3, 1));
    // EfficientNet-Lite0 stem: 3 -> 32, 3x3 stride 2, 224x224.
    conv(c, "3x3s2_3to32_224", geom(3, 32, 1, 224, 3, 2));
    // Depthwise 3x3: 144 channels at 56x56; 96 channels stride 2 at 112x112.
    conv(c, "dw3x3_144_56", geom(144, 144, 144, 56, 3, 1));
    conv(c, "dw3x3s2_96_112", geom(96, 96, 96, 112, 3, 2));
    // 1x1: 24 -> 144 at 56x56; 320 -> 1280 at 7x7 (plain GEMM, no im2col).
    conv(c, "1x1_24to144_56", geom(24, 144, 1, 56, 1, 1));
    conv(c, "1x1_320to1280_7", geom(320, 1280, 1, 7, 1, 1));

    let pool = one_thread();
    let mut grp = c.benchmark_group("gemm");
    for &(m, k, n) in &[
        (256usize, 256usize, 256usize),
        (1, 1280, 1000),
        (512, 64, 512),
    ] {
        let (a, b) = (data(m * k), data(k * n));
        let mut y = vec![0f32; m * n];
        grp.throughput(Throughput::Elements((2 * m * k * n) as u64));
        grp.bench_function(format!("{m}x{k}x{n}"), |bn| {
            bn.iter(|| {
                pool.install(|| {
                    sgemm(
                        m,
                        n,
                        k,
                        1.0,
                        MatRef::row_major(&a, k),
                        MatRef::row_major(&b, n),
                        false,
                        &mut y,
                        n,
                        &Epilogue::default(),
                    )
                })
            })
        });
    }
    grp.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = kernels
}
criterion_main!(benches);
