//! Debug aid: run a model with fusion off and compare every intermediate value with an `.npz`
//! of the same values from another runtime (keys: value names with '/' replaced by '_').
//! Prints the first values whose relative L2 error exceeds 1e-4, in execution order.
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::Tensor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (model, input_name, input, npz) = (&a[0], &a[1], &a[2], &a[3]);
    let g = qopt_onnx::load(model)?.graph;
    let x: ndarray::ArrayD<f32> = ndarray_npy::read_npy(input)?;
    let x = Tensor::F32(x);
    let mut plan = Plan::new(
        &g,
        &PlanOptions {
            threads: Some(1),
            fuse: false,
            ..Default::default()
        },
    )?;
    let mut reader = ndarray_npy::NpzReader::new(std::fs::File::open(npz)?)?;
    let mut shown = 0;
    plan.run_with(&[(input_name.as_str(), &x)], |v, t| {
        if shown >= 5 {
            return;
        }
        let name = g.value_name(v).replace('/', "_");
        let Some(got) = t.as_f32() else { return };
        let Ok(want) =
            reader.by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(&format!("{name}.npy"))
        else {
            return;
        };
        if want.shape() != got.shape() {
            println!("{name}: shape {:?} vs {:?}", got.shape(), want.shape());
            shown += 1;
            return;
        }
        let num: f64 = got
            .iter()
            .zip(want.iter())
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum();
        let den: f64 = want.iter().map(|q| (*q as f64).powi(2)).sum();
        let e = (num / den.max(1e-30)).sqrt();
        if e > 1e-4 {
            println!("{name} ({}): rel L2 {e:.3e}", g.describe(v.node));
            shown += 1;
        }
    })?;
    Ok(())
}
