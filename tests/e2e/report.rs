//! `bonsai report`, `analyze --html` and the dashboard against images with known sharing:
//! B = A's system + 1 MiB of new data, pushed with fixed 64 KiB chunks so every figure is
//! exact. The HTML is parsed (it is well-formed XML by design) and its figures compared
//! with the JSON; the dashboard is loaded in headless Chromium, its DOM checked and a
//! screenshot left under the target directory.

use crate::util::*;
use quick_xml::events::Event;
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;

/// An element of a parsed page: its name, attributes, children and text.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every descendant (self included) for which `pred` holds, in document order.
    fn find<'a>(&'a self, pred: &dyn Fn(&Node) -> bool, out: &mut Vec<&'a Node>) {
        if pred(self) {
            out.push(self);
        }
        for c in &self.children {
            c.find(pred, out);
        }
    }

    fn all(&self, pred: &dyn Fn(&Node) -> bool) -> Vec<&Node> {
        let mut out = Vec::new();
        self.find(pred, &mut out);
        out
    }

    fn by_id(&self, id: &str) -> &Node {
        let found = self.all(&|n| n.attr("id") == Some(id));
        assert_eq!(found.len(), 1, "one element with id {id}");
        found[0]
    }
}

fn element(e: &quick_xml::events::BytesStart) -> Node {
    Node {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                    String::from_utf8_lossy(&a.value).into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// Parses a page as XML; panics (failing the test) on anything not well-formed.
fn parse(html: &str) -> Node {
    let mut reader = quick_xml::Reader::from_str(html);
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().expect("well-formed page") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => {
                let n = element(&e);
                stack.last_mut().unwrap().children.push(n);
            }
            Event::End(_) => {
                let n = stack.pop().unwrap();
                stack.last_mut().expect("balanced tags").children.push(n);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&String::from_utf8_lossy(t.as_ref())),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    stack.pop().unwrap()
}

/// A = 4 MiB of system + 2 MiB of holes; B = the same system + 1 MiB of new data.
fn images(d: &Dir) -> (String, String) {
    let os = noise(4 * MIB as usize, 1);
    let new = noise(MIB as usize, 2);
    image(&d.path("A.raw"), 6 * MIB, &[(0, &os)]);
    image(&d.path("B.raw"), 5 * MIB, &[(0, &os), (4 * MIB, &new)]);
    (d.s("A.raw"), d.s("B.raw"))
}

fn push(d: &Dir, img: &str, name: &str, store: &str) -> serde_json::Value {
    let recipe = d.s(&format!("{name}.recipe"));
    bonsai_json(&[
        "push",
        img,
        "--store",
        store,
        "-o",
        &recipe,
        "--name",
        name,
        "--fixed",
        "--json",
        "--no-cache",
    ])
}

fn bytes_of(n: &Node) -> u64 {
    n.attr("data-bytes").expect("data-bytes").parse().unwrap()
}

/// The `data-key` cell of the image row named `image` in the table with id `table`.
fn cell(page: &Node, table: &str, image: &str, key: &str) -> u64 {
    let t = page.by_id(table);
    let row = t.all(&|n| n.name == "tr" && n.attr("data-image") == Some(image));
    assert_eq!(row.len(), 1, "row {image} in {table}");
    let c = row[0].all(&|n| n.attr("data-key") == Some(key));
    bytes_of(c[0])
}

#[test]
fn report_figures_json_and_html_agree_on_known_sharing() {
    let d = Dir::new();
    let (a, b) = images(&d);
    let store = d.path("store");
    std::fs::create_dir(&store).unwrap();
    let srv = Server::start(&store, &[]);
    let pa = push(&d, &a, "A", &srv.url);
    let pb = push(&d, &b, "B", &srv.url);
    let sent = |p: &serde_json::Value| p["sent_bytes"].as_u64().unwrap();
    // The push's own vocabulary: the factors multiply to the overall ratio.
    let sv = &pb["savings"];
    let product: f64 = ["zero_elimination", "deduplication", "compression"]
        .iter()
        .map(|k| sv[k].as_f64().unwrap())
        .product();
    assert!((product - pb["overall_ratio"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(pb["overall_ratio"], pb["dedup_ratio"], "old name kept");

    let html = d.path("report.html");
    let r = bonsai_json(&[
        "report",
        "--store",
        &srv.url,
        "--json",
        "--html",
        html.to_str().unwrap(),
    ]);
    let im = &r["images"];
    let (ra, rb) = (&im[0], &im[1]);
    assert_eq!(
        (ra["name"].as_str(), rb["name"].as_str()),
        (Some("A@1"), Some("B@1")),
        "each version is a row, named NAME@VERSION"
    );
    assert_eq!(ra["zero_bytes"], 2 * MIB);
    assert_eq!(ra["data_bytes"], 4 * MIB);
    assert_eq!(ra["unique_bytes"], 0);
    assert_eq!(rb["shared_bytes"], 4 * MIB);
    assert_eq!(rb["unique_bytes"], MIB, "exactly the new MiB");
    assert_eq!(rb["unique_stored_bytes"], sent(&pb));
    assert_eq!(rb["new_stored_bytes"], sent(&pb));
    assert_eq!(ra["stored_bytes"], sent(&pa));
    assert_eq!(r["totals"]["stored_bytes"], sent(&pa) + sent(&pb));
    assert_eq!(r["totals"]["distinct_bytes"], 5 * MIB);
    assert_eq!(r["totals"]["logical_bytes"], 11 * MIB);
    assert_eq!(r["matrix"]["stored"][0][1], ra["stored_bytes"]);

    // The page: well-formed, and the same figures in its tables and chart.
    let page = parse(&std::fs::read_to_string(&html).unwrap());
    assert_eq!(cell(&page, "image-table", "B@1", "unique_bytes"), MIB);
    assert_eq!(cell(&page, "image-table", "A@1", "data_bytes"), 4 * MIB);
    assert_eq!(
        cell(&page, "growth-table", "B@1", "stored_bytes"),
        sent(&pa) + sent(&pb)
    );
    let chart = page.by_id("growth-chart");
    let stored = chart.all(&|n| n.attr("data-series") == Some("stored"));
    let points: Vec<u64> = stored[0]
        .all(&|n| n.name == "circle")
        .iter()
        .map(|c| bytes_of(c))
        .collect();
    assert_eq!(points, [sent(&pa), sent(&pa) + sent(&pb)]);
    for series in ["logical", "data", "distinct", "stored"] {
        assert_eq!(
            chart.all(&|n| n.attr("data-series") == Some(series)).len(),
            1,
            "{series}"
        );
    }
    let bars = page.by_id("image-bars");
    let b_bar = bars.all(&|n| n.attr("data-image") == Some("B@1") && n.name == "g");
    assert_eq!(
        b_bar[0].attr("data-unique-stored"),
        Some(sent(&pb).to_string().as_str())
    );
    let overall = page
        .by_id("savings")
        .all(&|n| n.attr("data-key") == Some("overall"));
    let shown: f64 = overall[0].attr("data-ratio").unwrap().parse().unwrap();
    let expected = r["totals"]["savings"]["overall"].as_f64().unwrap();
    assert!((shown - expected).abs() < 1e-9);
    assert!(
        page.all(&|n| n.name == "script").is_empty(),
        "a report file runs no script"
    );
    let remote = page.all(&|n| {
        n.attrs
            .iter()
            .any(|(k, v)| (k == "src" || k == "href") && !v.starts_with('#'))
    });
    assert!(remote.is_empty(), "no network at view time: {remote:?}");
}

/// The value in column `header` of the text table row starting with `row` (columns are
/// right-aligned under their headers).
fn text_cell(table: &str, header: &str, row: &str) -> String {
    let head = table
        .lines()
        .find(|l| l.contains(header) && l.starts_with(|c: char| c.is_alphabetic()))
        .unwrap_or_else(|| panic!("no header {header:?} in {table}"));
    let end = head.find(header).unwrap() + header.len();
    let line = table
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?} in {table}"));
    let cut = &line[..end.min(line.len())];
    cut.rsplit("  ").next().unwrap().trim().to_string()
}

#[test]
fn every_screen_names_its_quantity_and_equal_ones_print_equal() {
    let d = Dir::new();
    let (a, b) = images(&d);
    let store = d.s("store");
    assert!(bonsai(&["init", &store]).status.success());
    push(&d, &a, "A", &store);
    push(&d, &b, "B", &store);
    let text = |args: &[&str]| {
        let out = bonsai(args);
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8(out.stdout).unwrap()
    };
    // `images` and `report` print the stored bytes only an image holds alike
    let images = text(&["images", "--store", &store]);
    let report = text(&["report", "--store", &store]);
    let shown = text_cell(&images, "stored only here", "B ");
    assert_eq!(shown, text_cell(&report, "stored only here", "B@1"));
    let json = bonsai_json(&["report", "--store", &store, "--json"]);
    let unique = json["images"][1]["unique_stored_bytes"].as_u64().unwrap();
    assert_eq!(shown, bonsai_core::stats::human_bytes(unique));
    assert_eq!(
        text_cell(&report, "only here", "B@1"),
        "1.0 MiB",
        "plaintext, as RATIOS.md"
    );
    let totals = report
        .lines()
        .find(|l| l.contains("zero elimination"))
        .unwrap();
    assert!(
        totals.contains("(data / distinct)") && totals.contains("(logical / stored)"),
        "{totals}"
    );
    // a re-push says its deduplication counts against the store, and names each quotient
    let again = text(&[
        "push",
        &b,
        "--store",
        &store,
        "-o",
        &d.s("again.recipe"),
        "--fixed",
        "--no-cache",
    ]);
    let line = again.lines().find(|l| l.contains("savings")).unwrap();
    for words in [
        "against the store",
        "(logical / data)",
        "(data / new)",
        "(new / sent)",
        "(logical / sent)",
    ] {
        assert!(line.contains(words), "{words:?} in {line}");
    }
}

#[test]
fn analyze_html_draws_local_growth() {
    let d = Dir::new();
    let (a, b) = images(&d);
    let html = d.path("analyze.html");
    let out = bonsai(&[
        "analyze",
        &a,
        &b,
        "--fixed",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = parse(&std::fs::read_to_string(&html).unwrap());
    let chart = page.by_id("growth-chart");
    let distinct = chart.all(&|n| n.attr("data-series") == Some("distinct"));
    let points: Vec<u64> = distinct[0]
        .all(&|n| n.name == "circle")
        .iter()
        .map(|c| bytes_of(c))
        .collect();
    assert_eq!(points, [4 * MIB, 5 * MIB]);
    assert!(
        chart
            .all(&|n| n.attr("data-series") == Some("stored"))
            .is_empty(),
        "nothing stored"
    );
    assert_eq!(cell(&page, "growth-table", &b, "data_bytes"), 9 * MIB);
}

/// Runs headless Chromium on `url` with the flags that keep it off the network.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    let exe = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!("chromium not found: install the Debian package chromium (./test.sh does)")
        });
    let mut cmd = Command::new(exe);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1800",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    crate::tools::output(&mut cmd)
}

#[test]
fn dashboard_in_headless_chromium() {
    let d = Dir::new();
    let (a, b) = images(&d);
    let store = d.path("store");
    std::fs::create_dir(&store).unwrap();
    let srv = Server::start(&store, &[]);
    push(&d, &a, "A", &srv.url);
    push(&d, &b, "B", &srv.url);
    let r = bonsai_json(&["report", "--store", &srv.url, "--json"]);
    let url = format!("{}/", srv.url);
    let out = chromium(&d.path("profile-dom"), &["--dump-dom"], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        r#"<tr data-image="A@1">"#,
        r#"<tr data-image="B@1">"#,
        r#"id="growth-chart""#,
        r#"id="sharing-matrix""#,
        &format!(
            r#"data-key="stored_bytes" data-bytes="{}""#,
            r["totals"]["stored_bytes"]
        ),
        &format!(r#"data-key="unique_bytes" data-bytes="{MIB}""#),
        // the operator's part: when, which server, since when, how full, gc and check
        r#"id="generated" data-unix=""#,
        r#"<section id="health">"#,
        r#"<dd data-key="uptime">"#,
        r#"<dd data-key="disk">"#,
        r#"<dd data-key="last_gc">not since the server started</dd>"#,
        r#"<td data-key="registered" data-unix=""#,
    ] {
        assert!(dom.contains(needle), "dashboard DOM lacks {needle}");
    }
    let pushes = dom
        .split(r#"<dd data-key="recent_pushes">"#)
        .nth(1)
        .unwrap_or("");
    assert!(
        pushes.starts_with("B@1 ("),
        "newest push first: {pushes:.60}"
    );
    // a check run shows on the next load
    let check = bonsai(&["check", "--store", &srv.url]);
    assert!(check.status.success(), "{check:?}");
    // at 800 px (a laptop's half screen) nothing scrolls sideways: the page's own script
    // marks whether its width fits the window, after layout
    let narrow = chromium(
        &d.path("profile-narrow"),
        &[
            "--window-size=800,1200",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ],
        &url,
    );
    let dom = String::from_utf8_lossy(&narrow.stdout).into_owned();
    assert!(
        dom.contains(r#"data-fits="true""#),
        "the page scrolls sideways at 800 px"
    );
    assert!(
        dom.contains(r#"<dd data-key="last_check">"#) && dom.contains("0 damaged"),
        "check not shown"
    );
    // A screenshot as a test artefact, under the target directory (not committed).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let out = chromium(&d.path("profile-shot"), &[&arg], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
}
