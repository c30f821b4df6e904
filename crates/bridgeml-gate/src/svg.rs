//! Small, dependency-free SVG plotting for the reports: overlaid histograms,
//! grouped bars and line plots, with axes, "nice" ticks, a legend and labelled
//! reference lines. Every user string is escaped; the output is a standalone
//! `<svg>` element (valid XML) meant to be inlined into HTML.

use std::fmt::Write as _;

use crate::report::{fmt_num, GroupedBars, Histogram, LinePlot, LineStyle, Plot};

/// Width of every plot in SVG user units (it scales to its container).
pub const WIDTH: f64 = 560.0;
/// Height of every plot in SVG user units, before rotated category labels.
pub const HEIGHT: f64 = 300.0;

/// Series colours, colour-blind friendly (Okabe–Ito-like, a bit muted).
pub const PALETTE: [&str; 8] = [
    "#3b6fb6", "#e08a2e", "#3c9a5f", "#c9463d", "#7d5ba6", "#2aa3b8", "#b9a034", "#8c6d5a",
];

const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif";
const AXIS: &str = "#9ca3af";
const GRID: &str = "#e5e7eb";
const INK: &str = "#1f2937";
const MUTED: &str = "#4b5563";
const LIMIT: &str = "#d12c2c";
const MARKER: &str = "#374151";
/// Rough width of one character at 12 px, for layout without font metrics.
const CHAR_W: f64 = 6.6;

/// Escapes text for XML/HTML text content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" axis range covering `lo..hi` with about `target` steps of 1, 2 or
/// 5 × 10^k: returns `(start, end, step)` with start <= lo and end >= hi.
pub fn nice_range(lo: f64, hi: f64, target: usize) -> (f64, f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
    let start = (lo / step + 1e-9).floor() * step;
    let mut end = (hi / step - 1e-9).ceil() * step;
    if end <= start {
        end = start + step;
    }
    (start, end, step)
}

/// Tick positions `k * step` inside `lo..=hi`.
pub fn nice_ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !step.is_finite() || step <= 0.0 || !lo.is_finite() || !hi.is_finite() {
        return Vec::new();
    }
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last.min(first + 200))
        .map(|k| {
            let v = k as f64 * step;
            // Avoid "-0".
            if v == 0.0 {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// Formats a tick value with as many decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let a = v.abs();
    if a >= 1e6 || (a > 0.0 && a < 1e-4) {
        return fmt_num(v);
    }
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// The SVG of any plot.
pub fn render_plot(plot: &Plot) -> String {
    match plot {
        Plot::Histogram(h) => histogram(h),
        Plot::GroupedBars(b) => grouped_bars(b),
        Plot::Line(l) => line_plot(l),
    }
}

/// Plot area and surroundings.
struct Frame {
    height: f64,
    /// Plot area: x0..x1 left to right, y0..y1 top to bottom.
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

struct Svg {
    out: String,
}

impl Svg {
    fn open(width: f64, height: f64, title: &str) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{t}" font-family="{FONT}" font-size="12"><title>{t}</title><rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#,
            t = escape(title)
        );
        Svg { out }
    }

    fn title(&mut self, x: f64, title: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="20" font-size="14" font-weight="600" fill="{INK}">{}</text>"#,
            escape(title)
        );
    }

    /// Legend entries on rows under the title; returns the y below it.
    fn legend(&mut self, x0: f64, x_max: f64, names: &[(&str, &str)], filled: bool) -> f64 {
        let mut y = 40.0;
        if names.len() < 2 {
            return 30.0;
        }
        let mut x = x0;
        for (name, color) in names {
            let w = 18.0 + CHAR_W * name.chars().count() as f64 + 16.0;
            if x + w > x_max && x > x0 {
                x = x0;
                y += 18.0;
            }
            if filled {
                let _ = write!(
                    self.out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" rx="2" fill="{color}" fill-opacity="0.75" stroke="{color}"/>"#,
                    y - 10.0
                );
            } else {
                let _ = write!(
                    self.out,
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.5"/>"#,
                    y - 4.0,
                    x + 12.0,
                    y - 4.0
                );
            }
            let _ = write!(
                self.out,
                r#"<text x="{:.1}" y="{y:.1}" fill="{MUTED}">{}</text>"#,
                x + 17.0,
                escape(name)
            );
            x += w;
        }
        y + 12.0
    }

    fn y_axis(
        &mut self,
        f: &Frame,
        ticks: &[f64],
        step: f64,
        sy: &dyn Fn(f64) -> f64,
        label: &str,
    ) {
        for &t in ticks {
            let y = sy(t);
            let _ = write!(
                self.out,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}" font-size="11">{}</text>"#,
                f.x0,
                f.x1,
                f.x0 - 6.0,
                y + 4.0,
                escape(&tick_label(t, step))
            );
        }
        let cy = (f.y0 + f.y1) / 2.0;
        let _ = write!(
            self.out,
            r#"<text x="14" y="{cy:.1}" transform="rotate(-90 14 {cy:.1})" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            escape(label)
        );
    }

    fn x_axis_line(&mut self, f: &Frame) {
        let _ = write!(
            self.out,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{AXIS}" stroke-width="1"/>"#,
            f.x0, f.y1, f.x1, f.y1
        );
    }

    fn x_label(&mut self, f: &Frame, label: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            (f.x0 + f.x1) / 2.0,
            f.height - 10.0,
            escape(label)
        );
    }

    fn no_data(&mut self, f: &Frame) {
        let _ = write!(
            self.out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}" font-style="italic">no data</text>"#,
            (f.x0 + f.x1) / 2.0,
            (f.y0 + f.y1) / 2.0
        );
    }

    /// Horizontal reference lines with their labels at the right end.
    fn hlines(&mut self, f: &Frame, lines: &[(String, f64, LineStyle)], sy: &dyn Fn(f64) -> f64) {
        for (label, v, style) in lines {
            if !v.is_finite() {
                continue;
            }
            let y = sy(*v);
            let (color, extra) = line_style(*style);
            let _ = write!(
                self.out,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}"{extra}/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{color}" font-size="11" stroke="white" stroke-width="3" paint-order="stroke">{} {}</text>"#,
                f.x0,
                f.x1,
                f.x1 - 2.0,
                y - 4.0,
                escape(label),
                escape(&fmt_num(*v))
            );
        }
    }

    fn close(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

fn line_style(style: LineStyle) -> (&'static str, &'static str) {
    match style {
        LineStyle::Limit => (LIMIT, r#" stroke-width="2""#),
        LineStyle::Marker => (MARKER, r#" stroke-width="1.25" stroke-dasharray="5 3""#),
    }
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn left_margin(tick_labels: &[String]) -> f64 {
    let longest = tick_labels
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(1) as f64;
    (30.0 + longest * 6.2).max(48.0)
}

fn max_finite<'a, I: IntoIterator<Item = &'a f64>>(xs: I) -> Option<f64> {
    xs.into_iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
}

fn min_finite<'a, I: IntoIterator<Item = &'a f64>>(xs: I) -> Option<f64> {
    xs.into_iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.min(x))))
}

/// Overlaid histograms over shared bins, with labelled vertical lines.
pub fn histogram(h: &Histogram) -> String {
    let width = WIDTH;
    let height = HEIGHT;
    let n_bins = h.bins.len().saturating_sub(1);
    let valid = n_bins > 0
        && h.bins.iter().all(|b| b.is_finite())
        && h.bins.windows(2).all(|w| w[1] >= w[0]);

    let y_max =
        max_finite(h.series.iter().flat_map(|s| s.counts.iter().take(n_bins))).unwrap_or(0.0);
    let (_, y_hi, y_step) = nice_range(0.0, if y_max > 0.0 { y_max } else { 1.0 }, 5);
    let y_ticks = nice_ticks(0.0, y_hi, y_step);
    let y_labels: Vec<String> = y_ticks.iter().map(|t| tick_label(*t, y_step)).collect();
    let x0 = left_margin(&y_labels);

    let mut svg = Svg::open(width, height, &h.title);
    svg.title(x0, &h.title);
    let names: Vec<(&str, &str)> = h
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), color(i)))
        .collect();
    let top = svg.legend(x0, width - 16.0, &names, true);

    // x domain: the bins, widened to show every reference line.
    let (mut lo, mut hi) = if valid {
        (h.bins[0], h.bins[n_bins])
    } else {
        (0.0, 1.0)
    };
    for v in h.vlines.iter().filter(|v| v.x.is_finite()) {
        lo = lo.min(v.x);
        hi = hi.max(v.x);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.02;
    let (lo, hi) = (
        lo - if valid && lo < h.bins[0] { pad } else { 0.0 },
        hi + if valid && hi > h.bins[n_bins] {
            pad
        } else {
            0.0
        },
    );

    // Labels of reference lines sit in rows above the plot area, staggered so
    // close lines (p95 / p99) do not overprint each other.
    let x1 = width - 20.0;
    let sx = |x: f64| x0 + (x - lo) / (hi - lo) * (x1 - x0);
    let mut vl: Vec<(f64, String, LineStyle)> = h
        .vlines
        .iter()
        .filter(|v| v.x.is_finite())
        .map(|v| (sx(v.x), format!("{} {}", v.label, fmt_num(v.x)), v.style))
        .collect();
    vl.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut row_end: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for (px, text, style) in vl {
        let w = CHAR_W * 0.92 * text.chars().count() as f64 + 6.0;
        let anchor_end = px + w > width - 4.0;
        let (start, end) = if anchor_end {
            (px - w, px)
        } else {
            (px, px + w)
        };
        let row = match row_end.iter().position(|&e| e < start) {
            Some(r) => r,
            None => {
                row_end.push(f64::NEG_INFINITY);
                row_end.len() - 1
            }
        };
        row_end[row] = end + 4.0;
        placed.push((px, text, style, row, anchor_end));
    }
    let label_rows = row_end.len() as f64;
    let f = Frame {
        height,
        x0,
        x1,
        y0: top + 6.0 + label_rows * 15.0,
        y1: height - 46.0,
    };
    let sy = |y: f64| f.y1 - y / y_hi * (f.y1 - f.y0);
    svg.y_axis(&f, &y_ticks, y_step, &sy, &h.y_label);

    if valid && !h.series.is_empty() {
        let multi = h.series.len() > 1;
        for (si, s) in h.series.iter().enumerate() {
            let c = color(si);
            let opacity = if multi { 0.38 } else { 0.8 };
            let mut step_path = String::new();
            for i in 0..n_bins.min(s.counts.len()) {
                let v = if s.counts[i].is_finite() {
                    s.counts[i].max(0.0)
                } else {
                    0.0
                };
                let (bx0, bx1) = (sx(h.bins[i]), sx(h.bins[i + 1]));
                let y = sy(v);
                if v > 0.0 {
                    let gap = if multi || bx1 - bx0 < 4.0 { 0.0 } else { 0.5 };
                    let _ = write!(
                        svg.out,
                        r#"<rect x="{:.2}" y="{y:.2}" width="{:.2}" height="{:.2}" fill="{c}" fill-opacity="{opacity}"/>"#,
                        bx0 + gap,
                        (bx1 - bx0 - 2.0 * gap).max(0.5),
                        f.y1 - y
                    );
                }
                if i == 0 {
                    let _ = write!(step_path, "M{bx0:.2},{:.2}", f.y1);
                }
                let _ = write!(step_path, "L{bx0:.2},{y:.2}L{bx1:.2},{y:.2}");
                if i + 1 == n_bins.min(s.counts.len()) {
                    let _ = write!(step_path, "L{bx1:.2},{:.2}", f.y1);
                }
            }
            if multi && !step_path.is_empty() {
                let _ = write!(
                    svg.out,
                    r#"<path d="{step_path}" fill="none" stroke="{c}" stroke-width="1.5" stroke-linejoin="round"/>"#
                );
            }
        }
    } else {
        svg.no_data(&f);
    }

    svg.x_axis_line(&f);
    let (_, _, x_step) = nice_range(lo, hi, 6);
    for t in nice_ticks(lo, hi, x_step) {
        let x = sx(t);
        let _ = write!(
            svg.out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{AXIS}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}" font-size="11">{}</text>"#,
            f.y1,
            f.y1 + 4.0,
            f.y1 + 17.0,
            escape(&tick_label(t, x_step))
        );
    }
    svg.x_label(&f, &h.x_label);

    for (px, text, style, row, anchor_end) in placed {
        let (c, extra) = line_style(style);
        let ty = top + 6.0 + (row as f64 + 1.0) * 15.0 - 4.0;
        let _ = write!(
            svg.out,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{c}"{extra}/><text x="{:.1}" y="{ty:.1}" text-anchor="{}" fill="{c}" font-size="11" font-weight="600">{}</text>"#,
            f.y1,
            ty + 3.0,
            if anchor_end { px - 3.0 } else { px + 3.0 },
            if anchor_end { "end" } else { "start" },
            escape(&text)
        );
    }
    svg.close()
}

/// Bars per category, one per series side by side, optional value labels and
/// horizontal reference lines.
pub fn grouped_bars(b: &GroupedBars) -> String {
    let width = WIDTH;
    let n = b.categories.len();
    let s_count = b.series.len().max(1);
    let all_values = b.series.iter().flat_map(|s| s.values.iter().take(n));
    let hl: Vec<(String, f64, LineStyle)> = b
        .hlines
        .iter()
        .map(|h| (h.label.clone(), h.y, h.style))
        .collect();
    let v_max = max_finite(all_values.clone().chain(hl.iter().map(|h| &h.1)))
        .unwrap_or(1.0)
        .max(0.0);
    let v_min = min_finite(all_values.chain(hl.iter().map(|h| &h.1)))
        .unwrap_or(0.0)
        .min(0.0);
    let (y_lo, y_hi, y_step) =
        nice_range(v_min, if v_max > v_min { v_max } else { v_min + 1.0 }, 5);
    let y_ticks = nice_ticks(y_lo, y_hi, y_step);
    let y_labels: Vec<String> = y_ticks.iter().map(|t| tick_label(*t, y_step)).collect();
    let x0 = left_margin(&y_labels);
    let x1 = width - 20.0;
    let slot = (x1 - x0) / n.max(1) as f64;

    // Long category names are set at an angle; the plot grows to fit them.
    let longest = b
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let rotate = longest * CHAR_W > slot - 4.0;
    let label_band = if rotate {
        (longest.min(28.0) * CHAR_W * 0.6 + 14.0).max(30.0)
    } else {
        22.0
    };
    let height = HEIGHT - 46.0 + label_band + 8.0;

    let mut svg = Svg::open(width, height, &b.title);
    svg.title(x0, &b.title);
    let names: Vec<(&str, &str)> = b
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), color(i)))
        .collect();
    let top = svg.legend(x0, width - 16.0, &names, true);
    let f = Frame {
        height,
        x0,
        x1,
        y0: top + 10.0,
        y1: height - label_band - 8.0,
    };
    let sy = |y: f64| f.y1 - (y - y_lo) / (y_hi - y_lo) * (f.y1 - f.y0);
    svg.y_axis(&f, &y_ticks, y_step, &sy, &b.y_label);

    if n == 0 || b.series.is_empty() {
        svg.no_data(&f);
    }
    let group = slot * 0.8;
    let bar_w = group / s_count as f64;
    let show_values = bar_w >= 24.0;
    let zero = sy(0.0);
    for (si, s) in b.series.iter().enumerate() {
        let c = color(si);
        for (ci, v) in s.values.iter().take(n).enumerate() {
            if !v.is_finite() {
                continue;
            }
            let x = x0 + slot * ci as f64 + (slot - group) / 2.0 + bar_w * si as f64;
            let (y, h) = if *v >= 0.0 {
                (sy(*v), zero - sy(*v))
            } else {
                (zero, sy(*v) - zero)
            };
            let _ = write!(
                svg.out,
                r#"<rect x="{:.2}" y="{y:.2}" width="{:.2}" height="{:.2}" fill="{c}" fill-opacity="0.85"><title>{}: {} = {}</title></rect>"#,
                x + 0.75,
                (bar_w - 1.5).max(0.5),
                h.max(0.0),
                escape(&s.name),
                escape(&b.categories[ci]),
                escape(&fmt_num(*v))
            );
            if show_values {
                let _ = write!(
                    svg.out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}" font-size="9.5">{}</text>"#,
                    x + bar_w / 2.0,
                    if *v >= 0.0 { y - 3.0 } else { y + h + 10.0 },
                    escape(&short_value(*v))
                );
            }
        }
    }
    svg.x_axis_line(&f);
    if y_lo < 0.0 {
        let _ = write!(
            svg.out,
            r#"<line x1="{:.1}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="{AXIS}"/>"#,
            f.x0, f.x1
        );
    }
    for (ci, cat) in b.categories.iter().enumerate() {
        let cx = x0 + slot * (ci as f64 + 0.5);
        let ty = f.y1 + 15.0;
        if rotate {
            let _ = write!(
                svg.out,
                r#"<text x="{cx:.1}" y="{ty:.1}" transform="rotate(-35 {cx:.1} {ty:.1})" text-anchor="end" fill="{MUTED}" font-size="11">{}</text>"#,
                escape(cat)
            );
        } else {
            let _ = write!(
                svg.out,
                r#"<text x="{cx:.1}" y="{ty:.1}" text-anchor="middle" fill="{MUTED}" font-size="11">{}</text>"#,
                escape(cat)
            );
        }
    }
    svg.hlines(&f, &hl, &sy);
    svg.close()
}

/// Values on bars: at most 3 significant digits so they fit.
fn short_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a >= 100.0 {
        return format!("{v:.0}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Lines over evenly spaced x positions, gaps where a value is null.
pub fn line_plot(l: &LinePlot) -> String {
    let width = WIDTH;
    let height = HEIGHT;
    let n = l.x_labels.len();
    let values = l
        .series
        .iter()
        .flat_map(|s| s.values.iter().take(n).flatten());
    let hl: Vec<(String, f64, LineStyle)> = l
        .hlines
        .iter()
        .map(|h| (h.label.clone(), h.y, h.style))
        .collect();
    let v_max = max_finite(values.clone().chain(hl.iter().map(|h| &h.1)));
    let v_min = min_finite(values.chain(hl.iter().map(|h| &h.1)));
    let (lo, hi) = match (v_min, v_max) {
        (Some(a), Some(b)) => {
            let pad = ((b - a) * 0.08).max(b.abs() * 0.02).max(1e-9);
            (
                if a >= 0.0 && a - pad < 0.0 {
                    0.0
                } else {
                    a - pad
                },
                b + pad,
            )
        }
        _ => (0.0, 1.0),
    };
    let (y_lo, y_hi, y_step) = nice_range(lo, hi, 5);
    let y_ticks = nice_ticks(y_lo, y_hi, y_step);
    let y_labels: Vec<String> = y_ticks.iter().map(|t| tick_label(*t, y_step)).collect();
    let x0 = left_margin(&y_labels);

    let mut svg = Svg::open(width, height, &l.title);
    svg.title(x0, &l.title);
    let names: Vec<(&str, &str)> = l
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), color(i)))
        .collect();
    let top = svg.legend(x0, width - 16.0, &names, false);
    let f = Frame {
        height,
        x0,
        x1: width - 20.0,
        y0: top + 10.0,
        y1: height - 46.0,
    };
    let sy = |y: f64| f.y1 - (y - y_lo) / (y_hi - y_lo) * (f.y1 - f.y0);
    svg.y_axis(&f, &y_ticks, y_step, &sy, &l.y_label);
    let pad = 12.0;
    let sx = |i: usize| {
        if n <= 1 {
            (f.x0 + f.x1) / 2.0
        } else {
            f.x0 + pad + (f.x1 - f.x0 - 2.0 * pad) * i as f64 / (n - 1) as f64
        }
    };
    svg.hlines(&f, &hl, &sy);
    if n == 0 || l.series.is_empty() {
        svg.no_data(&f);
    }
    for (si, s) in l.series.iter().enumerate() {
        let c = color(si);
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().take(n).enumerate() {
            match v {
                Some(v) if v.is_finite() => {
                    let _ = write!(
                        d,
                        "{}{:.2},{:.2}",
                        if pen_down { "L" } else { "M" },
                        sx(i),
                        sy(*v)
                    );
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                svg.out,
                r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#
            );
        }
        if n <= 40 {
            for (i, v) in s.values.iter().take(n).enumerate() {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    let _ = write!(
                        svg.out,
                        r#"<circle cx="{:.2}" cy="{:.2}" r="2.75" fill="{c}"><title>{} {}: {}</title></circle>"#,
                        sx(i),
                        sy(v),
                        escape(&s.name),
                        escape(&l.x_labels[i]),
                        escape(&fmt_num(v))
                    );
                }
            }
        }
    }
    svg.x_axis_line(&f);
    // At most ~8 x labels, evenly thinned, always the last one.
    let every = n.div_ceil(8).max(1);
    for (i, label) in l.x_labels.iter().enumerate() {
        if i % every != 0 && i + 1 != n {
            continue;
        }
        if i + 1 == n && i % every != 0 && (n - 1) % every < every / 2 + 1 && n > every {
            // The last label would crowd the previous one.
            continue;
        }
        let x = sx(i);
        let _ = write!(
            svg.out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{AXIS}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}" font-size="11">{}</text>"#,
            f.y1,
            f.y1 + 4.0,
            f.y1 + 17.0,
            escape(label)
        );
    }
    svg.x_label(&f, &l.x_label);
    svg.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ranges() {
        assert_eq!(nice_range(0.0, 0.93, 5), (0.0, 1.0, 0.2));
        assert_eq!(nice_range(0.0, 137.0, 5), (0.0, 140.0, 20.0));
        let (lo, hi, step) = nice_range(3.2, 17.9, 6);
        assert_eq!((lo, hi, step), (2.0, 18.0, 2.0));
        assert_eq!(nice_ticks(0.0, 1.0, 0.2).len(), 6);
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
