//! The report as one self-contained HTML page: inline CSS and SVG, no scripts or fonts
//! from the network, so the file opens anywhere and shows the same figures offline. The
//! dashboard (`bonsai serve`, `/`) is the same page with a small inline script that
//! reloads it when the store changes.
//!
//! The page is well-formed XML as well as HTML (every element closed, no named entities
//! but XML's), so tests check it with an XML parser. Every figure sits in an element with
//! an `id` or `data-*` attribute naming it.

use super::svg::{escape, growth_chart, human_bytes, image_bars};
use super::{ImageFigures, SharingMatrix, StoreReport};
use crate::stats::{fmt_ratio, Savings};
use std::fmt::Write;

/// How the page is framed.
#[derive(Debug, Clone, Default)]
pub struct PageOptions {
    /// Heading, e.g. `bonsai store report`.
    pub title: String,
    /// What the figures describe (the store as the user named it, or "local images").
    pub source: String,
    /// For the live dashboard: the URL that answers the store's current generation, and
    /// the generation this page shows; the page reloads itself when they differ.
    pub live: Option<(String, String)>,
    /// When the figures were taken (Unix seconds), shown under the title.
    pub generated: Option<i64>,
    /// The server's health, for the live dashboard: shown first, in this order.
    pub health: Vec<HealthItem>,
}

/// One line of the dashboard's health section: `key` names it for scripts and tests
/// (`data-key`), `label` for people.
#[derive(Debug, Clone)]
pub struct HealthItem {
    /// Stable name, e.g. `uptime`.
    pub key: &'static str,
    /// What a person reads, e.g. `up for`.
    pub label: String,
    /// The value, already formatted.
    pub value: String,
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\
p.sub{color:#666;margin:0 0 16px}table{border-collapse:collapse;font-size:13px}\
th,td{padding:4px 10px;white-space:nowrap;border-bottom:1px solid #e3e6ea;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f5f6f8}\
.factors{font-size:15px}.factors b{font-size:18px}dl{font-size:13px;color:#444}\
dt{font-weight:600;float:left;width:190px}dd{margin:0 0 6px 200px}\
th{white-space:normal;vertical-align:bottom}svg.chart{max-width:100%;height:auto}\
#health dl{display:grid;grid-template-columns:130px 1fr 130px 1fr;gap:3px 12px}\
#health dt{float:none;width:auto}#health dd{margin:0}\
@media (max-width:1000px){body{margin:12px}th,td{padding:3px 5px}.wide{display:none}\
#health dl{grid-template-columns:130px 1fr}dt{width:150px}dd{margin-left:160px}}";

fn opt_bytes(v: Option<u64>) -> String {
    v.map(human_bytes).unwrap_or_else(|| "-".into())
}

fn cell(key: &str, text: &str, raw: Option<u64>) -> String {
    match raw {
        Some(v) => format!(
            r#"<td data-key="{key}" data-bytes="{v}">{}</td>"#,
            escape(text)
        ),
        None => format!(r#"<td data-key="{key}">{}</td>"#, escape(text)),
    }
}

/// The savings line: `zeros 2.0x × dedup 1.5x × compression 1.5x = overall 4.5x`.
fn factors(id: &str, s: &Savings) -> String {
    let part = |key: &str, name: &str, r: Option<f64>| {
        let value = r
            .map(|r| format!(r#" data-ratio="{r}""#))
            .unwrap_or_default();
        format!(
            r#"<span data-key="{key}"{value}>{name} <b>{}</b></span>"#,
            fmt_ratio(r)
        )
    };
    format!(
        r#"<p class="factors" id="{id}">{} × {} × {} = {}</p>"#,
        part("zero_elimination", "zero elimination", s.zero_elimination),
        part("deduplication", "deduplication", s.deduplication),
        part("compression", "compression", s.compression),
        part("overall", "overall", s.overall)
    )
}

fn totals(r: &StoreReport, local: bool) -> String {
    let t = &r.totals;
    let mut s = String::from(r#"<section id="totals"><h2>Totals</h2><table><tr>"#);
    let mut cols = vec![
        ("images", t.images.to_string(), None),
        (
            "logical_bytes",
            human_bytes(t.logical_bytes),
            Some(t.logical_bytes),
        ),
        ("data_bytes", opt_bytes(t.data_bytes), t.data_bytes),
        (
            "distinct_bytes",
            opt_bytes(t.distinct_bytes),
            t.distinct_bytes,
        ),
    ];
    if !local {
        cols.push((
            "stored_bytes",
            human_bytes(t.stored_bytes),
            Some(t.stored_bytes),
        ));
        cols.push((
            "unreferenced_stored_bytes",
            human_bytes(t.unreferenced_stored_bytes),
            Some(t.unreferenced_stored_bytes),
        ));
    }
    for (k, _, _) in &cols {
        let _ = write!(s, "<th>{}</th>", k.replace('_', " ").replace(" bytes", ""));
    }
    s.push_str("</tr><tr>");
    for (k, text, raw) in &cols {
        s.push_str(&cell(k, text, *raw));
    }
    s.push_str("</tr></table>");
    s.push_str(&factors("savings", &t.savings));
    s.push_str("</section>");
    s
}

fn growth(r: &StoreReport) -> String {
    let mut s = String::from(
        r#"<section id="growth"><h2>Growth in registration order</h2><p class="sub">Cumulative bytes after each image: what the images hold (logical), what is not zeros (data), what is left after deduplication (distinct) and what the store keeps (stored).</p>"#,
    );
    s.push_str(&growth_chart(&r.growth));
    s.push_str(r#"<table id="growth-table"><tr><th>after image</th><th>logical</th><th>data</th><th>distinct</th>"#);
    let stored = r.growth.iter().any(|p| p.stored_bytes > 0);
    if stored {
        s.push_str("<th>stored</th>");
    }
    s.push_str("</tr>");
    for p in &r.growth {
        let _ = write!(
            s,
            r#"<tr data-image="{}"><td>{}</td>"#,
            escape(&p.name),
            escape(&p.name)
        );
        s.push_str(&cell(
            "logical_bytes",
            &human_bytes(p.logical_bytes),
            Some(p.logical_bytes),
        ));
        s.push_str(&cell("data_bytes", &opt_bytes(p.data_bytes), p.data_bytes));
        s.push_str(&cell(
            "distinct_bytes",
            &opt_bytes(p.distinct_bytes),
            p.distinct_bytes,
        ));
        if stored {
            s.push_str(&cell(
                "stored_bytes",
                &human_bytes(p.stored_bytes),
                Some(p.stored_bytes),
            ));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></section>");
    s
}

/// Columns of the image table hidden on narrow screens (the figures stay in the DOM).
const SECONDARY: [&str; 5] = [
    "distinct_bytes",
    "shared_bytes",
    "shared_stored_bytes",
    "stored_bytes",
    "blocks",
];

fn image_row(im: &ImageFigures) -> String {
    let mut s = format!(
        r#"<tr data-image="{}"><td>{}</td><td data-key="registered" data-unix="{}">{}</td>"#,
        escape(&im.name),
        escape(&im.name),
        im.registered,
        &crate::stats::utc(im.registered)[..16]
    );
    let cols: [(&str, Option<u64>); 10] = [
        ("logical_bytes", Some(im.logical_bytes)),
        ("data_bytes", im.data_bytes),
        ("distinct_bytes", im.distinct_bytes),
        ("shared_bytes", im.shared_bytes),
        ("unique_bytes", im.unique_bytes),
        ("stored_bytes", Some(im.stored_bytes)),
        ("shared_stored_bytes", Some(im.shared_stored_bytes)),
        ("unique_stored_bytes", Some(im.unique_stored_bytes)),
        ("new_stored_bytes", Some(im.new_stored_bytes)),
        ("blocks", None),
    ];
    for (k, v) in cols {
        let mut td = if k == "blocks" {
            format!(r#"<td data-key="blocks">{}</td>"#, im.blocks)
        } else {
            cell(k, &opt_bytes(v), v)
        };
        if SECONDARY.contains(&k) {
            td = td.replacen("<td ", r#"<td class="wide" "#, 1);
        }
        s.push_str(&td);
    }
    let _ = write!(
        s,
        r#"<td data-key="overall">{}</td></tr>"#,
        fmt_ratio(im.savings.overall)
    );
    s
}

fn images(r: &StoreReport) -> String {
    let mut s = String::from(
        r#"<section id="images"><h2>Images</h2><table id="image-table"><tr><th>image</th><th>pushed (UTC)</th><th>logical</th><th>data</th><th class="wide">distinct</th><th class="wide">shared</th><th>only here</th><th class="wide">stored</th><th class="wide">stored shared</th><th>stored only here</th><th>added to store</th><th class="wide">blocks</th><th>overall</th></tr>"#,
    );
    for im in &r.images {
        s.push_str(&image_row(im));
    }
    s.push_str("</table>");
    s.push_str(&image_bars(&r.images));
    s.push_str("</section>");
    s
}

fn matrix(m: &SharingMatrix) -> String {
    let mut s = String::from(
        r#"<section id="sharing"><h2>Sharing between images</h2><p class="sub">Stored bytes of the blocks both images use; the diagonal is each image's own stored bytes.</p><table id="sharing-matrix"><tr><th></th>"#,
    );
    for n in &m.names {
        let _ = write!(s, "<th>{}</th>", escape(n));
    }
    s.push_str("</tr>");
    for (i, row) in m.stored.iter().enumerate() {
        let own = row.get(i).copied().unwrap_or(0).max(1) as f64;
        let _ = write!(
            s,
            r#"<tr data-image="{}"><th>{}</th>"#,
            escape(&m.names[i]),
            escape(&m.names[i])
        );
        for (j, v) in row.iter().enumerate() {
            let shade = (*v as f64 / own).clamp(0.0, 1.0);
            let _ = write!(
                s,
                r#"<td data-with="{}" data-bytes="{v}" style="background:rgba(46,139,87,{:.2})">{}</td>"#,
                escape(&m.names[j]),
                shade * 0.6,
                human_bytes(*v)
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    if m.truncated {
        let _ = write!(
            s,
            r#"<p class="sub">First {} images only.</p>"#,
            m.names.len()
        );
    }
    s.push_str("</section>");
    s
}

const GLOSSARY: &str = r#"<section id="glossary"><h2>Words</h2><dl><dt>logical</dt><dd>virtual size of an image: what a VM sees.</dd><dt>zeros (holes)</dt><dd>all-zero chunks: never stored or sent.</dd><dt>data</dt><dd>logical minus zeros.</dd><dt>distinct</dt><dd>plaintext of the different chunks, each counted once.</dd><dt>shared / only here</dt><dd>distinct bytes another image also uses / only this image uses.</dd><dt>stored</dt><dd>block objects as kept: compressed, encrypted, 40 bytes of header and tag each.</dd><dt>zero elimination</dt><dd>logical / data.</dd><dt>deduplication</dt><dd>data / distinct.</dd><dt>compression</dt><dd>distinct / stored.</dd><dt>overall</dt><dd>logical / stored, the product of the three.</dd></dl></section>"#;

fn health(items: &[HealthItem]) -> String {
    let mut s = String::from(r#"<section id="health"><h2>Store health</h2><dl>"#);
    for i in items {
        let _ = write!(
            s,
            r#"<dt>{}</dt><dd data-key="{}">{}</dd>"#,
            escape(&i.label),
            i.key,
            escape(&i.value)
        );
    }
    s.push_str("</dl></section>");
    s
}

fn live_script(url: &str, generation: &str) -> String {
    // No `<` or `&` inside: the page stays well-formed XML.
    format!(
        r#"<script>(function(){{var d=document.documentElement;document.body.setAttribute("data-fits",String(!(d.scrollWidth > d.clientWidth)));var shown="{}";function poll(){{fetch("{}",{{cache:"no-store",credentials:"same-origin"}}).then(function(r){{return r.ok ? r.text() : shown;}}).then(function(g){{if(g.trim() !== shown){{location.reload();}}}}).catch(function(){{}});}}setInterval(poll,5000);}})();</script>"#,
        escape(generation),
        escape(url)
    )
}

/// The whole page. With `opts.live` it reloads itself when the store's generation moves.
pub fn page(r: &StoreReport, opts: &PageOptions) -> String {
    let local = r.images.is_empty() && r.growth.iter().all(|p| p.stored_bytes == 0);
    let mut s = String::from("<!DOCTYPE html>\n");
    let generation = opts.live.as_ref().map(|l| l.1.as_str()).unwrap_or("");
    let _ = write!(
        s,
        r#"<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width"/><title>{}</title><style>{STYLE}</style></head><body data-generation="{}"><h1>{}</h1><p class="sub" id="source">{}</p>"#,
        escape(&opts.title),
        escape(generation),
        escape(&opts.title),
        escape(&opts.source)
    );
    if let Some(t) = opts.generated {
        let _ = write!(
            s,
            r#"<p class="sub" id="generated" data-unix="{t}">figures as of {} UTC</p>"#,
            crate::stats::utc(t)
        );
    }
    if !opts.health.is_empty() {
        s.push_str(&health(&opts.health));
    }
    s.push_str(&totals(r, local));
    if !r.growth.is_empty() {
        s.push_str(&growth(r));
    }
    if !r.images.is_empty() {
        s.push_str(&images(r));
    }
    if r.matrix.names.len() > 1 {
        s.push_str(&matrix(&r.matrix));
    }
    s.push_str(GLOSSARY);
    if let Some((url, generation)) = &opts.live {
        s.push_str(&live_script(url, generation));
    }
    s.push_str("</body></html>\n");
    s
}
