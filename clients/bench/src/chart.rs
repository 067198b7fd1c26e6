//! The fan-out chart: p99 (solid) and p50 (dashed) delivery latency against the offered
//! message rate, one colour per target, log scale on both axes, with the 5 ms budget drawn
//! across. Hand-written SVG from a results document.

use serde_json::Value;

use crate::report::Report;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// One target's points: (rate, p50 ms, p99 ms).
type Series = (String, Vec<(f64, f64, f64)>);

fn colour(target: &str) -> &'static str {
    match target {
        "triad" => "#1f6feb",
        "triad-redis" => "#6f42c1",
        "socketio" => "#d1242f",
        "ceiling" => "#2da44e",
        _ => "#57606a",
    }
}

/// Renders the chart of every fan-out result in `report`.
pub fn fanout_svg(report: &Report) -> String {
    let mut series: Vec<Series> = Vec::new();
    for e in report.results.iter().filter(|e| e.workload == "fanout") {
        let Some(points) = e.result.get("points").and_then(Value::as_array) else {
            continue;
        };
        let pts: Vec<(f64, f64, f64)> = points
            .iter()
            .filter_map(|p| {
                Some((
                    p.get("rate")?.as_f64()?,
                    p.pointer("/median/delivery/p50_ms")?.as_f64()?,
                    p.pointer("/median/delivery/p99_ms")?.as_f64()?,
                ))
            })
            .filter(|(r, a, b)| *r > 0.0 && *a > 0.0 && *b > 0.0)
            .collect();
        if !pts.is_empty() {
            series.push((e.target.clone(), pts));
        }
    }
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(r, p50, p99) in all {
        xmin = xmin.min(r);
        xmax = xmax.max(r);
        ymin = ymin.min(p50);
        ymax = ymax.max(p99);
    }
    if series.is_empty() {
        (xmin, xmax, ymin, ymax) = (100.0, 10000.0, 0.1, 10.0);
    }
    // Decades around the data, the 5 ms budget always in view.
    let xlo = 10f64.powf(xmin.log10().floor());
    let xhi = 10f64.powf(xmax.log10().ceil().max(xlo.log10() + 1.0));
    let ylo = 10f64.powf(ymin.min(5.0).log10().floor());
    let yhi = 10f64.powf(ymax.max(5.0).log10().ceil().max(ylo.log10() + 1.0));
    let px = |x: f64| {
        LEFT + (x.log10() - xlo.log10()) / (xhi.log10() - xlo.log10()) * (W - LEFT - RIGHT)
    };
    let py = |y: f64| {
        H - BOTTOM - (y.log10() - ylo.log10()) / (yhi.log10() - ylo.log10()) * (H - TOP - BOTTOM)
    };

    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\">Room fan-out: send to delivery at every other member (median run)</text>\n"
    );
    // Grid and axes.
    let mut decade = xlo;
    while decade <= xhi * 1.0001 {
        for k in 1..10 {
            let x = decade * k as f64;
            if x > xhi * 1.0001 {
                break;
            }
            let stroke = if k == 1 { "#bbb" } else { "#eee" };
            s.push_str(&format!(
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"{stroke}\"/>\n",
                px(x),
                H - BOTTOM
            ));
            if k == 1 || k == 2 || k == 5 {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                    px(x),
                    H - BOTTOM + 16.0,
                    x
                ));
            }
        }
        decade *= 10.0;
    }
    let mut decade = ylo;
    while decade <= yhi * 1.0001 {
        for k in 1..10 {
            let y = decade * k as f64;
            if y > yhi * 1.0001 {
                break;
            }
            let stroke = if k == 1 { "#bbb" } else { "#eee" };
            s.push_str(&format!(
                "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{stroke}\"/>\n",
                py(y),
                W - RIGHT
            ));
            if k == 1 || k == 2 || k == 5 {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                    LEFT - 6.0,
                    py(y) + 4.0,
                    y
                ));
            }
        }
        decade *= 10.0;
    }
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#888\" stroke-dasharray=\"2 3\"/>\n\
         <text x=\"{2:.1}\" y=\"{3:.1}\" fill=\"#888\">5 ms budget</text>\n",
        py(5.0),
        W - RIGHT,
        W - RIGHT + 6.0,
        py(5.0) + 4.0
    ));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">messages per second (all senders; each reaches 3 other members)</text>\n\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">latency, ms</text>\n",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 18.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    ));
    for (i, (target, pts)) in series.iter().enumerate() {
        let c = colour(target);
        for (dash, pick) in [("", 2usize), (" stroke-dasharray=\"5 4\"", 1)] {
            let line: Vec<String> = pts
                .iter()
                .map(|p| {
                    let y = if pick == 2 { p.2 } else { p.1 };
                    format!("{:.1},{:.1}", px(p.0), py(y))
                })
                .collect();
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash} points=\"{}\"/>\n",
                line.join(" ")
            ));
        }
        for p in pts {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>\n",
                px(p.0),
                py(p.2)
            ));
        }
        let ly = TOP + 20.0 + i as f64 * 20.0;
        s.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{2:.1}\" y2=\"{1:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>\n\
             <text x=\"{3:.1}\" y=\"{4:.1}\">{target}</text>\n",
            W - RIGHT + 10.0,
            ly,
            W - RIGHT + 34.0,
            W - RIGHT + 40.0,
            ly + 4.0
        ));
    }
    let ly = TOP + 20.0 + series.len() as f64 * 20.0 + 10.0;
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{ly:.1}\" fill=\"#555\">solid: p99</text>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">dashed: p50</text>\n</svg>\n",
        W - RIGHT + 10.0,
        W - RIGHT + 10.0,
        ly + 16.0
    ));
    s
}
