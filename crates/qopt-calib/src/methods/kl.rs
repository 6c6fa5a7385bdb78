//! `kl`: TensorRT's EntropyCalibration2 threshold search on the histogram of |x|.
//!
//! Source: Szymon Migacz, "8-bit Inference with TensorRT", GTC 2017 (the published
//! pseudo-code), as DESIGN.md §6 restates it:
//!
//! ```text
//! for i in 128 ..= N:                      (N = histogram bins, 2048 by default)
//!     P = bins[0 .. i];  P[i-1] += sum(bins[i ..])          (outliers into the last bin)
//!     Q = bins[0 .. i] merged into 128 levels, each level's count spread evenly
//!         over the bins of the level where P is non-zero (zero where P is zero)
//!     divergence[i] = KL(normalize(P) || normalize(Q))
//! threshold = (m + 0.5) * bin_width, m = argmin divergence (first minimum)
//! ```
//!
//! Choices the slides leave open, made as NVIDIA's pytorch-quantization
//! (`calib/max.py`/`histogram.py` `_compute_amax_entropy`) or MXNet do: bin `j` of `i` goes to
//! level `floor(j * levels / i)` (pytorch-quantization's `np.digitize` over
//! `linspace(0, i, levels + 1)`, so a remainder spreads evenly rather than piling into the last
//! level); the non-zero pattern for the expansion is P's (MXNet), so the last bin, which holds
//! the outliers, always gets a share of Q. Exact zeros are left out of bin 0: after a ReLU half
//! the values are 0, and that spike alone would drag the threshold to a fraction of the range
//! (MNN skips zero bins; pytorch-quantization flattens bin 0 for the same reason). The
//! candidates stop at the last non-empty bin: qopt's power-of-two histograms may have empty
//! bins above the maximum (see `crate::histogram`), and a threshold beyond the data is never
//! useful. Levels are `2^(bits-1)` (128 for 8 bits). Two guards the slides do not have, each
//! measured on the models qopt is checked on: bins holding more than 1% of the values are
//! flattened like the zero bin ([`flatten_spikes`]), and histograms with fewer than 8 values
//! per bin keep the whole range ([`MIN_VALUES_PER_BIN`]).

/// KL divergence of the candidate keeping `i` bins; `None` when Q is zero where P is not.
fn divergence(bins: &[u64], i: usize, levels: usize, total: f64) -> Option<f64> {
    let outliers: u64 = bins[i..].iter().sum();
    let p = |j: usize| bins[j] as f64 + if j == i - 1 { outliers as f64 } else { 0.0 };
    // Level sums of the unclipped bins and the number of P-non-zero bins per level.
    let mut level_sum = vec![0.0f64; levels];
    let mut level_nonzero = vec![0u32; levels];
    for (j, &b) in bins[..i].iter().enumerate() {
        let l = j * levels / i;
        level_sum[l] += b as f64;
        level_nonzero[l] += (p(j) > 0.0) as u32;
    }
    let q_total: f64 = level_sum.iter().sum();
    if q_total == 0.0 {
        return None;
    }
    let mut kl = 0.0;
    for j in 0..i {
        let pj = p(j);
        if pj == 0.0 {
            continue;
        }
        let l = j * levels / i;
        let qj = level_sum[l] / level_nonzero[l] as f64;
        if qj == 0.0 {
            return None;
        }
        let (pn, qn) = (pj / total, qj / q_total);
        kl += pn * (pn / qn).ln();
    }
    Some(kl)
}

/// The TensorRT entropy search. `bins` is the histogram of |x| without exact zeros; returns
/// the number of bins `m` kept by the best candidate, or `None` when the data occupies at most
/// `levels` bins (nothing to clip: the caller uses the maximum).
pub fn kl_bins(bins: &[u64], levels: usize) -> Option<usize> {
    let n = crate::histogram::occupied_len(bins);
    let levels = levels.max(1);
    if n <= levels {
        return None;
    }
    let total: f64 = bins[..n].iter().map(|&c| c as f64).sum();
    let mut best: Option<(f64, usize)> = None;
    for i in levels..=n {
        if let Some(d) = divergence(&bins[..n], i, levels, total)
            && best.is_none_or(|(b, _)| d < b)
        {
            best = Some((d, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Fewest non-zero values per histogram bin, on average, for the search to run.
///
/// A histogram that sparse (a squeeze-excitation gate: 8-200 values per sample; a classifier's
/// logits) measures sampling noise, not a distribution: with one value in most occupied bins,
/// Q reproduces P at small `i` and the search clips most of the range (PP-OCRv4 cls, 64
/// calibration images: SE gates in [0, 0.86] clipped to 0.11, top-1 agreement 55%). Below
/// this density `kl` keeps the whole range. TensorRT calibrates with hundreds of images, where
/// only such small tensors are this sparse.
pub const MIN_VALUES_PER_BIN: u64 = 8;

/// The `kl` threshold (in value units) for a histogram of |x| over `[0, hi)` whose bin 0
/// holds `zeros` exact zeros, or `None` when there is nothing to clip or too little data
/// ([`MIN_VALUES_PER_BIN`]).
pub fn kl_threshold(counts: &[u64], bin_width: f64, zeros: u64, levels: usize) -> Option<f64> {
    let mut bins = counts.to_vec();
    if let Some(b0) = bins.first_mut() {
        *b0 = b0.saturating_sub(zeros);
    }
    let values: u64 = bins.iter().sum();
    if values < MIN_VALUES_PER_BIN * bins.len() as u64 {
        return None;
    }
    flatten_spikes(&mut bins, values);
    kl_bins(&bins, levels).map(|m| (m as f64 + 0.5) * bin_width)
}

/// Largest share of the values one bin may hold before [`flatten_spikes`] caps it.
pub const SPIKE_FRACTION: f64 = 0.01;

/// Cap every bin holding more than [`SPIKE_FRACTION`] of `values` at the larger of its two
/// neighbours (at most the cap).
///
/// Exact zeros are one spike (left out above); constants are others: MNIST's uniform background
/// gives every channel of the first ReLU one value shared by 60% of its pixels, a saturated
/// Clip(0, 6) piles values at 6, and a PP-OCR detector's flat regions do the same. A level of Q
/// that merges a spike with its neighbours spreads the spike's mass over them, so the divergence
/// grows with every bin a candidate adds and the search settles on the smallest candidates that
/// keep each spike in a level of its own (MNIST: the first ReLU clipped to 0.74 of its 6.48
/// maximum, accuracy 22.5%; PP-OCRv4 det SQNR 1.1 dB). Flattened as pytorch-quantization
/// flattens bin 0 (`bins[0] = bins[1]`), the spikes still count as values below the threshold
/// but no longer decide it (MNIST 97.3%, det 14.6 dB; smooth distributions are untouched: with
/// 2048 bins no bin of a smooth density comes near 1% of the values).
fn flatten_spikes(bins: &mut [u64], values: u64) {
    let cap = (values as f64 * SPIKE_FRACTION) as u64;
    let orig = bins.to_vec();
    for (j, b) in bins.iter_mut().enumerate() {
        if orig[j] > cap {
            let left = if j > 0 { orig[j - 1] } else { 0 };
            let right = orig.get(j + 1).copied().unwrap_or(0);
            *b = left.max(right).min(cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_keeps_the_whole_range() {
        // Uniform |x|: clipping only adds error, and Q reproduces P exactly at i = N
        // (every level holds the same number of equal bins): divergence 0 there and > 0 for
        // every clipped candidate, whose last bin holds the outliers.
        let bins = vec![100u64; 2048];
        assert_eq!(kl_bins(&bins, 128), Some(2048));
    }

    #[test]
    fn outliers_are_clipped() {
        // A triangle on bins 0..1000 plus a few far outliers at bin 2000: KL must clip well
        // below the outliers (the reason the method exists).
        let mut bins = vec![0u64; 2048];
        for (j, b) in bins.iter_mut().enumerate().take(1000) {
            *b = (1000 - j) as u64 * 10;
        }
        bins[2000] = 3;
        let m = kl_bins(&bins, 128).unwrap();
        assert!(m < 1100, "threshold bin {m}");
        // Exact zeros do not change the answer: they are removed from bin 0.
        let mut with_zeros = bins.clone();
        with_zeros[0] += 1_000_000;
        assert_eq!(
            kl_threshold(&with_zeros, 1.0, 1_000_000, 128),
            Some(m as f64 + 0.5)
        );
    }

    #[test]
    fn spikes_do_not_decide_the_threshold() {
        // MNIST's first ReLU in miniature: a thin smooth spread over bins 0..1600 (strokes)
        // plus eight constants, one per channel, each shared by many values (background
        // pixels). Without flattening the search keeps the spikes in levels of their own and
        // clips far below the spread; with it, the threshold is where the spread alone puts it.
        let mut smooth = vec![0u64; 2048];
        for (j, b) in smooth.iter_mut().enumerate().take(1600) {
            *b = 40 - (j as u64) / 50;
        }
        let n: u64 = smooth.iter().sum();
        let mut spiked = smooth.clone();
        for k in 0..8 {
            spiked[40 + 37 * k] += n / 4;
        }
        let raw = kl_bins(&spiked, 128).unwrap();
        let alone = kl_threshold(&smooth, 1.0, 0, 128).unwrap();
        let flat = kl_threshold(&spiked, 1.0, 0, 128).unwrap();
        assert!((raw as f64) < 0.5 * alone, "raw {raw} vs smooth {alone}");
        assert!((flat - alone).abs() <= 0.05 * alone, "{flat} vs {alone}");
        // A smooth histogram has no bin above the cap: flattening leaves it as it is.
        let mut copy = smooth.clone();
        flatten_spikes(&mut copy, n);
        assert_eq!(copy, smooth);
    }

    #[test]
    fn sparse_histograms_keep_the_whole_range() {
        // 2048 bins, 1000 values (a gate of 16 channels over 64 samples): below 8 per bin.
        let mut bins = vec![0u64; 2048];
        for j in 0..1000 {
            bins[(j * j) % 1900] += 1;
        }
        assert!(
            kl_bins(&bins, 128).is_some(),
            "the search itself would clip"
        );
        assert_eq!(kl_threshold(&bins, 1.0, 0, 128), None);
        // The same shape with 20x the data is searched.
        let dense: Vec<u64> = bins.iter().map(|b| b * 20).collect();
        assert!(kl_threshold(&dense, 1.0, 0, 128).is_some());
    }

    #[test]
    fn narrow_data_is_not_clipped() {
        let mut bins = vec![0u64; 2048];
        bins[..100].iter_mut().for_each(|b| *b = 5);
        assert_eq!(kl_bins(&bins, 128), None);
    }
}
