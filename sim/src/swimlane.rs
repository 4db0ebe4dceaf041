//! Counterexamples drawn as swimlane diagrams: one lane per process, one
//! row per step, time flowing down; faults in red, the protocol's own
//! events (entering a critical section, acting as primary, committing) in
//! blue, and the step at which the invariant broke outlined in red above a
//! band that states the violation.
//!
//! A [`Diagram`] is built from a simulator run ([`Diagram::from_report`])
//! or from a model checker's counterexample ([`Diagram::from_model`]), and
//! rendered as a self-contained SVG file ([`Diagram::svg`]): no script, no
//! external font or stylesheet, every text escaped, so a path or a message
//! with `<`, `&` or quotes in it cannot change the document.

use std::fmt::Write;

use crate::run::Report;

/// How a step is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An environment call (or a model's file operation).
    Call,
    /// A fault: a crash, a pause, an injected error, a restart.
    Fault,
    /// The protocol's own event, as the oracle sees it.
    Protocol,
    /// Time passing for everyone (a model's `Tick`).
    Time,
}

/// One row: a step of one process (or of none: time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The time or step number shown at the left.
    pub at: String,
    pub lane: Option<usize>,
    pub label: String,
    pub kind: Kind,
}

/// A counterexample to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagram {
    pub title: String,
    pub lanes: Vec<String>,
    pub rows: Vec<Row>,
    /// The row at which the invariant broke, if it did.
    pub breaking: Option<usize>,
    /// The violation, stated under the rows.
    pub verdict: Option<String>,
}

/// Prefixes of the oracle's probe events in a trace.
const PROTOCOL: [&str; 9] = [
    "ENTER",
    "EXIT",
    "PRIMARY",
    "STEPPED DOWN",
    "CLAIMED",
    "UNCLAIMED",
    "COMMITTED",
    "ACK",
    "DONE",
];

fn classify(what: &str) -> Kind {
    let fault = ["CRASH", "MACHINE CRASH", "PAUSE", "RESTART"]
        .iter()
        .any(|p| what.starts_with(p))
        || what.ends_with("(injected)");
    if fault {
        Kind::Fault
    } else if PROTOCOL.iter().any(|p| what.starts_with(p)) {
        Kind::Protocol
    } else {
        Kind::Call
    }
}

impl Diagram {
    /// A traced simulator run (see [`crate::run::replay`]).
    pub fn from_report(report: &Report) -> Diagram {
        let rows: Vec<Row> = report
            .events
            .iter()
            .map(|e| Row {
                at: format!("{:.6}s", e.at_ns as f64 / 1e9),
                lane: e.slot,
                label: e.what.clone(),
                // The world's steps (another tool acting) are faults.
                kind: if e.slot.is_some() {
                    classify(&e.what)
                } else {
                    Kind::Fault
                },
            })
            .collect();
        // Steps are numbered from 1 as they are recorded; the violation
        // is found at the step that made it true.
        let breaking = report
            .violation
            .as_ref()
            .map(|v| (v.step as usize).clamp(1, rows.len().max(1)) - 1)
            .filter(|_| !rows.is_empty());
        Diagram {
            title: format!("replay {}", report.config),
            lanes: (0..report.config.procs).map(|p| format!("p{p}")).collect(),
            rows,
            breaking,
            verdict: report
                .violation
                .as_ref()
                .map(|v| format!("VIOLATION {}: {}", v.finding, v.detail)),
        }
    }

    /// A model checker's counterexample: lines `N. Action(p)  =>  state`
    /// after a `0. (start)` line, as `baton model` prints them. The
    /// process is an action's first argument; an action without one
    /// (`Tick`) is time passing for everyone. The last step breaks the
    /// invariant (the checker stops at the first state that violates it).
    pub fn from_model(name: &str, instances: usize, lines: &[String], verdict: &str) -> Diagram {
        let mut rows = Vec::new();
        for line in lines {
            let Some((number, rest)) = line.trim_start().split_once(". ") else {
                continue;
            };
            let action = rest.split("  =>  ").next().unwrap_or(rest).trim();
            if action == "(start)" {
                continue;
            }
            let lane = action
                .split_once('(')
                .and_then(|(_, args)| {
                    args.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .filter(|&p: &usize| p < instances);
            let kind = match (lane, action) {
                (None, _) => Kind::Time,
                (_, a)
                    if ["Crash", "Pause", "Resume", "Skew", "ReusePid"]
                        .iter()
                        .any(|f| a.starts_with(f)) =>
                {
                    Kind::Fault
                }
                (_, a)
                    if ["Enter", "Commit", "Lead", "Claim", "Acquire"]
                        .iter()
                        .any(|f| a.starts_with(f)) =>
                {
                    Kind::Protocol
                }
                _ => Kind::Call,
            };
            rows.push(Row {
                at: format!("step {number}"),
                lane,
                label: action.to_owned(),
                kind,
            });
        }
        let breaking = rows.len().checked_sub(1);
        Diagram {
            title: format!("model {name}, {instances} processes"),
            lanes: (0..instances).map(|p| format!("p{p}")).collect(),
            rows,
            breaking,
            verdict: Some(verdict.to_owned()),
        }
    }

    /// The diagram as a standalone SVG document.
    pub fn svg(&self) -> String {
        const MARGIN: usize = 16;
        const TIME_W: usize = 110;
        const LANE_W: usize = 320;
        const ROW_H: usize = 20;
        const HEAD_H: usize = 74;
        // 11 px monospace is about 6.6 px a character.
        const CHARS: usize = 46;
        let lanes = self.lanes.len().max(1);
        // Wide enough for the header's legend with a single lane.
        let width = (2 * MARGIN + TIME_W + lanes * LANE_W).max(660);
        let body = self.rows.len() * ROW_H;
        let height = HEAD_H + body + if self.verdict.is_some() { 44 } else { 12 } + MARGIN;
        let lane_x = |l: usize| MARGIN + TIME_W + l * LANE_W;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"11\">"
        );
        let _ = writeln!(
            s,
            "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{MARGIN}\" y=\"24\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            escape(&self.title)
        );
        let _ = writeln!(
            s,
            "<text x=\"{MARGIN}\" y=\"42\" fill=\"#555555\">{} steps; faults in red, protocol events in blue, the breaking step outlined</text>",
            self.rows.len()
        );
        for (l, name) in self.lanes.iter().enumerate() {
            let x = lane_x(l);
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"52\" width=\"{}\" height=\"18\" fill=\"#eeeeee\"/>\
                 <text x=\"{}\" y=\"65\" font-weight=\"bold\">{}</text>\
                 <line x1=\"{x}\" y1=\"52\" x2=\"{x}\" y2=\"{}\" stroke=\"#cccccc\"/>",
                LANE_W - 4,
                x + 6,
                escape(name),
                HEAD_H + body
            );
        }
        for (i, row) in self.rows.iter().enumerate() {
            let y = HEAD_H + i * ROW_H;
            let _ = writeln!(
                s,
                "<text x=\"{MARGIN}\" y=\"{}\" fill=\"#777777\">{}</text>",
                y + 14,
                escape(&row.at)
            );
            let (fill, ink, weight) = match row.kind {
                Kind::Call => ("#f7f7f7", "#222222", "normal"),
                Kind::Fault => ("#fde2e2", "#b00000", "bold"),
                Kind::Protocol => ("#e2ecfd", "#0b3d91", "bold"),
                Kind::Time => ("#f0f0f0", "#777777", "normal"),
            };
            let (x, w) = match row.lane {
                Some(l) => (lane_x(l.min(lanes - 1)), LANE_W - 4),
                None => (lane_x(0), lanes * LANE_W - 4),
            };
            let breaks = self.breaking == Some(i);
            let stroke = if breaks {
                "stroke=\"#d00000\" stroke-width=\"2.5\""
            } else {
                "stroke=\"none\""
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{}\" rx=\"3\" fill=\"{fill}\" {stroke}/>\
                 <text x=\"{}\" y=\"{}\" fill=\"{ink}\" font-weight=\"{weight}\">{}</text>",
                y + 2,
                ROW_H - 4,
                x + 6,
                y + 14,
                escape(&truncate(
                    &row.label,
                    if row.lane.is_some() {
                        CHARS
                    } else {
                        CHARS * lanes
                    }
                ))
            );
        }
        if let Some(verdict) = &self.verdict {
            let y = HEAD_H + body + 8;
            let _ = writeln!(
                s,
                "<rect x=\"{MARGIN}\" y=\"{y}\" width=\"{}\" height=\"26\" fill=\"#d00000\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"#ffffff\" font-weight=\"bold\">{}</text>",
                width - 2 * MARGIN,
                MARGIN + 8,
                y + 17,
                escape(&truncate(verdict, (width - 2 * MARGIN) / 7))
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// At most `max` characters, the cut marked.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text as XML character data (also safe inside attribute quotes).
/// Control characters other than tab are not allowed in XML 1.0 at all:
/// shown as U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_out_of_the_document() {
        let d = Diagram {
            title: "</text><script>alert(1)</script>".into(),
            lanes: vec!["p0\"><g".into()],
            rows: vec![Row {
                at: "0s".into(),
                lane: Some(0),
                label: "read(/w/a&b\n<x>) -> \"'\u{7}".into(),
                kind: Kind::Call,
            }],
            breaking: Some(0),
            verdict: Some("VIOLATION x: <&>".into()),
        };
        let svg = d.svg();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<x>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("a&amp;b"));
        assert!(!svg.contains('\u{7}') && !svg.contains("b\n<"));
        // Every tag opened is closed: a crude well-formedness check.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn model_lines_become_rows_in_their_processes_lanes() {
        let lines: Vec<String> = [
            " 0. (start)  =>  State { lock: None }",
            " 1. CreateExclusive(0)  =>  State { lock: Some(0) }",
            " 2. Crash(0)  =>  State { }",
            " 3. Tick  =>  State { }",
            " 4. Unlink(2)  =>  State { }",
        ]
        .map(String::from)
        .to_vec();
        let d = Diagram::from_model("naive-reap", 3, &lines, "VIOLATION mutual-exclusion");
        let got: Vec<(Option<usize>, Kind)> = d.rows.iter().map(|r| (r.lane, r.kind)).collect();
        assert_eq!(
            got,
            vec![
                (Some(0), Kind::Call),
                (Some(0), Kind::Fault),
                (None, Kind::Time),
                (Some(2), Kind::Call),
            ]
        );
        assert_eq!(d.breaking, Some(3));
        assert_eq!(d.rows[3].label, "Unlink(2)");
    }

    #[test]
    fn a_replayed_violation_is_outlined_at_the_step_that_broke_it() {
        let s = crate::scenarios::scenario("naive-reap").unwrap();
        let report = crate::replay(&s, "naive-reap:random:0:2:1:cpsr:8:::").unwrap();
        let d = Diagram::from_report(&report);
        assert_eq!(d.lanes, ["p0", "p1"]);
        assert_eq!(d.rows.len(), report.events.len());
        let breaking = &d.rows[d.breaking.expect("a violation")];
        // The oracle finds mutual exclusion broken when the second
        // process enters.
        // (here p0, whose clock runs two minutes ahead of p1's, reaped
        // p1's live lock).
        assert_eq!(breaking.label, "ENTER /w/counter");
        assert_eq!(breaking.lane, Some(0));
        assert_eq!(breaking.kind, Kind::Protocol);
        assert_eq!(d.breaking, Some(d.rows.len() - 1));
        let svg = d.svg();
        assert!(svg.contains("VIOLATION mutual-exclusion"));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn trace_steps_are_classified_by_what_they_are() {
        assert_eq!(classify("CRASH in sync_dir(/w)"), Kind::Fault);
        assert_eq!(classify("PAUSE 119s before read(/w/counter)"), Kind::Fault);
        assert_eq!(
            classify("write_all_at(fd3) -> ENOSPC (injected)"),
            Kind::Fault
        );
        assert_eq!(classify("ENTER /w/counter"), Kind::Protocol);
        assert_eq!(classify("read(/w/counter) -> \"0\""), Kind::Call);
    }
}
