//! The drill as a picture: a self-contained SVG timeline (no scripts, fonts or fetches) of the
//! probe's delivered and lost packets, each step's span and measured outage, and every line
//! the bond logged, placed where it happened. Hovering a mark shows its text.

use std::fmt::Write;
use std::time::Duration;

use super::drill::DrillReport;
use super::probe::Record;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
/// The delivery chart's top and bottom.
const TOP: f64 = 70.0;
const BOTTOM: f64 = 250.0;
/// The lane of log marks.
const LOG_LANE: f64 = 275.0;
/// Where the step table begins.
const TABLE: f64 = 315.0;
const ROW: f64 = 16.0;
/// The width of a bar: the probe's packets are counted in bins this long.
const BIN: Duration = Duration::from_millis(20);

/// A step's span on the probe's clock.
pub struct Span {
    pub from: Duration,
    pub to: Duration,
}

/// Text as SVG wants it inside elements and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Scale {
    end: Duration,
}

impl Scale {
    fn x(&self, t: Duration) -> f64 {
        let span = self.end.as_secs_f64().max(0.001);
        LEFT + (WIDTH - LEFT - RIGHT) * (t.as_secs_f64() / span).min(1.0)
    }
}

/// Per bin: (start, sent, delivered).
fn bins(record: &Record) -> Vec<(Duration, u32, u32)> {
    let end = record.sent.last().copied().unwrap_or_default();
    let count = (end.as_nanos() / BIN.as_nanos()) as usize + 1;
    let mut out: Vec<(Duration, u32, u32)> = (0..count).map(|i| (BIN * i as u32, 0, 0)).collect();
    for (seq, at) in record.sent.iter().enumerate() {
        let b = &mut out[(at.as_nanos() / BIN.as_nanos()) as usize];
        b.1 += 1;
        b.2 += u32::from(record.arrivals.contains_key(&(seq as u32)));
    }
    out
}

pub fn svg(report: &DrillReport, record: &Record, spans: &[Span], log: &[(Duration, String)]) -> String {
    let scale = Scale { end: record.sent.last().copied().unwrap_or(Duration::from_secs(1)) };
    let height = TABLE + ROW * (report.steps.len() as f64 + 1.5);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(o, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let passed = report.steps.iter().filter(|s| s.passed).count();
    let title = format!(
        "rbond drill: bond0 ({}), {} packets/s; {verdict}, {passed} of {} steps",
        report.options.join(" "),
        report.pps,
        report.steps.len()
    );
    let _ = writeln!(o, "<text x=\"{LEFT}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(&title));
    let _ = writeln!(
        o,
        "<text x=\"{LEFT}\" y=\"40\" fill=\"#555\">packets delivered per {} ms (green) and lost (red); steps numbered above, between dashed lines; the bond's log lines below (hover for text)</text>",
        BIN.as_millis()
    );
    step_bands(&mut o, &scale, report, spans);
    delivery(&mut o, &scale, record);
    step_edges(&mut o, &scale, spans);
    axis(&mut o, &scale);
    log_marks(&mut o, &scale, log);
    step_table(&mut o, report);
    o.push_str("</svg>\n");
    o
}

/// Alternate shading per step, its number on top, and its outage where there was one.
fn step_bands(o: &mut String, scale: &Scale, report: &DrillReport, spans: &[Span]) {
    o.push_str("<g>\n");
    for (i, (span, step)) in spans.iter().zip(&report.steps).enumerate() {
        let (x0, x1) = (scale.x(span.from), scale.x(span.to));
        let fill = if i % 2 == 0 { "#f2f4f8" } else { "#ffffff" };
        let _ = writeln!(
            o,
            "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"{fill}\"><title>{}</title></rect>",
            (x1 - x0).max(0.5),
            BOTTOM - TOP,
            esc(&format!("{}. {}", i + 1, step.step))
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            (x0 + x1) / 2.0,
            TOP - 6.0,
            i + 1
        );
        if step.outage_ms > 0.0 {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#c62828\" font-weight=\"bold\">{:.0} ms</text>",
                (x0 + x1) / 2.0,
                TOP + 14.0,
                step.outage_ms
            );
        }
    }
    o.push_str("</g>\n");
}

/// A dashed line where each step begins, over the bars.
fn step_edges(o: &mut String, scale: &Scale, spans: &[Span]) {
    o.push_str("<g stroke=\"#333\" stroke-dasharray=\"3,3\" stroke-opacity=\"0.6\">\n");
    for span in spans {
        let x = scale.x(span.from);
        let _ = writeln!(o, "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\"/>");
    }
    o.push_str("</g>\n");
}

/// A bar per bin: the delivered share in green, the lost share in red on top of it.
fn delivery(o: &mut String, scale: &Scale, record: &Record) {
    let h = BOTTOM - TOP - 20.0;
    o.push_str("<g>\n");
    for (start, sent, delivered) in bins(record).into_iter().filter(|b| b.1 > 0) {
        let (x0, x1) = (scale.x(start), scale.x(start + BIN));
        let w = (x1 - x0).max(0.5);
        let ok = h * f64::from(delivered) / f64::from(sent);
        let _ = writeln!(
            o,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{ok:.1}\" fill=\"#43a047\"/>",
            BOTTOM - ok
        );
        if delivered < sent {
            let _ = writeln!(
                o,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"#e53935\"><title>{} of {} lost at {:.2} s</title></rect>",
                BOTTOM - h,
                h - ok,
                sent - delivered,
                sent,
                start.as_secs_f64()
            );
        }
    }
    o.push_str("</g>\n");
}

fn axis(o: &mut String, scale: &Scale) {
    let _ =
        writeln!(o, "<line x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{}\" y2=\"{BOTTOM}\" stroke=\"#333\"/>", WIDTH - RIGHT);
    let seconds = scale.end.as_secs();
    let every = (seconds / 20).max(1);
    for s in (0..=seconds).step_by(every as usize) {
        let x = scale.x(Duration::from_secs(s));
        let _ =
            writeln!(o, "<line x1=\"{x:.1}\" y1=\"{BOTTOM}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/>", BOTTOM + 4.0);
        let _ =
            writeln!(o, "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{s} s</text>", BOTTOM + 15.0);
    }
}

/// A mark per log line; a failover's line in red.
fn log_marks(o: &mut String, scale: &Scale, log: &[(Duration, String)]) {
    let _ =
        writeln!(o, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">log</text>", LEFT - 6.0, LOG_LANE + 4.0);
    o.push_str("<g>\n");
    for (at, line) in log {
        let colour = if line.ends_with("the new active one.") { "#c62828" } else { "#1e88e5" };
        let _ = writeln!(
            o,
            "<circle cx=\"{:.1}\" cy=\"{LOG_LANE}\" r=\"3.5\" fill=\"{colour}\"><title>{:.3} s: {}</title></circle>",
            scale.x(*at),
            at.as_secs_f64(),
            esc(line)
        );
    }
    o.push_str("</g>\n");
}

/// The steps as the drill's table has them.
fn step_table(o: &mut String, report: &DrillReport) {
    let head = ["#", "step", "active", "lost", "outage", "allowed", "verdict"];
    let cols = [LEFT, LEFT + 25.0, LEFT + 230.0, LEFT + 370.0, LEFT + 430.0, LEFT + 510.0, LEFT + 590.0];
    o.push_str("<g>\n");
    for (c, h) in cols.iter().zip(head) {
        let _ = writeln!(o, "<text x=\"{c}\" y=\"{TABLE}\" font-weight=\"bold\">{h}</text>");
    }
    for (i, s) in report.steps.iter().enumerate() {
        let y = TABLE + ROW * (i as f64 + 1.0);
        let name = |a: &Option<String>| a.clone().unwrap_or_else(|| "none".into());
        let verdict = s.problem.as_deref().map_or("pass".to_string(), |p| format!("FAIL: {p}"));
        let cells = [
            (i + 1).to_string(),
            s.step.clone(),
            format!("{} → {}", name(&s.active_before), name(&s.active_after)),
            s.lost.to_string(),
            format!("{:.1} ms", s.outage_ms),
            format!("≤ {} ms", s.expected_outage_ms),
            verdict,
        ];
        let fill = if s.passed { "#222" } else { "#c62828" };
        for (c, text) in cols.iter().zip(cells) {
            let _ = writeln!(o, "<text x=\"{c}\" y=\"{y}\" fill=\"{fill}\">{}</text>", esc(&text));
        }
    }
    o.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn bins_count_sent_and_delivered() {
        let sent: Vec<Duration> = (0..10).map(|i| Duration::from_millis(i * 5)).collect();
        let arrivals: HashMap<u32, Duration> = [0, 1, 2, 5].into_iter().map(|s| (s, Duration::ZERO)).collect();
        let r = Record { interval: Duration::from_millis(5), sent, arrivals, duplicates: Vec::new() };
        assert_eq!(bins(&r), vec![(Duration::ZERO, 4, 3), (BIN, 4, 1), (BIN * 2, 2, 0)]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
