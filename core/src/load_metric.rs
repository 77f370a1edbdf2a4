//! The load metric: how much spare capacity a server has, as the front door
//! sees it.
//!
//! `LM = P*C + (1-P)*L` where `C` is the operator's static capacity (1..10,
//! scaled x1000), `L` the latest dynamic load value (0..10000, higher = more
//! spare), and `P` the age of `L` over the obsolescence time `T`, capped at 1.
//! A fresh `L` counts fully; as it ages the metric slides back to `C`, so a
//! front door cut off from the manager degrades to static weights.
//!
//! The front door feeds `L` in on the capacity's scale (`C·L/10000`, the
//! fraction of full speed the measurement stands for), so capacity and
//! measurement are one scale: see [`crate::FrontDoor::metrics`].

/// Scale of the operator's static capacity figure (1..10 becomes 1000..10000).
pub const CAPACITY_SCALE: f64 = 1000.0;

/// Scales an operator capacity (1..10) to load-metric units.
pub fn scale_capacity(capacity: u8) -> f64 {
    f64::from(capacity) * CAPACITY_SCALE
}

/// Computes the load metric.
///
/// * `capacity` — static capacity already scaled (e.g. 2000 for 2);
/// * `dynamic` — latest dynamic value `L`, or `None` if never measured (then
///   the metric is the capacity);
/// * `age_secs` — seconds since `L` was updated;
/// * `obsolescence_secs` — `T`; zero means "dynamic values never age".
pub fn load_metric(
    capacity: f64,
    dynamic: Option<f64>,
    age_secs: f64,
    obsolescence_secs: f64,
) -> f64 {
    let Some(l) = dynamic else { return capacity };
    let p = if obsolescence_secs <= 0.0 {
        0.0
    } else {
        (age_secs.max(0.0) / obsolescence_secs).min(1.0)
    };
    p * capacity + (1.0 - p) * l
}

/// Moves a metric one `epsilon` toward "busier" after a pick, so a burst of
/// new users does not all land on one server before the next update.
/// Never goes below zero.
pub fn bump(metric: f64, epsilon: f64) -> f64 {
    (metric - epsilon.max(0.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The design's aging table: C=2000, L=1000, T=20 min.
    #[test]
    fn design_aging_table() {
        let t = 20.0 * 60.0;
        let got: Vec<f64> = [0.0, 5.0, 10.0, 15.0, 20.0, 30.0]
            .iter()
            .map(|m| load_metric(2000.0, Some(1000.0), m * 60.0, t))
            .collect();
        assert_eq!(got, vec![1000.0, 1250.0, 1500.0, 1750.0, 2000.0, 2000.0]);
    }

    #[test]
    fn unmeasured_is_capacity_and_zero_t_never_ages() {
        assert_eq!(load_metric(scale_capacity(5), None, 0.0, 1200.0), 5000.0);
        assert_eq!(load_metric(5000.0, Some(1234.0), 1e9, 0.0), 1234.0);
    }

    #[test]
    fn bump_moves_toward_busier() {
        assert_eq!(bump(1000.0, 10.0), 990.0);
        assert_eq!(bump(5.0, 10.0), 0.0);
        assert_eq!(bump(5.0, -3.0), 5.0);
    }

    proptest! {
        #[test]
        fn metric_between_capacity_and_dynamic(c in 0.0f64..10_000.0, l in 0.0f64..10_000.0, age in 0.0f64..10_000.0, t in 0.0f64..5_000.0) {
            let m = load_metric(c, Some(l), age, t);
            prop_assert!(m >= c.min(l) - 1e-9 && m <= c.max(l) + 1e-9);
        }
    }
}
