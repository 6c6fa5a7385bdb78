//! INT8 kernel benches (issue 6): GEMM shapes from real convolutions, 1x1 convs (the pointwise
//! path: the input is the GEMM operand) and depthwise 3x3/5x5 convs, per kernel family this CPU runs, against the `gemm` crate's f32 GEMM on the same shapes.
//!
//! Throughput is reported in operations (2 per multiply-accumulate), so criterion's "elem/s" reads
//! as OP/s. After the criterion groups, a summary table (own timing, median of repeated runs, one
//! thread) prints GOP/s, the fraction of this CPU's AVX2 peak and the int8/f32 ratio, all measured
//! in this one run.
//!
//! Run: `cargo bench -p qopt-benches --bench int8_kernels` (add `-- --quick` for a short run;
//! `QOPT_BENCH_SUMMARY_ONLY=1` skips the criterion groups).

use criterion::{BenchmarkId, Criterion, Throughput};
use qopt_interp::kernels::int8::{
    ActMatrix, BLayout, Conv2d, Conv2dGeometry, ConvParams, Depthwise, KernelKind, OutMatrix,
    PackedB, QClamp, Requantize, gemm,
};
use std::time::Instant;

/// (name, M, K, N): M output pixels, K = taps x input channels, N = output channels.
const GEMM_SHAPES: &[(&str, usize, usize, usize)] = &[
    ("conv3x3_56x56_16to24", 3136, 144, 24),
    ("conv3x3_14x14_128to192", 196, 1152, 192),
    ("fc_1280to1000", 1, 1280, 1000),
    ("pw_28x28_144to40", 784, 144, 40),
];

fn rand_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The kernel families this CPU runs (`QOPT_BENCH_KIND=name` keeps only that one, e.g. `avx2`).
fn kinds() -> Vec<KernelKind> {
    let only = std::env::var("QOPT_BENCH_KIND").unwrap_or_default();
    KernelKind::ALL
        .into_iter()
        .filter(|k| only.is_empty() || k.name() == only)
        .filter(|k| {
            let ok = k.is_supported();
            if !ok {
                eprintln!("SKIP: {k} kernels unsupported on this CPU");
            }
            ok
        })
        .collect()
}

struct GemmCase {
    a: Vec<u8>,
    packed: PackedB,
    epi: Requantize<u8>,
    out: Vec<u8>,
    m: usize,
    k: usize,
}

impl GemmCase {
    fn new(kind: KernelKind, m: usize, k: usize, n: usize) -> GemmCase {
        let a = rand_bytes(1, m * k);
        let w: Vec<i8> = rand_bytes(2, k * n).into_iter().map(|v| v as i8).collect();
        let packed = PackedB::new(kind, &w, k, n, BLayout::NxK, &[0]).unwrap();
        let mult: Vec<f32> = (0..n).map(|i| 1e-4 * (1.0 + i as f32 / n as f32)).collect();
        let bias: Vec<i32> = (0..n as i32).map(|i| i * 100 - 5000).collect();
        let epi = Requantize::new(n, &mult, Some(&bias), 3, QClamp::relu::<u8>(3)).unwrap();
        GemmCase {
            a,
            packed,
            epi,
            out: vec![0; m * n],
            m,
            k,
        }
    }
    fn run(&mut self) {
        let act = ActMatrix {
            data: &self.a,
            rows: self.m,
            stride: self.k,
            zero_point: 128u8,
        };
        let n = self.packed.n();
        gemm(
            &act,
            &self.packed,
            &self.epi,
            &mut OutMatrix {
                data: &mut self.out,
                stride: n,
            },
        )
        .unwrap();
    }
}

struct F32Case {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    m: usize,
    k: usize,
    n: usize,
}

impl F32Case {
    fn new(m: usize, k: usize, n: usize) -> F32Case {
        let a = rand_bytes(1, m * k)
            .into_iter()
            .map(|v| v as f32 / 255.0)
            .collect();
        let b = rand_bytes(2, k * n)
            .into_iter()
            .map(|v| v as f32 / 255.0 - 0.5)
            .collect();
        F32Case {
            a,
            b,
            c: vec![0.0; m * n],
            m,
            k,
            n,
        }
    }
    fn run(&mut self) {
        let (m, k, n) = (self.m, self.k, self.n);
        // SAFETY: row-major m x k, k x n, m x n buffers of exactly those sizes.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                k,
                self.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.a.as_ptr(),
                1,
                k as isize,
                self.b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                ::gemm::Parallelism::None,
            );
        }
    }
}

struct DwCase {
    input: Vec<u8>,
    dw: Depthwise,
    epi: Requantize<u8>,
    out: Vec<u8>,
}

/// Depthwise convs of efficientnet_lite0 / MobileNet (name, H, W, C, kernel, stride): a wide
/// stride-1 layer, a stride-2 one, and a 7-wide one (every output in the kernel's row-tail path).
const DW_SHAPES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("depthwise3x3_112x112x32", 112, 112, 32, 3, 1),
    ("depthwise3x3s2_112x112x96", 112, 112, 96, 3, 2),
    ("depthwise5x5_14x14x672", 14, 14, 672, 5, 1),
    ("depthwise5x5_7x7x1152", 7, 7, 1152, 5, 1),
];

impl DwCase {
    fn new(
        kind: KernelKind,
        (_, h, w, c, k, s): (&str, usize, usize, usize, usize, usize),
    ) -> DwCase {
        let params = ConvParams::new([k, k])
            .stride([s, s])
            .pads([k / 2, k / 2, k / 2, k / 2])
            .groups(c);
        let geom = Conv2dGeometry::new(1, h, w, c, c, params).unwrap();
        let weights: Vec<i8> = rand_bytes(3, c * k * k)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let dw = Depthwise::new(kind, geom, &weights, &[0]).unwrap();
        let mult: Vec<f32> = (0..c).map(|i| 1e-3 * (1.0 + i as f32 / c as f32)).collect();
        let epi = Requantize::new(
            c,
            &mult,
            None,
            0,
            QClamp::clip::<u8>(Some(0.0), Some(6.0), 0.03, 0),
        )
        .unwrap();
        DwCase {
            input: rand_bytes(4, h * w * c),
            dw,
            epi,
            out: vec![0; geom.output_len()],
        }
    }
    fn run(&mut self) {
        self.dw
            .run(&self.input, 7u8, &self.epi, &mut self.out)
            .unwrap();
    }
    fn ops(&self) -> u64 {
        let [kh, kw] = self.dw.geometry().params.kernel;
        (2 * self.out.len() * kh * kw) as u64
    }
}

/// 1x1 convs of efficientnet_lite0 (name, H, W, C in, C out): the conv reads the NHWC input as
/// the GEMM's activation matrix directly (no im2col), so this is the packed GEMM plus the conv
/// driver.
const PW_SHAPES: &[(&str, usize, usize, usize, usize)] = &[
    ("conv1x1_112x112_16to96", 112, 112, 16, 96),
    ("conv1x1_112x112_32to16", 112, 112, 32, 16),
    ("conv1x1_56x56_24to144", 56, 56, 24, 144),
    ("conv1x1_56x56_144to24", 56, 56, 144, 24),
    ("conv1x1_14x14_112to672", 14, 14, 112, 672),
    ("conv1x1_7x7_1152to192", 7, 7, 1152, 192),
];

struct PwCase {
    input: Vec<u8>,
    conv: Conv2d,
    epi: Requantize<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    ops: u64,
}

impl PwCase {
    fn new(kind: KernelKind, (_, h, w, c, o): (&str, usize, usize, usize, usize)) -> PwCase {
        let geom = Conv2dGeometry::new(1, h, w, c, o, ConvParams::new([1, 1])).unwrap();
        let weights: Vec<i8> = rand_bytes(8, o * c).into_iter().map(|v| v as i8).collect();
        let conv = Conv2d::new(kind, geom, &weights, &[0]).unwrap();
        let epi = Requantize::new(o, &[2e-4], None, 3, QClamp::none::<u8>()).unwrap();
        PwCase {
            input: rand_bytes(9, h * w * c),
            conv,
            epi,
            out: vec![0; h * w * o],
            scratch: Vec::new(),
            ops: (2 * h * w * c * o) as u64,
        }
    }
    fn run(&mut self) {
        self.conv
            .run(
                &self.input,
                5u8,
                &self.epi,
                &mut self.out,
                &mut self.scratch,
            )
            .unwrap();
    }
}

struct ConvCase {
    input: Vec<u8>,
    conv: Conv2d,
    epi: Requantize<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

// The 3x3 conv behind the first GEMM shape, with im2col included: 56x56x16 -> 56x56x24.
impl ConvCase {
    fn new(kind: KernelKind) -> ConvCase {
        let params = ConvParams::new([3, 3]).pads([1, 1, 1, 1]);
        let geom = Conv2dGeometry::new(1, 56, 56, 16, 24, params).unwrap();
        let weights: Vec<i8> = rand_bytes(5, 24 * 16 * 9)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let conv = Conv2d::new(kind, geom, &weights, &[0]).unwrap();
        let epi = Requantize::new(24, &[2e-4], None, 0, QClamp::none::<u8>()).unwrap();
        ConvCase {
            input: rand_bytes(6, 56 * 56 * 16),
            conv,
            epi,
            out: vec![0; 56 * 56 * 24],
            scratch: Vec::new(),
        }
    }
    fn run(&mut self) {
        self.conv
            .run(
                &self.input,
                9u8,
                &self.epi,
                &mut self.out,
                &mut self.scratch,
            )
            .unwrap();
    }
    fn ops() -> u64 {
        2 * 3136 * 144 * 24
    }
}

fn criterion_groups(c: &mut Criterion) {
    for &(name, m, k, n) in GEMM_SHAPES {
        let mut g = c.benchmark_group(format!("int8_gemm/{name}"));
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.sample_size(20);
        for kind in kinds() {
            let mut case = GemmCase::new(kind, m, k, n);
            g.bench_function(BenchmarkId::new("u8xi8", kind), |b| b.iter(|| case.run()));
        }
        let mut f = F32Case::new(m, k, n);
        g.bench_function(BenchmarkId::new("f32_gemm_crate", "f32"), |b| {
            b.iter(|| f.run())
        });
        g.finish();
    }
    for &shape in DW_SHAPES {
        let mut g = c.benchmark_group(format!("int8_depthwise/{}", shape.0));
        g.sample_size(20);
        for kind in kinds() {
            let mut case = DwCase::new(kind, shape);
            g.throughput(Throughput::Elements(case.ops()));
            g.bench_function(BenchmarkId::new("u8", kind), |b| b.iter(|| case.run()));
        }
        g.finish();
    }
    for &shape in PW_SHAPES {
        let mut g = c.benchmark_group(format!("int8_conv1x1/{}", shape.0));
        g.sample_size(20);
        for kind in kinds() {
            let mut case = PwCase::new(kind, shape);
            g.throughput(Throughput::Elements(case.ops));
            g.bench_function(BenchmarkId::new("u8", kind), |b| b.iter(|| case.run()));
        }
        g.finish();
    }
    let mut g = c.benchmark_group("int8_conv3x3_im2col/56x56x16to24");
    g.throughput(Throughput::Elements(ConvCase::ops()));
    g.sample_size(20);
    for kind in kinds() {
        let mut case = ConvCase::new(kind);
        g.bench_function(BenchmarkId::new("u8", kind), |b| b.iter(|| case.run()));
    }
    g.finish();
}

/// On-CPU nanoseconds of this thread (CLOCK_THREAD_CPUTIME_ID): on a shared machine wall time
/// includes waiting for the core, on-CPU time does not.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Seconds per call: (median wall, best on-CPU) over 15 batches of ~20 ms. The best on-CPU batch is
/// the least disturbed by other processes sharing the core (cache evictions, migrations).
fn time_it(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut reps = 0u32;
    while start.elapsed().as_secs_f64() < 0.02 {
        f();
        reps += 1;
    }
    let per_batch = reps.max(1);
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..15)
        .map(|_| {
            let c0 = thread_cpu_ns();
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            let w = t.elapsed().as_secs_f64() / per_batch as f64;
            let c = match (c0, thread_cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 * 1e-9 / per_batch as f64,
                _ => w,
            };
            (w, c)
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], cpu[0])
}

fn cpu_mhz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// The clock the core actually runs at (it may boost above /proc/cpuinfo's nominal MHz): a chain of
/// dependent `add`s retires one per cycle, so on-CPU time per add is one cycle.
#[cfg(target_arch = "x86_64")]
fn measured_mhz() -> Option<f64> {
    let run = |iters: u64| {
        let c0 = thread_cpu_ns()?;
        let mut x = 0u64;
        // SAFETY: register-only arithmetic.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) iters => _,
                options(nomem, nostack),
            );
        }
        std::hint::black_box(x);
        Some((thread_cpu_ns()? - c0) as f64)
    };
    let iters = 20_000_000u64;
    // Best of a few runs: the least disturbed by other processes.
    let best = (0..5)
        .filter_map(|_| run(iters))
        .fold(f64::INFINITY, f64::min);
    Some(8.0 * iters as f64 / best * 1e3)
}

#[cfg(not(target_arch = "x86_64"))]
fn measured_mhz() -> Option<f64> {
    None
}

fn summary() {
    let nominal = cpu_mhz().unwrap_or(0.0);
    let mhz = measured_mhz().unwrap_or(nominal);
    println!(
        "\nclock: {nominal:.0} MHz nominal (/proc/cpuinfo), {mhz:.0} MHz measured (dependent-add chain); peaks use the measured clock"
    );
    // AVX2 exact int8 peak: 2 vector-multiply instructions (vpmaddwd) per cycle x 16 MACs x 2 ops.
    // The nominal `vpmaddubsw` figure (32 MACs each, ignoring the widening it needs) is twice that.
    let exact_peak = mhz * 1e-3 * 64.0;
    let f32_peak = mhz * 1e-3 * 32.0; // 2 FMA x 8 lanes x 2 ops
    println!(
        "\n== int8 kernel summary: one thread, {mhz:.0} MHz; peaks: AVX2 exact int8 {exact_peak:.0} GOP/s \
         (nominal vpmaddubsw {:.0}), f32 FMA {f32_peak:.0} GFLOP/s ==",
        2.0 * exact_peak
    );
    println!(
        "GOP/s from wall time and from on-CPU time (the machine may be shared); %peak and ratio use on-CPU time"
    );
    println!(
        "{:<30} {:>7} {:>10} {:>10} {:>10} {:>7} {:>8}",
        "case", "kernel", "wall(us)", "GOP/s wall", "GOP/s cpu", "%peak", "vs f32"
    );
    // QOPT_BENCH_FILTER=substring limits the summary to matching cases (for profiling).
    let filter = std::env::var("QOPT_BENCH_FILTER").unwrap_or_default();
    let wanted = |name: &str| name.contains(filter.as_str());
    let row = |name: &str, kernel: &str, ops: f64, (w, c): (f64, f64), peak: f64, ratio: String| {
        println!(
            "{:<30} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>6.0}% {:>8}",
            name,
            kernel,
            w * 1e6,
            ops / w * 1e-9,
            ops / c * 1e-9,
            100.0 * ops / c * 1e-9 / peak,
            ratio
        );
    };
    for &(name, m, k, n) in GEMM_SHAPES.iter().filter(|s| wanted(s.0)) {
        let ops = (2 * m * n * k) as f64;
        let mut f = F32Case::new(m, k, n);
        let tf = time_it(|| f.run());
        row(name, "f32", ops, tf, f32_peak, "1.00x".into());
        for kind in kinds() {
            let mut case = GemmCase::new(kind, m, k, n);
            let t = time_it(|| case.run());
            row(
                name,
                kind.name(),
                ops,
                t,
                exact_peak,
                format!("{:.2}x", tf.1 / t.1),
            );
        }
    }
    for &shape in DW_SHAPES.iter().filter(|s| wanted(s.0)) {
        for kind in kinds() {
            let mut case = DwCase::new(kind, shape);
            let ops = case.ops() as f64;
            let t = time_it(|| case.run());
            row(shape.0, kind.name(), ops, t, exact_peak, "-".into());
        }
    }
    for &shape in PW_SHAPES.iter().filter(|s| wanted(s.0)) {
        for kind in kinds() {
            let mut case = PwCase::new(kind, shape);
            let ops = case.ops as f64;
            let t = time_it(|| case.run());
            row(shape.0, kind.name(), ops, t, exact_peak, "-".into());
        }
    }
    for kind in kinds()
        .into_iter()
        .filter(|_| wanted("conv3x3+im2col_56x56_16to24"))
    {
        let mut case = ConvCase::new(kind);
        let t = time_it(|| case.run());
        row(
            "conv3x3+im2col_56x56_16to24",
            kind.name(),
            ConvCase::ops() as f64,
            t,
            exact_peak,
            "-".into(),
        );
    }
    if wanted("multiply_schemes") {
        multiply_scheme_summary(mhz);
    }
}

/// The AVX2 multiply schemes, measured on one 6x16 (or 4x16) register tile with operands in L1,
/// so the figures are the microkernels' own throughput (no packing, no epilogue):
/// - `vpmaddwd` on i16 operands: the library's kernel (exact for all inputs);
/// - plain `vpmaddubsw` + `vpmaddwd(1)`: the textbook chain, NOT exact (i16 saturation);
/// - `vpmaddubsw` with the weights split as `b = 2*(b>>1) + (b&1)` so each product pair fits i16,
///   both halves widened with `vpmaddwd`: exact, one way to rescue `vpmaddubsw`.
#[cfg(target_arch = "x86_64")]
mod multiply_schemes {
    use std::arch::x86_64::*;

    pub const K: usize = 256;

    #[target_feature(enable = "avx2")]
    pub unsafe fn maddwd_6x16(a: &[i16], b: &[i16], reps: usize) -> i32 {
        let mut acc = [[_mm256_setzero_si256(); 2]; 6];
        for _ in 0..reps {
            for p in 0..K / 2 {
                // SAFETY: a holds 6 rows of K i16, b K/2 pairs x 32 i16.
                unsafe {
                    let b0 = _mm256_loadu_si256(b.as_ptr().add(p * 32).cast());
                    let b1 = _mm256_loadu_si256(b.as_ptr().add(p * 32 + 16).cast());
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32(
                            a.as_ptr().add(r * K + 2 * p).cast::<i32>().read_unaligned(),
                        );
                        row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(av, b0));
                        row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(av, b1));
                    }
                }
            }
        }
        fold(acc.as_flattened())
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn maddubsw_6x16(a: &[u8], b: &[i8], reps: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; 6];
        for _ in 0..reps {
            for q in 0..K / 4 {
                // SAFETY: a holds 6 rows of K bytes, b K/4 quads x 64 bytes.
                unsafe {
                    let b0 = _mm256_loadu_si256(b.as_ptr().add(q * 64).cast());
                    let b1 = _mm256_loadu_si256(b.as_ptr().add(q * 64 + 32).cast());
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32(
                            a.as_ptr().add(r * K + 4 * q).cast::<i32>().read_unaligned(),
                        );
                        row[0] = _mm256_add_epi32(
                            row[0],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones),
                        );
                        row[1] = _mm256_add_epi32(
                            row[1],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones),
                        );
                    }
                }
            }
        }
        fold(acc.as_flattened())
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn maddubsw_split_4x16(a: &[u8], bh: &[i8], bl: &[i8], reps: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let twos = _mm256_set1_epi16(2);
        let mut acc = [[_mm256_setzero_si256(); 2]; 4];
        for _ in 0..reps {
            for q in 0..K / 4 {
                // SAFETY: as above, with the two halves of b.
                unsafe {
                    let h0 = _mm256_loadu_si256(bh.as_ptr().add(q * 64).cast());
                    let h1 = _mm256_loadu_si256(bh.as_ptr().add(q * 64 + 32).cast());
                    let l0 = _mm256_loadu_si256(bl.as_ptr().add(q * 64).cast());
                    let l1 = _mm256_loadu_si256(bl.as_ptr().add(q * 64 + 32).cast());
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32(
                            a.as_ptr().add(r * K + 4 * q).cast::<i32>().read_unaligned(),
                        );
                        let hi0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, h0), twos);
                        let lo0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, l0), ones);
                        let hi1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, h1), twos);
                        let lo1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, l1), ones);
                        row[0] = _mm256_add_epi32(row[0], _mm256_add_epi32(hi0, lo0));
                        row[1] = _mm256_add_epi32(row[1], _mm256_add_epi32(hi1, lo1));
                    }
                }
            }
        }
        fold(acc.as_flattened())
    }

    #[target_feature(enable = "avx2")]
    fn fold(acc: &[__m256i]) -> i32 {
        let mut lanes = [0i32; 8];
        let sum = acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, v| _mm256_add_epi32(s, *v));
        // SAFETY: lanes holds 8 i32.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
        lanes.iter().fold(0i32, |s, v| s.wrapping_add(*v))
    }
}

#[cfg(target_arch = "x86_64")]
fn multiply_scheme_summary(mhz: f64) {
    use multiply_schemes::*;
    if !KernelKind::Avx2.is_supported() {
        eprintln!("SKIP: multiply-scheme comparison needs AVX2");
        return;
    }
    let a8 = rand_bytes(11, 6 * K);
    let a16: Vec<i16> = a8.iter().map(|&v| v as i16).collect();
    let b8: Vec<i8> = rand_bytes(12, K * 16)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let b16: Vec<i16> = b8.iter().map(|&v| v as i16).collect();
    let bh: Vec<i8> = b8.iter().map(|&v| v >> 1).collect();
    let bl: Vec<i8> = b8.iter().map(|&v| v & 1).collect();
    let reps = 200;
    let report = |name: &str, rows: usize, t: (f64, f64)| {
        let macs = (rows * 16 * K * reps) as f64;
        println!(
            "{:<46} {:>8.1} GMAC/s {:>6.1} MAC/cycle",
            name,
            macs / t.1 * 1e-9,
            macs / t.1 / (mhz * 1e6)
        );
    };
    println!("\n== AVX2 multiply schemes, one register tile, operands in L1 (on-CPU time) ==");
    // SAFETY (all three): AVX2 checked above; buffer sizes as the kernels expect.
    let t = time_it(|| {
        std::hint::black_box(unsafe { maddwd_6x16(&a16, &b16, reps) });
    });
    report("vpmaddwd i16 6x16 (qopt, exact)", 6, t);
    let t = time_it(|| {
        std::hint::black_box(unsafe { maddubsw_6x16(&a8, &b8, reps) });
    });
    report("vpmaddubsw+vpmaddwd(1) 6x16 (saturates: wrong)", 6, t);
    let t = time_it(|| {
        std::hint::black_box(unsafe { maddubsw_split_4x16(&a8, &bh, &bl, reps) });
    });
    report("vpmaddubsw, weights split 2*hi+lo 4x16 (exact)", 4, t);
}

#[cfg(not(target_arch = "x86_64"))]
fn multiply_scheme_summary(_mhz: f64) {}

fn main() {
    if std::env::var_os("QOPT_BENCH_SUMMARY_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c);
        c.final_summary();
    }
    summary();
}
