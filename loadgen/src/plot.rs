//! HDR percentile plots: latency against percentile on the classic
//! 1/(1-q) log axis, so the tail (99.9%, 99.99%, ...) gets as much room as
//! the median. One SVG per run, one line per series, written with plotters.
//!
//! Both axes are plain `f64` carrying already-transformed values (x =
//! log10(1/(1-q)), y = ms or log10(ms)) with explicit tick positions: that
//! gives percentile labels where they mean something ("99.9%") instead of
//! whatever round numbers a log coordinate would pick, and lets the y axis
//! switch between linear and log without changing the chart's type.
//!
//! No text is ever measured (see `draw_legend`), so the plot needs no font
//! with or without plotters' `ab_glyph` feature: the SVG carries `<text>`
//! elements in `sans-serif` and the viewer renders them.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Picture size in pixels without the legend: wide enough for seven
/// percentile labels.
const SIZE: (u32, u32) = (1000, 620);
/// Height of the title strip above the chart, pixels.
const TITLE_HEIGHT: u32 = 44;
/// Title font size, pixels.
const TITLE_FONT: i32 = 24;
/// Height of one legend row, pixels.
const LEGEND_ROW: u32 = 22;
/// Legend font size, pixels.
const LEGEND_FONT: i32 = 15;
/// Space around the chart, pixels.
const MARGIN: u32 = 14;
/// Width of the y tick labels and axis title, pixels.
const Y_LABEL_AREA: u32 = 72;
/// Left edge of the legend: the plotting area's.
const LEGEND_X: i32 = (MARGIN + Y_LABEL_AREA) as i32;
/// Length of a legend's sample line, pixels.
const LEGEND_LINE: i32 = 28;
/// Points per decade of 1/(1-q): enough that the staircase of an HDR
/// histogram shows, few enough to keep the SVG small.
const POINTS_PER_DECADE: usize = 100;
/// The deepest percentile drawn (99.9999%), whatever the sample count.
const MAX_DECADES: f64 = 6.0;
/// Above this max/min ratio the y axis goes log, or the median and below
/// would be a flat line on the floor of the plot.
const LOG_Y_RATIO: f64 = 50.0;
/// Floor for log y: an HDR histogram in µs cannot resolve below 1 µs.
const MIN_MS: f64 = 0.001;
/// Series colours, distinct on white and to most colour-blind readers.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// Percentile ticks of the x axis, as (q, label).
const X_TICKS: [(f64, &str); 8] = [
    (0.0, "0%"),
    (0.5, "50%"),
    (0.9, "90%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (0.99999, "99.999%"),
    (0.999999, "99.9999%"),
];

/// Writes an SVG at `path`: latency (histograms in µs, drawn in ms) against
/// percentile, one labelled line per series.
pub fn percentile_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    if series.is_empty() {
        return Err("percentile plot: no series given".to_string());
    }
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, h)| curve_ms(h)).collect();
    let x_axis = percentile_axis(&curves);
    let y_axis = latency_axis(&curves);
    let legend = legend_entries(series);
    let header = TITLE_HEIGHT + LEGEND_ROW * legend.len() as u32 + LEGEND_ROW / 2;
    // The picture grows with the legend so the chart keeps its size.
    let size = (SIZE.0, SIZE.1 + header);

    let err = |e: &dyn std::fmt::Display| format!("percentile plot {}: {e}", path.display());
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header_area, plot_area) = root.split_vertically(header);
    draw_title(&header_area, title, size.0).map_err(|e| err(&e))?;
    draw_legend(&header_area, &legend).map_err(|e| err(&e))?;
    draw_chart(&plot_area, x_axis, &y_axis, &curves, &legend).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The x axis: decades of 1/(1-q) up to the deepest curve's (whole decades,
/// at least one, at most `MAX_DECADES`), ticks at the percentiles it reaches.
fn percentile_axis(curves: &[Vec<(f64, f64)>]) -> Ticks {
    let x_max = curves
        .iter()
        .filter_map(|c| c.last().map(|p| p.0))
        .fold(1.0f64, f64::max)
        .ceil()
        .min(MAX_DECADES);
    Ticks {
        lo: 0.0,
        hi: x_max,
        bold: X_TICKS
            .iter()
            .map(|(q, _)| decades(*q))
            .filter(|x| *x <= x_max + 1e-9)
            .collect(),
        light: Vec::new(),
    }
}

/// The y axis over every curve's latencies: log when they span more than
/// `LOG_Y_RATIO`, linear otherwise.
fn latency_axis(curves: &[Vec<(f64, f64)>]) -> YAxis {
    let (lo, hi) = curves
        .iter()
        .flatten()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    if hi / lo.max(MIN_MS) > LOG_Y_RATIO {
        YAxis::log(lo.max(MIN_MS), hi)
    } else {
        YAxis::linear(hi)
    }
}

/// One legend row per series: its name, sample count and max, its colour.
fn legend_entries(series: &[(String, &Histogram<u64>)]) -> Vec<(String, RGBColor)> {
    series
        .iter()
        .enumerate()
        .map(|(i, (name, hist))| {
            let label = if hist.is_empty() {
                format!("{name} (no samples)")
            } else {
                format!(
                    "{name} (n={}, max {} ms)",
                    hist.len(),
                    ms_label(hist.max() as f64 / 1000.0)
                )
            };
            (label, COLOURS[i % COLOURS.len()])
        })
        .collect()
}

/// The title, centred in the header strip of a picture `width` wide.
///
/// By hand too, not ChartBuilder::caption: see draw_legend.
fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    width: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let centred = Pos::new(HPos::Center, VPos::Center);
    area.draw_text(
        title,
        &("sans-serif", TITLE_FONT)
            .into_font()
            .color(&BLACK)
            .pos(centred),
        (width as i32 / 2, TITLE_HEIGHT as i32 / 2),
    )
}

/// The chart below the header: axes, grid, and one line per curve in its
/// legend colour.
fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x_axis: Ticks,
    y_axis: &YAxis,
    curves: &[Vec<(f64, f64)>],
    legend: &[(String, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        // Room for the rightmost percentile label, centred on the edge.
        .margin_right(48)
        .x_label_area_size(48)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x_axis, y_axis.ticks.clone())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc(if y_axis.log {
            "latency (ms, log scale)"
        } else {
            "latency (ms)"
        })
        .x_label_formatter(&|x| x_label(*x))
        .y_label_formatter(&|y| tick_label(y_axis.ms_of_y(*y)))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.15))
        .draw()?;
    for (curve, (_, colour)) in curves.iter().zip(legend) {
        let points = curve
            .iter()
            .map(|&(x, ms)| (x, y_axis.y_of_ms(ms)))
            .collect::<Vec<_>>();
        chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
    }
    Ok(())
}

/// Draws the legend in the header, one row per series under the title,
/// left-aligned with the plotting area: outside the chart, so it never
/// hides a curve.
///
/// By hand rather than with plotters' series labels: those measure text
/// with a font, and with plotters' `ab_glyph` feature no font exists unless
/// one is registered. The SVG's `<text>` needs none: the viewer renders it.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = ("sans-serif", LEGEND_FONT)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let row = LEGEND_ROW as i32;
    for (i, (label, colour)) in entries.iter().enumerate() {
        let y = TITLE_HEIGHT as i32 + row * i as i32 + row / 2;
        area.draw(&PathElement::new(
            vec![(LEGEND_X, y), (LEGEND_X + LEGEND_LINE, y)],
            colour.stroke_width(3),
        ))?;
        area.draw_text(label, &style, (LEGEND_X + LEGEND_LINE + 10, y))?;
    }
    Ok(())
}

/// x coordinate of quantile `q`: decades of 1/(1-q), so 90% is 1, 99% is 2.
fn decades(q: f64) -> f64 {
    assert!((0.0..1.0).contains(&q), "quantile {q} outside [0, 1)");
    -(1.0 - q).log10()
}

/// The (x, ms) points of one histogram, up to the deepest quantile its sample
/// count supports (1 - 1/n) and ending at its max, so the line stops where
/// the data does instead of extrapolating a tail nobody measured.
fn curve_ms(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len();
    if n == 0 {
        return Vec::new();
    }
    let last = (n as f64).log10().min(MAX_DECADES);
    let steps = (last * POINTS_PER_DECADE as f64).ceil() as usize;
    let mut points = Vec::with_capacity(steps + 2);
    for k in 0..=steps {
        let x = (k as f64 / POINTS_PER_DECADE as f64).min(last);
        let q = 1.0 - 10f64.powf(-x);
        points.push((x, h.value_at_quantile(q) as f64 / 1000.0));
    }
    if last > 0.0 {
        points.push((last, h.max() as f64 / 1000.0));
    }
    debug_assert!(points
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    points
}

/// Axis label for x: the percentile with as many decimals as it needs.
fn x_label(x: f64) -> String {
    X_TICKS
        .iter()
        .find(|(q, _)| (decades(*q) - x).abs() < 1e-6)
        .map(|(_, label)| label.to_string())
        .unwrap_or_default()
}

/// Latency in ms, short: "0.12", "3.4", "250", "1200".
fn ms_label(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        let s = format!("{ms:.3}");
        if s == "0.000" && ms > 0.0 {
            format!("{ms:.1e}")
        } else {
            s
        }
    }
}

/// A linear f64 axis with tick marks where we put them: plotters' own
/// `WithKeyPoints` over f64 loses the value formatter the mesh needs.
#[derive(Clone)]
struct Ticks {
    lo: f64,
    hi: f64,
    /// Labelled ticks with a grid line.
    bold: Vec<f64>,
    /// Faint grid lines between them.
    light: Vec<f64>,
}

impl Ranged for Ticks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        assert!(self.hi > self.lo, "empty axis {}..{}", self.lo, self.hi);
        let f = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Tick label in ms: three significant digits at most, no trailing zeros,
/// so a 1-2-5 axis reads "0.2", "0.5", "1", "2", "5", "10".
fn tick_label(ms: f64) -> String {
    let decimals = if ms <= 0.0 {
        0
    } else {
        (2 - ms.log10().floor() as i32).clamp(0, 6) as usize
    };
    let s = format!("{ms:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The y axis in plot coordinates (ms, or log10 ms) with its tick marks.
struct YAxis {
    log: bool,
    ticks: Ticks,
}

impl YAxis {
    /// Linear from 0 to a bit over `hi` ms, ticks at 1-2-5 steps.
    fn linear(hi: f64) -> Self {
        let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
        let raw = hi / 8.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        let count = (hi / step).floor() as usize;
        assert!(count <= 20, "{count} ticks for hi {hi} step {step}");
        let bold = (0..=count).map(|i| i as f64 * step).collect();
        let light = (0..=2 * count + 1)
            .map(|i| (i as f64 + 0.5) * step / 2.0)
            .filter(|y| *y < hi)
            .collect();
        Self {
            log: false,
            ticks: Ticks {
                lo: 0.0,
                hi,
                bold,
                light,
            },
        }
    }

    /// Log10 from a bit under `lo` to a bit over `hi` ms, labelled ticks at
    /// 1, 2, 5 times each power of ten, grid lines at every integer multiple.
    fn log(lo: f64, hi: f64) -> Self {
        assert!(
            lo > 0.0 && hi >= lo,
            "log axis needs 0 < lo <= hi, got {lo}..{hi}"
        );
        let (llo, lhi) = (lo.log10() - 0.05, hi.log10() + 0.05);
        let (mut bold, mut light) = (Vec::new(), Vec::new());
        // Bounded by the f64 exponent range, and in practice by lo..hi.
        for e in (llo.floor() as i32)..=(lhi.ceil() as i32) {
            for m in 1..10 {
                let t = (m as f64 * 10f64.powi(e)).log10();
                if !(llo..=lhi).contains(&t) {
                    continue;
                }
                if matches!(m, 1 | 2 | 5) {
                    bold.push(t);
                } else {
                    light.push(t);
                }
            }
        }
        Self {
            log: true,
            ticks: Ticks {
                lo: llo,
                hi: lhi,
                bold,
                light,
            },
        }
    }

    /// Plot coordinate of a latency in ms.
    fn y_of_ms(&self, ms: f64) -> f64 {
        if self.log {
            ms.max(MIN_MS).log10()
        } else {
            ms
        }
    }

    /// Latency in ms of a plot coordinate.
    fn ms_of_y(&self, y: f64) -> f64 {
        if self.log {
            10f64.powf(y)
        } else {
            y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram in µs whose values are spread between `base` and a tail.
    fn synthetic(base: u64, tail: u64, n: u64) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for i in 0..n {
            // Mostly near base, one in a thousand out at the tail.
            let v = if i % 1000 == 999 {
                tail + i % 97
            } else {
                base + (i * 7919) % base
            };
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn two_series_written_with_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.svg");
        let alone = synthetic(180, 2_500, 200_000);
        let bulk = synthetic(400, 40_000, 200_000);
        percentile_svg(
            &path,
            "rt: round trip latency",
            &[
                ("rt alone".to_string(), &alone),
                ("rt with bulk".to_string(), &bulk),
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.contains("rt alone"));
        assert!(svg.contains("rt with bulk"));
        assert!(svg.contains("99.9%"));
        if let Ok(keep) = std::env::var("GONETS_PLOT_KEEP") {
            std::fs::copy(&path, keep).unwrap();
        }
    }

    #[test]
    fn narrow_range_is_linear_and_empty_series_is_labelled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.svg");
        let flat = synthetic(1000, 1500, 5_000);
        let empty = Histogram::<u64>::new(3).unwrap();
        percentile_svg(
            &path,
            "flat",
            &[("flat".to_string(), &flat), ("nothing".to_string(), &empty)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("latency (ms)"));
        if let Ok(keep) = std::env::var("GONETS_PLOT_KEEP_FLAT") {
            std::fs::copy(&path, keep).unwrap();
        }
        assert!(svg.contains("nothing (no samples)"));
    }

    #[test]
    fn no_series_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(percentile_svg(&dir.path().join("x.svg"), "t", &[]).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(x_label(decades(0.999)), "99.9%");
        assert_eq!(x_label(0.5), "");
        assert_eq!(ms_label(0.25), "0.250");
        assert_eq!(ms_label(1234.0), "1234");
        assert_eq!(tick_label(0.2), "0.2");
        assert_eq!(tick_label(5.0), "5");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.001), "0.001");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1500.0), "1500");
    }
}
