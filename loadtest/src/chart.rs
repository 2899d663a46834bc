//! Latency-vs-throughput charts of benchmark results, rendered to SVG with plotters.
//!
//! The input is what `cargo xtask bench` writes: a title, axis labels and one series per
//! system, each a list of points (throughput, latency) labelled with their concurrency.
//! Both axes are logarithmic, since the systems compared differ by orders of magnitude.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// A chart: what `oxserve-chart --input` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One line: a system measured at several concurrency levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// One measurement: `x` throughput, `y` latency, `label` e.g. `c=64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// A log axis range covering `values` (positive ones only), widened to whole decades'
/// neighbourhood so the points do not sit on the frame.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.1..10.0;
    }
    (lo / 1.5)..(hi * 1.5)
}

/// Renders `chart` as an SVG file at `path`.
pub fn render(chart: &Chart, path: &Path) -> Result<(), String> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let x_range = log_range(points().map(|p| p.x));
    let y_range = log_range(points().map(|p| p.y));
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| err(&e))?;
    plot.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, series) in chart.series.iter().enumerate() {
        let color = Palette99::pick(i).mix(1.0);
        let xy: Vec<(f64, f64)> = series.points.iter().map(|p| (p.x, p.y)).collect();
        plot.draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        plot.draw_series(xy.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
        plot.draw_series(
            series
                .points
                .iter()
                .map(|p| Text::new(p.label.clone(), (p.x, p.y), ("sans-serif", 11))),
        )
        .map_err(|e| err(&e))?;
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg() {
        let chart = Chart {
            title: "t".into(),
            x_label: "req/s".into(),
            y_label: "ms".into(),
            series: vec![Series {
                name: "oxserve REST".into(),
                points: vec![
                    Point { label: "c=1".into(), x: 4000.0, y: 0.2 },
                    Point { label: "c=64".into(), x: 20000.0, y: 3.0 },
                ],
            }],
        };
        let path = std::env::temp_dir().join(format!("oxserve-chart-{}.svg", std::process::id()));
        render(&chart, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("oxserve REST") && svg.contains("c=64"));
    }

    #[test]
    fn log_range_ignores_non_positive() {
        let r = log_range([0.0, 2.0, 30.0, f64::NAN].into_iter());
        assert!(r.start > 1.0 && r.start < 2.0 && r.end > 30.0, "{r:?}");
        assert_eq!(log_range(std::iter::empty()), 0.1..10.0);
    }
}
