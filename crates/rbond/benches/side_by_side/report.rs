//! The tables bench/results.md is made of, and the goals judged by their intervals.

use std::path::Path;

use rbond::lab::stats::{self, Estimate, Verdict, bootstrap, median, percentile};

use crate::{Contender, Figures, Pairs, STREAMS};

fn ratio(p: &Pairs) -> Option<Estimate> {
    (!p.contender.is_empty()).then(|| bootstrap(&p.ratios(), median))
}

fn p95(v: &[f64]) -> f64 {
    percentile(v, 95.0)
}

fn outages(v: &[(f64, u32)]) -> Vec<f64> {
    v.iter().map(|(ms, _)| *ms).collect()
}

/// `median [low, high] / p95 / max` of the outages in ms, and the packets lost.
fn pulls_cell(v: &[(f64, u32)]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let ms = outages(v);
    let lost: Vec<f64> = v.iter().map(|(_, l)| f64::from(*l)).collect();
    format!(
        "{} / {:.1} / {:.1} ms ({:.0} / {:.0} pkts)",
        bootstrap(&ms, median).show(1),
        p95(&ms),
        stats::max(&ms),
        median(&lost),
        stats::max(&lost)
    )
}

fn failed(rows: &[(Contender, Figures)]) {
    for (who, f) in rows {
        if let Some(why) = &f.failure {
            println!("**{}: failed:** {why}\n", who.label());
        }
    }
}

/// The contender against the bare veth beside it: tables, then the goals.
pub fn side_by_side(rows: &[(Contender, Figures)]) {
    failed(rows);
    println!("Throughput in Gbit/s, median of the turns: the contender / bare veth in the same pairs, and the");
    println!("contender's share of bare (the median of the per-pair ratios, with its 95 % interval).\n");
    println!("| path | {} | daemon CPU s per GB | at rest | RSS |", STREAMS.map(|(name, _)| name).join(" | "));
    println!("|---|---|---|---|---|---|---|---|");
    let mut ceilings = Vec::new();
    for (who, f) in rows.iter().filter(|(_, f)| !f.gbps.is_empty()) {
        let busy = |v: &[f64]| format!("{:.0} %", 100.0 * median(v));
        if !f.forwarder_busy.is_empty() {
            let host = &f.host_cpu_per_gb;
            ceilings.push(format!(
                "- {}: the forwarder busy {} of one CPU, the machine {} of all (bare veth: {}); \
                 every CPU together {:.3} s per GB (bare veth: {:.3}), added {} s",
                who.label(),
                busy(&f.forwarder_busy),
                busy(&f.machine_busy.contender),
                busy(&f.machine_busy.witness),
                median(&host.contender),
                median(&host.witness),
                bootstrap(&host.differences(), median).show(3)
            ));
        }
        let cells: Vec<String> = f
            .gbps
            .iter()
            .map(|p| {
                let r = ratio(p).map_or("—".into(), |e| e.show(2));
                format!("{:.2} / {:.2}: {r}", median(&p.contender), median(&p.witness))
            })
            .collect();
        let cpu = f.cpu_per_gb.contender.is_empty().then_some("—".to_string());
        let cpu = cpu.unwrap_or_else(|| bootstrap(&f.cpu_per_gb.contender, median).show(3));
        let (idle, rss) =
            f.idle.map_or(("—".into(), "—".into()), |(i, r)| (format!("{i:.3} %"), format!("{r:.1} MB")));
        println!("| {} | {} | {cpu} | {idle} | {rss} |", who.label(), cells.join(" | "));
    }
    println!(
        "\nWhere the CPU went (medians of the turns; busy shares in the one-stream runs, CPU per GB in all, \
         what the host spent over bare veth as the median of the per-pair differences):\n\n{}\n",
        ceilings.join("\n")
    );
    println!(
        "| path | ping RTT median / p99, µs | bare veth in the same turns | RTT added, median of the turns [95 % interval] | outage on pull at 10k pkt/s, delays 0: median [interval] / p95 / max | with the guide's delays (200 ms) | lost across `rbond restart` |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (who, f) in rows {
        let tails = |v: &[f64]| format!("{:.0} / {:.0}", median(v), percentile(v, 99.0));
        let added = (!f.rtt.contender.is_empty()).then(|| bootstrap(&f.rtt.differences(), median).show(1));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            who.label(),
            tails(&f.all_pings.contender),
            tails(&f.all_pings.witness),
            added.unwrap_or("—".into()),
            pulls_cell(&f.pulls),
            pulls_cell(&f.guide_pulls),
            f.restart.map_or("—".into(), |(l, s)| format!("{l} of {s}"))
        );
    }
    println!();
    goals(rows);
}

/// One line of the goals table.
fn goal(name: &str, measured: Option<(String, Verdict)>) {
    let (m, v) = measured.map_or(("—".to_string(), "not measured".to_string()), |(m, v)| (m, v.to_string()));
    println!("| {name} | {m} | {v} |");
}

/// A point figure (no interval) against its limit.
fn point(ok: bool) -> Verdict {
    if ok { Verdict::Met } else { Verdict::Missed }
}

fn goals(rows: &[(Contender, Figures)]) {
    println!("| goal | measured (median [95 % interval]) | |");
    println!("|---|---|---|");
    for (who, f) in rows {
        let (name, share, rtt, figures) = match who {
            Contender::Kernel => ("kernel datapath (tcx)", 0.95, 5.0, &STREAMS[..]),
            Contender::KernelTc => ("kernel datapath (cls_bpf)", 0.95, 5.0, &STREAMS[..]),
            Contender::Userspace => ("userspace datapath", 0.85, 50.0, &STREAMS[..2]),
            Contender::Ovs => continue,
        };
        for ((label, _), p) in figures.iter().zip(&f.gbps) {
            let e = ratio(p).map(|e| e.scaled(100.0));
            let what = format!("{name}: {label} ≥ {:.0} % of bare veth", share * 100.0);
            goal(&what, e.map(|e| (format!("{} %", e.show(0)), e.at_least(share * 100.0))));
        }
        if *who == Contender::Userspace {
            let cpu = (!f.cpu_per_gb.contender.is_empty()).then(|| bootstrap(&f.cpu_per_gb.contender, median));
            goal(&format!("{name}: CPU ≤ 0.4 s per GB"), cpu.map(|e| (format!("{} s", e.show(3)), e.at_most(0.4))));
        }
        let added = (!f.rtt.contender.is_empty()).then(|| bootstrap(&f.rtt.differences(), median));
        goal(
            &format!("{name}: RTT added ≤ {rtt:.0} µs (median)"),
            added.map(|e| (format!("{} µs", e.show(1)), e.at_most(rtt))),
        );
        if *who == Contender::Userspace {
            let tail = |v: &[f64]| percentile(v, 99.0);
            let p99 =
                (!f.all_pings.contender.is_empty()).then(|| tail(&f.all_pings.contender) - tail(&f.all_pings.witness));
            goal(&format!("{name}: RTT p99 added ≤ 200 µs"), p99.map(|d| (format!("{d:.0} µs"), point(d <= 200.0))));
        }
        let ms = outages(&f.pulls);
        let pulls = (!ms.is_empty()).then(|| (bootstrap(&ms, median), bootstrap(&ms, p95)));
        goal(
            &format!("{name}: failover at 10k pkt/s, delays 0, median ≤ 0.5 ms"),
            pulls.map(|(m, _)| (format!("{} ms", m.show(2)), m.at_most(0.5))),
        );
        goal(
            &format!("{name}: failover at 10k pkt/s, delays 0, p95 ≤ 1 ms"),
            pulls.map(|(_, p)| (format!("{} ms", p.show(2)), p.at_most(1.0))),
        );
        let guide = outages(&f.guide_pulls);
        goal(
            &format!("{name}: failover with the guide's settings ≤ 200 ms + one miimon tick (max)"),
            (!guide.is_empty()).then(|| (format!("{:.1} ms", stats::max(&guide)), point(stats::max(&guide) <= 300.0))),
        );
        goal(
            &format!("{name}: idle daemon < 0.1 % CPU, RSS ≤ 8 MB"),
            f.idle.map(|(cpu, rss)| (format!("{cpu:.3} %, {rss:.1} MB"), point(cpu < 0.1 && rss <= 8.0))),
        );
        goal(
            &format!("{name}: 0 packets lost at 10k pkt/s across `rbond restart`"),
            f.restart.map(|(lost, sent)| (format!("{lost} of {sent}"), point(lost == 0))),
        );
    }
    let profile = rows.iter().find(|(c, _)| *c == Contender::Userspace).and_then(|(_, f)| f.profile.as_deref());
    if let Some(p) = profile {
        println!("\nProfile of the userspace datapath (`perf record -a -g`):\n\n{p}");
    }
}

/// Which way a change went: `better` when the whole interval is on the good side of
/// `no_change`, `worse` when it is all on the other, otherwise within noise.
fn change(e: &Estimate, no_change: f64, higher_is_better: bool) -> &'static str {
    match (e.at_least(no_change), higher_is_better) {
        (Verdict::WithinNoise, _) => "within noise",
        (Verdict::Met, true) | (Verdict::Missed, false) => "better",
        _ => "worse",
    }
}

/// This build against the baseline build, figure by figure.
pub fn a_b(rows: &[(Contender, Figures)], baseline: &Path) {
    failed(rows);
    println!("This build against {} (the witness), in turns.\n", baseline.display());
    println!("| path | figure | this build | baseline | this ÷ baseline, or the difference [95 % interval] | |");
    println!("|---|---|---|---|---|---|");
    for (who, f) in rows {
        // The figure, its pairs, the unit, the comparison, no change, and which way is better.
        let line = |figure: &str, p: &Pairs, unit: &str, e: Estimate, no_change: f64, higher: bool| {
            let (a, b) = (median(&p.contender), median(&p.witness));
            let verdict = change(&e, no_change, higher);
            println!("| {} | {figure} | {a:.3} {unit} | {b:.3} {unit} | {} | {verdict} |", who.label(), e.show(3));
        };
        for ((label, _), p) in STREAMS.iter().zip(&f.gbps) {
            if let Some(e) = ratio(p) {
                line(label, p, "Gbit/s", e, 1.0, true);
            }
        }
        if let Some(e) = ratio(&f.cpu_per_gb) {
            line("CPU s per GB", &f.cpu_per_gb, "s", e, 1.0, false);
        }
        if let Some(e) = ratio(&f.host_cpu_per_gb) {
            line("every CPU's s per GB", &f.host_cpu_per_gb, "s", e, 1.0, false);
        }
        if !f.rtt.contender.is_empty() {
            line("RTT, median of a turn", &f.rtt, "µs", bootstrap(&f.rtt.differences(), median), 0.0, false);
        }
    }
}
