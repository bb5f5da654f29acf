//! Learning-rate schedules, as Keras's `tf.keras.optimizers.schedules` compute them. `step` is
//! the number of updates applied before this one (the global step).

use est::pipeline::Decay;

/// The learning rate before update `step + 1`, from `base` and the decay.
pub fn learning_rate(base: f64, decay: Option<&Decay>, step: u64) -> f64 {
    let Some(decay) = decay else { return base };
    let s = step as f64;
    match decay {
        Decay::Exponential { decay_steps, decay_rate, staircase } => {
            let p = s / *decay_steps as f64;
            base * decay_rate.powf(if *staircase { p.floor() } else { p })
        }
        Decay::InverseTime { decay_steps, decay_rate, staircase } => {
            let p = s / *decay_steps as f64;
            base / (1.0 + decay_rate * if *staircase { p.floor() } else { p })
        }
        Decay::Polynomial { decay_steps, end_learning_rate, power, cycle } => {
            let mut steps = *decay_steps as f64;
            let mut s = s;
            if *cycle {
                let multiplier = if s == 0.0 { 1.0 } else { (s / steps).ceil() };
                steps *= multiplier;
            } else {
                s = s.min(steps);
            }
            (base - end_learning_rate) * (1.0 - s / steps).powf(*power) + end_learning_rate
        }
        Decay::Cosine { decay_steps, alpha } => {
            let s = s.min(*decay_steps as f64);
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * s / *decay_steps as f64).cos());
            base * ((1.0 - alpha) * cosine + alpha)
        }
        Decay::Piecewise { boundaries, values } => {
            let i = boundaries.iter().filter(|b| step > **b).count();
            values[i]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn schedules_match_keras() {
        // Values worked out by hand from Keras's formulas.
        let exp = Decay::Exponential { decay_steps: 100, decay_rate: 0.5, staircase: false };
        close(learning_rate(0.1, Some(&exp), 0), 0.1);
        close(learning_rate(0.1, Some(&exp), 100), 0.05);
        close(learning_rate(0.1, Some(&exp), 150), 0.1 * 0.5f64.powf(1.5));
        let stair = Decay::Exponential { decay_steps: 100, decay_rate: 0.5, staircase: true };
        close(learning_rate(0.1, Some(&stair), 150), 0.05);
        let inv = Decay::InverseTime { decay_steps: 10, decay_rate: 0.5, staircase: false };
        close(learning_rate(1.0, Some(&inv), 20), 0.5);
        let poly = Decay::Polynomial { decay_steps: 100, end_learning_rate: 0.01, power: 1.0, cycle: false };
        close(learning_rate(0.11, Some(&poly), 50), 0.06);
        close(learning_rate(0.11, Some(&poly), 500), 0.01);
        let cyc = Decay::Polynomial { decay_steps: 100, end_learning_rate: 0.0, power: 1.0, cycle: true };
        close(learning_rate(1.0, Some(&cyc), 150), 0.25);
        let cos = Decay::Cosine { decay_steps: 100, alpha: 0.2 };
        close(learning_rate(1.0, Some(&cos), 50), 0.6);
        close(learning_rate(1.0, Some(&cos), 1000), 0.2);
        let pw = Decay::Piecewise { boundaries: vec![10, 20], values: vec![1.0, 0.5, 0.1] };
        assert_eq!([0, 10, 11, 20, 21].map(|s| learning_rate(9.0, Some(&pw), s)), [1.0, 1.0, 0.5, 0.5, 0.1]);
    }
}
