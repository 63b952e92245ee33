//! SVG latency-percentile plot (`--plot FILE.svg`), drawn with plotters' SVG backend
//! only (default features off: no font libraries — the SVG backend emits `<text>`
//! elements and plotters estimates text extents without loading fonts).
//!
//! The x axis is the percentile on a "nines" scale (−log10(1 − p)), so p50, p90, p99,
//! p99.9 and p99.99 are evenly spaced; the y axis is latency in microseconds.

use std::path::Path;

use plotters::prelude::*;

use crate::report::LatencyReport;

/// Maps a percentile (0..100) to the nines scale; 100 is clamped to 99.999.
pub fn nines(p: f64) -> f64 {
    let q = (p / 100.0).min(0.99999);
    -(1.0 - q).log10()
}

/// Writes the plot of `lat.percentiles` to `path`.
pub fn write_svg(path: &Path, title: &str, lat: &LatencyReport) -> Result<(), String> {
    let pts: Vec<(f64, f64)> = lat
        .percentiles
        .iter()
        .map(|&(p, us)| (nines(p), us))
        .collect();
    let ymax = pts.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..5.0f64, 0.0f64..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            match x.round() as i64 {
                0 => "0".into(),
                1 => "90".into(),
                2 => "99".into(),
                3 => "99.9".into(),
                4 => "99.99".into(),
                5 => "99.999".into(),
                _ => format!("{p:.3}"),
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(format!(
            "p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} samples)",
            lat.p50_us, lat.p99_us, lat.max_us, lat.count
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_hist, LatencyReport};

    #[test]
    fn nines_scale() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(100.0) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn writes_svg_with_text() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let l = LatencyReport::from_hist(&h).unwrap();
        let path = std::env::temp_dir().join(format!("rl-plot-{}.svg", std::process::id()));
        write_svg(&path, "test latency", &l).unwrap();
        let s = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(s.starts_with("<svg"), "{}", &s[..s.len().min(80)]);
        assert!(s.contains("test latency"));
        assert!(s.contains("99.9"));
        assert!(s.contains("<polyline"));
    }
}
