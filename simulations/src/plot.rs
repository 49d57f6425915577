//! Figures, each as PNG and SVG: divergence over time with the fault windows
//! shaded, the distribution of time to everywhere, bytes per vote, and the
//! spread of a sweep.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{fault_windows, Summary};
use crate::sim::Outcome;

/// Fonts tried for labels (plotters draws text with ab_glyph, which needs a
/// TrueType file). Without one, figures are skipped with a warning.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let path = std::env::var("VOTEMESH_SIM_FONT").ok();
        let candidates = path.iter().map(String::as_str).chain(FONTS.iter().copied());
        for candidate in candidates {
            let Ok(bytes) = std::fs::read(candidate) else {
                continue;
            };
            // Registered once for the whole process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        eprintln!("warning: no TrueType font found (set VOTEMESH_SIM_FONT); figures skipped");
        false
    })
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The figures of one run. Returns the files written.
pub(crate) fn run_figures(
    dir: &Path,
    outcome: &Outcome,
    summary: &Summary,
) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    if !font_ready() {
        return Ok(written);
    }
    let series = divergence_series(outcome);
    let windows = fault_windows(&outcome.scenario.faults, outcome.scenario.duration_s);
    let end = outcome.scenario.duration_s;
    let title = format!(
        "{}: entries missing per node (seed {})",
        outcome.scenario.name, outcome.seed
    );
    macro_rules! render {
        ($name:expr, $size:expr, $f:expr) => {{
            let png = dir.join(format!("{}.png", $name));
            $f(BitMapBackend::new(&png, $size).into_drawing_area())?;
            let svg = dir.join(format!("{}.svg", $name));
            $f(SVGBackend::new(&svg, $size).into_drawing_area())?;
            written.push(format!("{}.png", $name));
            written.push(format!("{}.svg", $name));
        }};
    }
    render!("divergence", (1000, 520), |root| divergence(
        root, &title, &series, &windows, end
    ));

    let mut to_everywhere: Vec<f64> = outcome
        .votes
        .iter()
        .filter_map(|v| {
            v.first_everywhere
                .map(|t| t.saturating_sub(v.cast) as f64 / 1e3)
        })
        .collect();
    to_everywhere.sort_by(f64::total_cmp);
    let title = "time from cast to every node (per vote)";
    render!("convergence", (900, 480), |root| histogram(
        root,
        title,
        "ms",
        &to_everywhere
    ));

    let bars = vec![
        ("push".to_string(), summary.push_bytes_per_vote, 0.0, 0.0),
        ("sync".to_string(), summary.sync_bytes_per_vote, 0.0, 0.0),
        ("total".to_string(), summary.bytes_per_vote, 0.0, 0.0),
    ];
    let title = format!("bytes per vote, strategy {}", summary.strategy);
    let axes = ("", "bytes per vote");
    render!("bytes_per_vote", (800, 460), |root| bar_chart(
        root, &title, axes, &bars
    ));
    Ok(written)
}

/// Bars with optional spread: `(label, value, low, high)`; spread drawn when
/// `high > low`. Written as `name.png` and `name.svg`.
pub(crate) fn bars_figure(
    dir: &Path,
    name: &str,
    title: &str,
    axes: (&str, &str),
    bars: &[(String, f64, f64, f64)],
) -> anyhow::Result<Vec<String>> {
    if !font_ready() {
        return Ok(Vec::new());
    }
    let width = (200 + 130 * bars.len() as u32).clamp(700, 2400);
    let png = dir.join(format!("{name}.png"));
    bar_chart(
        BitMapBackend::new(&png, (width, 480)).into_drawing_area(),
        title,
        axes,
        bars,
    )?;
    let svg = dir.join(format!("{name}.svg"));
    bar_chart(
        SVGBackend::new(&svg, (width, 480)).into_drawing_area(),
        title,
        axes,
        bars,
    )?;
    Ok(vec![format!("{name}.png"), format!("{name}.svg")])
}

/// Per node, or (for many nodes) mean and max over nodes: `(label, points)`.
fn divergence_series(outcome: &Outcome) -> Vec<(String, Vec<(f64, f64)>)> {
    let nodes = outcome.scenario.nodes();
    let mut per_node: Vec<Vec<(f64, f64)>> = vec![Vec::new(); nodes];
    for s in &outcome.samples {
        per_node[s.node as usize].push((s.at as f64 / 1e6, s.missing as f64));
    }
    if nodes <= 8 {
        return per_node
            .into_iter()
            .enumerate()
            .map(|(i, points)| (format!("node {i}"), points))
            .collect();
    }
    let len = per_node[0].len();
    let mut max = Vec::with_capacity(len);
    let mut mean = Vec::with_capacity(len);
    for i in 0..len {
        let t = per_node[0][i].0;
        let values = per_node.iter().filter_map(|p| p.get(i)).map(|p| p.1);
        let (sum, top) = values.fold((0.0, 0.0f64), |(s, m), v| (s + v, m.max(v)));
        max.push((t, top));
        mean.push((t, sum / nodes as f64));
    }
    vec![
        ("max over nodes".into(), max),
        ("mean over nodes".into(), mean),
    ]
}

fn divergence<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    windows: &[(String, f64, f64)],
    end: f64,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("simulated time, s")
        .y_desc("entries missing (vs all accepted)")
        .draw()
        .map_err(err)?;

    for (i, (label, start, stop)) in windows.iter().enumerate() {
        let color = PALETTE[(i + 3) % PALETTE.len()];
        let stop = if stop > start {
            *stop
        } else {
            start + end / 400.0
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*start, 0.0), (stop, top)],
                color.mix(0.15).filled(),
            )))
            .map_err(err)?
            .label(format!("fault: {label}"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.mix(0.3).filled())
            });
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A histogram of sorted values, 40 bins, x from 0 to the 99.5th percentile
/// (the rest in the last bin).
fn histogram<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    unit: &str,
    sorted: &[f64],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let bins = 40;
    let hi = sorted
        .get((sorted.len() as f64 * 0.995) as usize)
        .or(sorted.last())
        .copied()
        .unwrap_or(1.0)
        .max(1.0);
    let width = hi / bins as f64;
    let mut counts = vec![0u64; bins];
    for &v in sorted {
        counts[((v / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title} (n = {})", sorted.len()),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..hi, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_desc("votes")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = i as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.95, c as f64)],
                PALETTE[0].filled(),
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Bars `(label, value, low, high)`, with a whisker from low to high when
/// `high > low`.
fn bar_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    bars: &[(String, f64, f64, f64)],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let top = bars.iter().map(|b| b.1.max(b.3)).fold(1e-9f64, f64::max) * 1.15;
    let n = bars.len() as f64;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, b.1)],
                PALETTE[i % PALETTE.len()].filled(),
            )
        }))
        .map_err(err)?;
    for (i, b) in bars.iter().enumerate() {
        if b.3 > b.2 {
            let x = i as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, b.2), (x, b.3)],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
            for y in [b.2, b.3] {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x - 0.1, y), (x + 0.1, y)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(std::iter::once(Text::new(
                if b.1.abs() < 10.0 {
                    format!("{:.2}", b.1)
                } else {
                    format!("{:.0}", b.1)
                },
                (i as f64 - 0.2, b.1.max(b.3) + top * 0.02),
                ("sans-serif", 14),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
