//! The renderers: well-formed HTML and SVG, escaping, the Markdown table.

mod common;

use bridgeml_gate::{
    render_html, render_markdown, render_text, svg, BarSeries, Check, GateName, GateReport,
    GateResult, GroupedBars, HLine, Histogram, LinePlot, LineSeries, Plot, Status, VLine,
};

/// Parses a whole HTML document as XML (it is written to be well-formed).
fn parse_doc(html: &str) -> roxmltree::Document<'_> {
    let opt = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(html, opt).expect("report.html parses as XML")
}

const EVIL: &str = "<script>alert('x')</script> & \"q\" | `tick` *b*";

fn evil_report() -> GateReport {
    let g = GateResult::new(GateName::Other(EVIL.into()), EVIL)
        .with_check(
            Check::new(EVIL, Status::Fail)
                .with_value(EVIL)
                .with_unit(EVIL)
                .with_message(EVIL),
        )
        .with_threshold(EVIL, EVIL)
        .with_evidence(EVIL, EVIL)
        .with_plot(Histogram {
            title: EVIL.into(),
            x_label: EVIL.into(),
            y_label: EVIL.into(),
            bins: vec![0.0, 1.0, 2.0],
            series: vec![
                bridgeml_gate::HistSeries {
                    name: EVIL.into(),
                    counts: vec![1.0, 2.0],
                },
                bridgeml_gate::HistSeries {
                    name: "b".into(),
                    counts: vec![2.0, 1.0],
                },
            ],
            vlines: vec![VLine::limit(EVIL, 1.5)],
        })
        .with_plot(GroupedBars {
            title: EVIL.into(),
            categories: vec![EVIL.into()],
            series: vec![BarSeries {
                name: EVIL.into(),
                values: vec![1.0],
            }],
            y_label: EVIL.into(),
            hlines: vec![HLine::limit(EVIL, 0.5)],
        })
        .with_plot(LinePlot {
            title: EVIL.into(),
            x_label: EVIL.into(),
            y_label: EVIL.into(),
            x_labels: vec![EVIL.into(), "b".into()],
            series: vec![LineSeries {
                name: EVIL.into(),
                values: vec![Some(1.0), Some(2.0)],
            }],
            hlines: vec![],
        });
    GateReport::new(EVIL, EVIL, vec![g])
        .with_title(EVIL)
        .with_model(EVIL, EVIL)
        .with_hardware(EVIL, EVIL)
}

#[test]
fn html_is_well_formed_xml_and_self_contained() {
    let html = render_html(&common::sample_report());
    let doc = parse_doc(&html);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "html");
    // No scripts, no external resources: only in-page links.
    assert!(!html.contains("<script"), "no JavaScript");
    for node in doc.descendants().filter(|n| n.is_element()) {
        for attr in ["href", "src"] {
            if let Some(v) = node.attribute(attr) {
                assert!(v.starts_with('#'), "{attr}={v} is not an in-page link");
            }
        }
    }
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(!html.contains("https://"));
    // One section per gate, all gate names shown.
    assert_eq!(html.matches("<section class=\"card gate").count(), 8);
    for title in [
        "Preprocessing parity",
        "Quantization",
        "OOD guard",
        "Drift baselines",
        "Latency",
        "Resource budget",
        "Shadow test",
        "Retraining policy",
    ] {
        assert!(html.contains(title), "{title}");
    }
}

#[test]
fn every_svg_parses_and_has_its_parts() {
    let html = render_html(&common::sample_report());
    let svgs = common::svg_elements(&html);
    assert_eq!(svgs.len(), 6);
    for s in &svgs {
        let doc = roxmltree::Document::parse(s).unwrap_or_else(|e| panic!("{e}: {s}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert!(root.attribute("viewBox").is_some());
        // Every coordinate is a finite number.
        for n in doc.descendants().filter(|n| n.is_element()) {
            for a in [
                "x", "y", "width", "height", "x1", "x2", "y1", "y2", "cx", "cy",
            ] {
                if let Some(v) = n.attribute(a) {
                    let f: f64 = v.parse().unwrap_or_else(|_| panic!("{a}={v}"));
                    assert!(f.is_finite(), "{a}={v}");
                }
            }
        }
    }
    // The latency histogram: one bar per non-empty bin, p50/p95/p99 and SLA lines labelled.
    let lat = svgs[4];
    for label in ["p50 ", "p95 ", "p99 ", "SLA p99 15"] {
        assert!(lat.contains(label), "{label}");
    }
    // The recall bars: 10 classes x 2 series.
    let bars = roxmltree::Document::parse(svgs[0]).unwrap();
    let rects = bars
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.children().any(|c| c.has_tag_name("title")))
        .count();
    assert_eq!(rects, 20);
    assert!(svgs[0].contains("Ankle boot") && svgs[0].contains("INT8 (PTQ)"));
    // The line plot draws the gap on day 5 as two path pieces.
    let line = svgs[3];
    let path_d = line
        .split("<path d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(path_d.matches('M').count(), 2, "{path_d}");
}

#[test]
fn user_strings_are_escaped_everywhere() {
    let report = evil_report();
    let html = render_html(&report);
    assert!(!html.contains("<script"), "raw <script> in HTML");
    assert!(html.contains("&lt;script&gt;"));
    parse_doc(&html);
    for s in common::svg_elements(&html) {
        roxmltree::Document::parse(s).expect("svg well-formed");
    }
    let md = render_markdown(&report);
    assert!(!md.contains("<script"), "raw <script> in Markdown:\n{md}");
    // Pipes inside cells are escaped, so every table row keeps its columns.
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let unescaped = line.replace("\\|", "");
        let cols = unescaped.matches('|').count();
        assert!(cols == 4 || cols == 6, "{line}");
    }
    // Text output is for a terminal: no escaping, but one line per gate.
    assert!(render_text(&report).contains(EVIL));
}

#[test]
fn markdown_has_verdict_table_and_details() {
    let md = render_markdown(&common::sample_report());
    let first = md.lines().next().unwrap();
    assert_eq!(first, "### bridgeml gate: **`FAIL`**");
    assert!(md.contains("5 pass, 1 warn, 1 fail, 1 skip; exit code 1"));
    let lines: Vec<&str> = md.lines().collect();
    let head = lines
        .iter()
        .position(|l| *l == "| Gate | Status | Summary |")
        .expect("gate table");
    assert_eq!(lines[head + 1], "| --- | --- | --- |");
    let rows: Vec<&str> = lines[head + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .copied()
        .collect();
    assert_eq!(rows.len(), 8);
    assert!(
        rows[1].starts_with("| Quantization | **`FAIL`** | INT8 recall of \"Shirt\""),
        "{}",
        rows[1]
    );
    assert!(
        rows[5].starts_with("| Resource budget | `SKIP` |"),
        "{}",
        rows[5]
    );
    // The failed gate is unfolded, the others folded.
    assert!(md.contains("<details open><summary><b>Quantization</b>: FAIL</summary>"));
    assert!(md.contains("<details><summary><b>Latency</b>: PASS</summary>"));
    assert!(
        md.contains("| recall\\_drop\\[Shirt\\] | 7 points | &lt;= 3 points | **`FAIL`** |"),
        "{md}"
    );
    assert_eq!(
        md.matches("<details").count(),
        md.matches("</details>").count()
    );
    // Comment-sized.
    assert!(md.len() < 8000, "{} bytes", md.len());
}

#[test]
fn text_lists_gates_and_failed_checks() {
    let t = render_text(&common::sample_report());
    assert!(t.starts_with("bridgeml gate: FAIL (exit code 1)\n"));
    assert!(t.contains("FAIL  quantization"));
    assert!(t.contains("- recall_drop[Shirt]: 7 points (limit <= 3 points): minority class"));
    assert!(t.contains("SKIP  budget"));
}

#[test]
fn degenerate_plots_render_without_panicking() {
    let plots = [
        Plot::Histogram(Histogram {
            title: "empty".into(),
            x_label: "".into(),
            y_label: "".into(),
            bins: vec![],
            series: vec![],
            vlines: vec![VLine::marker("nan", f64::NAN)],
        }),
        Plot::Histogram(Histogram::from_samples(
            "constant",
            "x",
            &[("a", &[1.0, 1.0])],
            10,
            None,
            true,
        )),
        Plot::GroupedBars(GroupedBars {
            title: "negative".into(),
            categories: vec!["a".into(), "b".into()],
            series: vec![BarSeries {
                name: "d".into(),
                values: vec![-0.3, f64::INFINITY],
            }],
            y_label: "".into(),
            hlines: vec![],
        }),
        Plot::GroupedBars(GroupedBars {
            title: "none".into(),
            categories: vec![],
            series: vec![],
            y_label: "".into(),
            hlines: vec![],
        }),
        Plot::Line(LinePlot {
            title: "one point".into(),
            x_label: "".into(),
            y_label: "".into(),
            x_labels: vec!["d1".into()],
            series: vec![LineSeries {
                name: "a".into(),
                values: vec![None],
            }],
            hlines: vec![],
        }),
    ];
    for p in &plots {
        let s = svg::render_plot(p);
        roxmltree::Document::parse(&s).unwrap_or_else(|e| panic!("{}: {e}\n{s}", p.title()));
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
    }
}

#[test]
fn histogram_from_samples_bins_everything() {
    let h = Histogram::from_samples(
        "t",
        "x",
        &[("a", &[0.0, 0.5, 1.0, 2.0, f64::NAN])],
        4,
        Some((0.0, 1.0)),
        false,
    );
    assert_eq!(h.bins, [0.0, 0.25, 0.5, 0.75, 1.0]);
    // 2.0 is outside the range and lands in the last bin; NaN is dropped.
    assert_eq!(h.series[0].counts, [1.0, 0.0, 1.0, 2.0]);
    let f = Histogram::from_samples(
        "t",
        "x",
        &[("a", &[0.0, 1.0]), ("b", &[0.0])],
        2,
        None,
        true,
    );
    assert_eq!(f.series[0].counts, [0.5, 0.5]);
    assert_eq!(f.series[1].counts, [1.0, 0.0]);
    assert_eq!(f.y_label, "fraction");
}

/// Writes the sample report where `BRIDGEML_SAMPLE_REPORT_DIR` says, for a
/// person to open (no-op otherwise).
#[test]
fn write_sample_when_asked() {
    if let Ok(dir) = std::env::var("BRIDGEML_SAMPLE_REPORT_DIR") {
        bridgeml_gate::write_reports(&common::sample_report(), dir.as_ref()).unwrap();
    }
}
