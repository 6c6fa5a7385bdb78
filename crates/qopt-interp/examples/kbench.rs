//! Quick kernel timings for tuning (the criterion benches in `benches/` are the reference).
use qopt_interp::kernels::activation::Activation;
use qopt_interp::kernels::conv::{ConvGeometry, conv2col};
use qopt_interp::kernels::depthwise::depthwise;
use qopt_interp::kernels::gemm::{Bias, Epilogue};
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e3
}

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

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        for &(c, hw, k, s) in &[
            (96usize, 112usize, 3usize, 2usize),
            (144, 56, 3, 1),
            (144, 56, 5, 2),
            (672, 14, 5, 1),
            (1152, 7, 5, 1),
            (32, 112, 3, 1),
        ] {
            let g = geom(c, c, c, hw, k, s);
            let x = vec![0.5f32; c * hw * hw];
            let w = vec![0.1f32; c * k * k];
            let b = vec![0.0f32; c];
            let mut y = vec![0f32; c * g.out_len()];
            let p = k / 2;
            let ms = time(|| {
                depthwise(
                    &g,
                    &[p, p],
                    &x,
                    &w,
                    Some(&b),
                    Activation::Clip(0.0, 6.0),
                    &mut y,
                )
            });
            let fl = 2.0 * (c * g.out_len() * k * k) as f64;
            println!(
                "dw c{c} {hw}x{hw} k{k} s{s}: {ms:.3} ms {:.1} GF/s",
                fl / ms / 1e6
            );
        }
        for &(ci, co, hw) in &[
            (16usize, 96usize, 112usize),
            (96, 24, 56),
            (24, 144, 56),
            (144, 24, 56),
            (40, 240, 28),
            (192, 1152, 7),
            (320, 1280, 7),
        ] {
            let g = geom(ci, co, 1, hw, 1, 1);
            let x = vec![0.5f32; ci * hw * hw];
            let w = vec![0.1f32; co * ci];
            let b = vec![0.0f32; co];
            let mut y = vec![0f32; co * g.out_len()];
            let ms = time(|| {
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
            });
            let fl = 2.0 * (ci * co * hw * hw) as f64;
            println!(
                "1x1 {ci}->{co} {hw}x{hw}: {ms:.3} ms {:.1} GF/s",
                fl / ms / 1e6
            );
        }
        let g = geom(3, 32, 1, 224, 3, 2);
        let x = vec![0.5f32; 3 * 224 * 224];
        let w = vec![0.1f32; 32 * 27];
        let mut y = vec![0f32; 32 * g.out_len()];
        let ms = time(|| conv2col(&g, &x, &w, &mut y, &Epilogue::default()));
        println!(
            "3x3 stem: {ms:.3} ms {:.1} GF/s",
            2.0 * (27 * 32 * g.out_len()) as f64 / ms / 1e6
        );
    });
}
