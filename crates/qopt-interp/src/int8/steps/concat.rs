//! Concat of quantized tensors (the QDQ pattern `DQ(a), DQ(b), ... -> Concat -> Q(y)`, and
//! com.microsoft QLinearConcat): each input is requantized to y's parameters with a lookup table
//! (`Q_y ∘ DQ_in`, exactly the reference; skipped when the parameters already agree, the usual
//! case in QDQ models) and the pieces are joined along the axis as stored (channels-last inputs
//! join channels on their last axis).

use super::lut::Table;
use super::{QOut, Step, StepCx};
use crate::error::{OpError, bail};
use qopt_ir::Tensor;

pub struct QConcat {
    /// The axis in the stored layout.
    pub axis: i64,
    /// Per input: (scale, zero point).
    pub inputs: Vec<(f32, i32)>,
    pub out: (f32, i32, QOut),
    tables: Vec<Option<Table>>,
}

impl QConcat {
    pub fn new(axis: i64, inputs: Vec<(f32, i32)>, out: (f32, i32, QOut)) -> QConcat {
        QConcat {
            axis,
            inputs,
            out,
            tables: vec![],
        }
    }
}

impl Step for QConcat {
    fn run(&mut self, _cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        if ins.len() != self.inputs.len() || ins.iter().any(Option::is_none) {
            bail!("Concat expects {} inputs", self.inputs.len());
        }
        if self.tables.is_empty() {
            for (t, &(s, z)) in ins.iter().flatten().zip(&self.inputs) {
                let same = (s, z) == (self.out.0, self.out.1) && t.dtype() == self.out.2.dtype();
                self.tables.push(if same {
                    None
                } else {
                    Some(Table::requantize(
                        t.dtype(),
                        s,
                        z,
                        self.out.2,
                        self.out.0,
                        self.out.1,
                    )?)
                });
            }
        }
        let mut owned = Vec::new();
        for (t, table) in ins.iter().flatten().zip(&self.tables) {
            owned.push(match table {
                Some(tb) => tb.apply(t)?,
                None => (*t).clone(),
            });
        }
        let refs: Vec<Option<&Tensor>> = owned.iter().map(Some).collect();
        crate::ops::concat::run(self.axis, &refs)
    }
    fn name(&self) -> String {
        "QConcat".into()
    }
}
