//! `--chart`: queue length, status latency and (with `--enter`) admissions against the door's
//! rate over the run, as one SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::stats::Point;

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws the timeline: people waiting (the crowd's count and the server's) above, latency
/// percentiles below, and when anyone was let in (or `door_rate` is known), admissions per
/// second against the door's rate at the bottom.
pub fn draw(path: &Path, timeline: &[Point], door_rate: Option<f64>) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    let door = door_rate.is_some() || timeline.iter().any(|p| p.admitted_per_sec > 0);
    let height = if door { 1080 } else { 720 };
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (upper, rest) = root.split_vertically(360);
    let (lower, bottom) = rest.split_vertically(360);

    let at = |p: &Point| p.t as f64 + 0.5;
    let queue: Vec<Series> = vec![
        (
            "alive (crowd's count)",
            BLUE,
            timeline
                .iter()
                .filter_map(|p| Some((at(p), p.alive? as f64)))
                .collect(),
        ),
        (
            "waiting (server's figure, ghosts included until evicted)",
            RED,
            timeline
                .iter()
                .filter_map(|p| Some((at(p), p.server_waiting? as f64)))
                .collect(),
        ),
    ];
    panel(&upper, "Queue length", "people", &queue).map_err(|e| err(&e))?;

    let pick = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|p| Some((at(p), f(p)?)))
            .collect()
    };
    let latency: Vec<Series> = vec![
        ("status p50", GREEN, pick(|p| p.status_p50_ms)),
        ("status p95", BLUE, pick(|p| p.status_p95_ms)),
        ("status p99", RED, pick(|p| p.status_p99_ms)),
        ("join p99", BLACK, pick(|p| p.join_p99_ms)),
    ];
    panel(&lower, "Latency per second", "ms", &latency).map_err(|e| err(&e))?;
    if door {
        let mut admissions: Vec<Series> = vec![(
            "admitted per second",
            BLUE,
            timeline
                .iter()
                .map(|p| (at(p), p.admitted_per_sec as f64))
                .collect(),
        )];
        if let Some(rate) = door_rate {
            let end = timeline.len().max(1) as f64;
            admissions.push(("door rate", RED, vec![(0.0, rate), (end, rate)]));
        }
        panel(&bottom, "The door", "people/s", &admissions).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let x_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(unit)
        .draw()?;
    for (label, color, points) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
