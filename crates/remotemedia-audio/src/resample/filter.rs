//! Kaiser-windowed sinc low-pass filters, the design both filter engines share.

/// What a filter is designed to: the attenuation of its stopband and where its passband
/// ends, as a fraction of the lower of the two Nyquist frequencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Design {
    /// Stopband attenuation in dB.
    pub(super) attenuation_db: f64,
    /// The passband's end, as a fraction of the lower Nyquist frequency.
    pub(super) passband: f64,
}

/// The zeroth-order modified Bessel function of the first kind (for the Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Kaiser's window parameter for a stopband of `attenuation_db` (above 50 dB).
pub(super) fn kaiser_beta(attenuation_db: f64) -> f64 {
    0.1102 * (attenuation_db - 8.7)
}

/// Kaiser's estimate of the taps a stopband of `attenuation_db` needs after a
/// transition band `width` radians per sample wide.
pub(super) fn kaiser_length(attenuation_db: f64, width: f64) -> f64 {
    (attenuation_db - 8.0) / (2.285 * width) + 1.0
}

/// `n_taps` taps of a sinc low-pass cut off at `cutoff` cycles per sample, centred on
/// tap `centre` and windowed by a Kaiser window reaching zero `centre` taps either
/// side; scaled to unit gain at 0 Hz.
pub(super) fn kaiser_sinc(n_taps: usize, centre: f64, cutoff: f64, beta: f64) -> Vec<f64> {
    let i0_beta = bessel_i0(beta);
    let mut taps: Vec<f64> = (0..n_taps)
        .map(|i| {
            let t = i as f64 - centre;
            let r = (t / centre).clamp(-1.0, 1.0);
            let window = bessel_i0(beta * (1.0 - r * r).sqrt()) / i0_beta;
            let x = std::f64::consts::TAU * cutoff * t;
            let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
            2.0 * cutoff * sinc * window
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    for t in &mut taps {
        *t /= sum;
    }
    taps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bessel_function_matches_known_values() {
        assert_eq!(bessel_i0(0.0), 1.0);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-14);
        assert!((bessel_i0(5.0) - 27.239_871_823_604_45).abs() < 1e-11);
    }

    #[test]
    fn a_filter_is_symmetric_with_unit_gain() {
        let taps = kaiser_sinc(61, 30.0, 1.0 / 6.0, kaiser_beta(80.0));
        assert!((taps.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for (a, b) in taps.iter().zip(taps.iter().rev()) {
            assert!((a - b).abs() < 1e-15);
        }
        // The window reaches zero at both ends.
        assert!(taps[0].abs() < 1e-4 && taps[60].abs() < 1e-4);
    }
}
