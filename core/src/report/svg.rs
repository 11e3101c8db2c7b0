//! Charts as inline SVG, built by hand: a growth curve (cumulative bytes per image in
//! registration order) and per-image bars (bytes only it holds vs shared).
//!
//! Hand-built rather than through a plotting crate: two chart kinds need ~200 lines, cost
//! no build time, and the output is deterministic text that tests parse and that README can
//! commit. Every mark carries `data-*` attributes (series, image, bytes) so tests and
//! scripts read figures back without guessing from pixels.
//!
//! Caveat: labels are truncated to keep the layout; the full name is in each `<title>`.

use super::{GrowthPoint, ImageFigures};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 64.0;

/// One line of the growth chart: its key, its legend text, its colour.
struct Series {
    key: &'static str,
    label: &'static str,
    colour: &'static str,
    values: Vec<u64>,
}

/// Escapes text for XML/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

pub use crate::stats::human_bytes;

/// A round axis maximum and step for values up to `max` (1, 2 or 5 times a power of two
/// of a binary unit, about five steps).
fn axis(max: u64) -> (f64, f64) {
    let max = max.max(1) as f64;
    let unit = [1u64 << 50, 1 << 40, 1 << 30, 1 << 20, 1 << 10, 1]
        .into_iter()
        .map(|u| u as f64)
        .find(|u| max >= *u)
        .unwrap_or(1.0);
    let raw = max / unit / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        * unit;
    // Never a step below one byte: ticks are whole bytes.
    let step = step.max(1.0);
    ((max / step).ceil() * step, step)
}

/// A tick's text: every tick of an axis in the unit of its top (`0`, `512 MiB`, `1.0 GiB`
/// read as three units; `0 GiB`, `0.5 GiB`, `1.0 GiB` as one), with one decimal when the
/// step is below one unit.
fn tick_label(v: f64, top: f64, step: f64) -> String {
    const UNITS: [(f64, &str); 6] = [
        ((1u64 << 50) as f64, "PiB"),
        ((1u64 << 40) as f64, "TiB"),
        ((1u64 << 30) as f64, "GiB"),
        ((1u64 << 20) as f64, "MiB"),
        (1024.0, "KiB"),
        (1.0, "B"),
    ];
    let (unit, name) = UNITS
        .into_iter()
        .find(|(u, _)| top >= *u)
        .unwrap_or((1.0, "B"));
    if v == 0.0 {
        return format!("0 {name}");
    }
    match step < unit && unit > 1.0 {
        true => format!("{:.1} {name}", v / unit),
        false => format!("{:.0} {name}", v / unit),
    }
}

fn label(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let cut: String = name.chars().take(max - 1).collect();
    format!("{cut}…")
}

fn growth_series(points: &[GrowthPoint]) -> Vec<Series> {
    let all = |f: &dyn Fn(&GrowthPoint) -> Option<u64>| -> Option<Vec<u64>> {
        points.iter().map(f).collect()
    };
    let candidates = [
        (
            "logical",
            "logical (virtual size)",
            "#8c96a0",
            all(&|p| Some(p.logical_bytes)),
        ),
        (
            "data",
            "data (zeros left out)",
            "#4c78a8",
            all(&|p| p.data_bytes),
        ),
        (
            "distinct",
            "distinct (deduplicated)",
            "#f58518",
            all(&|p| p.distinct_bytes),
        ),
        (
            "stored",
            "stored (compressed)",
            "#2e8b57",
            all(&|p| Some(p.stored_bytes)),
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(key, label, colour, values)| {
            let values = values?;
            values.iter().any(|v| *v > 0).then_some(Series {
                key,
                label,
                colour,
                values,
            })
        })
        .collect()
}

/// The growth curve: cumulative logical, data, distinct and stored bytes after each image,
/// in registration order. Series that are unknown or all zero are left out.
pub fn growth_chart(points: &[GrowthPoint]) -> String {
    let series = growth_series(points);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let (top, step) = axis(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = points.len().max(1);
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: u64| TOP + plot_h * (1.0 - v as f64 / top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="growth-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="store growth in registration order">"#
    );
    s.push_str(r##"<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>"##);
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let ty = y(tick as u64);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e3e6ea"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#555">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            ty + 4.0,
            escape(&tick_label(tick, top, step))
        );
        tick += step;
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#333" text-anchor="end" transform="rotate(-30 {:.1} {:.1})">{}<title>{}</title></text>"##,
            x(i),
            TOP + plot_h + 16.0,
            x(i),
            TOP + plot_h + 16.0,
            escape(&label(&p.name, 16)),
            escape(&p.name)
        );
    }
    for (k, se) in series.iter().enumerate() {
        series_marks(&mut s, k, se, points, &x, &y);
    }
    s.push_str("</svg>");
    s
}

/// One series of the growth chart: its line, a point per image, its legend entry (the
/// `k`-th); `x` and `y` place an image's index and a value.
fn series_marks(
    s: &mut String,
    k: usize,
    se: &Series,
    points: &[GrowthPoint],
    x: &dyn Fn(usize) -> f64,
    y: &dyn Fn(u64) -> f64,
) {
    let pts: Vec<String> = se
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
        .collect();
    let _ = write!(
        s,
        r#"<g class="series" data-series="{}"><polyline fill="none" stroke="{}" stroke-width="2.5" points="{}"/>"#,
        se.key,
        se.colour,
        pts.join(" ")
    );
    for (i, v) in se.values.iter().enumerate() {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}" data-image="{}" data-bytes="{v}"><title>{}: {} {}</title></circle>"#,
            x(i),
            y(*v),
            se.colour,
            escape(&points[i].name),
            escape(&points[i].name),
            se.key,
            human_bytes(*v)
        );
    }
    let ly = TOP + 14.0 + 20.0 * k as f64;
    let lx = WIDTH - RIGHT + 14.0;
    let _ = write!(
        s,
        r##"<rect x="{lx:.1}" y="{:.1}" width="14" height="4" fill="{}"/><text x="{:.1}" y="{ly:.1}" font-size="11" fill="#333">{}</text></g>"##,
        ly - 5.0,
        se.colour,
        lx + 20.0,
        escape(se.label)
    );
}

/// Horizontal bars, one per image: stored bytes only it holds, then those it shares.
pub fn image_bars(images: &[ImageFigures]) -> String {
    const ROW: f64 = 24.0;
    const NAME_W: f64 = 150.0;
    let height = TOP * 2.0 + ROW * images.len() as f64 + 24.0;
    let plot_w = WIDTH - NAME_W - 120.0;
    let max = images
        .iter()
        .map(|i| i.stored_bytes)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="image-bars" class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="stored bytes per image, only-here vs shared">"#
    );
    s.push_str(r##"<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>"##);
    for (i, im) in images.iter().enumerate() {
        let top = TOP + ROW * i as f64;
        let uw = plot_w * im.unique_stored_bytes as f64 / max;
        let sw = plot_w * im.shared_stored_bytes as f64 / max;
        let _ = write!(
            s,
            r##"<g class="image-bar" data-image="{name}" data-unique-stored="{u}" data-shared-stored="{sh}"><text x="{:.1}" y="{:.1}" font-size="11" fill="#333" text-anchor="end">{short}<title>{name}</title></text><rect x="{NAME_W}" y="{top:.1}" width="{uw:.1}" height="{:.1}" fill="#2e8b57"><title>{name}: {} only here</title></rect><rect x="{:.1}" y="{top:.1}" width="{sw:.1}" height="{:.1}" fill="#a6d8b8"><title>{name}: {} shared</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="#555">{}</text></g>"##,
            NAME_W - 6.0,
            top + ROW * 0.55,
            ROW - 8.0,
            human_bytes(im.unique_stored_bytes),
            NAME_W + uw,
            ROW - 8.0,
            human_bytes(im.shared_stored_bytes),
            NAME_W + uw + sw + 6.0,
            top + ROW * 0.55,
            human_bytes(im.stored_bytes),
            name = escape(&im.name),
            short = escape(&label(&im.name, 22)),
            u = im.unique_stored_bytes,
            sh = im.shared_stored_bytes,
        );
    }
    let ly = TOP + ROW * images.len() as f64 + 12.0;
    let _ = write!(
        s,
        r##"<rect x="{NAME_W}" y="{:.1}" width="12" height="10" fill="#2e8b57"/><text x="{:.1}" y="{ly:.1}" font-size="11" fill="#333">stored, only this image</text><rect x="{:.1}" y="{:.1}" width="12" height="10" fill="#a6d8b8"/><text x="{:.1}" y="{ly:.1}" font-size="11" fill="#333">stored, shared with others</text>"##,
        ly - 9.0,
        NAME_W + 16.0,
        NAME_W + 190.0,
        ly - 9.0,
        NAME_W + 206.0,
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_of_one_axis_share_one_unit() {
        let (top, step) = axis(3 << 30);
        let labels: Vec<String> = (0..=(top / step) as usize)
            .map(|i| tick_label(i as f64 * step, top, step))
            .collect();
        assert!(labels.iter().all(|l| l.ends_with(" GiB")), "{labels:?}");
        assert_eq!(labels[0], "0 GiB");
        let (top, step) = axis(700 << 20);
        assert_eq!(
            tick_label(step, top, step),
            format!("{:.0} MiB", step / (1u64 << 20) as f64)
        );
    }

    #[test]
    fn axis_is_round_and_covers_the_maximum() {
        let (top, step) = axis(3 << 30);
        assert!(top >= (3u64 << 30) as f64);
        assert_eq!(step, (1u64 << 30) as f64);
        let (top, step) = axis(700);
        assert!(top >= 700.0 && step == 200.0, "{top} {step}");
        assert_eq!(axis(0), (1.0, 1.0));
    }

    #[test]
    fn escapes_and_labels() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(label("abcdefgh", 5), "abcd…");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn growth_leaves_out_unknown_and_empty_series() {
        let pts = vec![GrowthPoint {
            name: "a<".into(),
            logical_bytes: 10,
            data_bytes: None,
            distinct_bytes: Some(4),
            stored_bytes: 0,
        }];
        let svg = growth_chart(&pts);
        assert!(svg.contains(r#"data-series="logical""#));
        assert!(svg.contains(r#"data-series="distinct""#));
        assert!(!svg.contains(r#"data-series="data""#));
        assert!(!svg.contains(r#"data-series="stored""#));
        assert!(svg.contains("a&lt;"));
    }
}
