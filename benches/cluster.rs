//! `make bench-cluster`: two nodes sharing a station (PostgreSQL + SeaweedFS on loopback, as `tests/cluster.rs` sets
//! them up) play one channel; each round measures both nodes' CPU over a steady stretch, kills the holder with
//! SIGKILL, and times the takeover: from the kill to the survivor's origin listing the new holder's first segment.
//! The killed node is restarted (it comes back as a standby) before the next round.
//!
//! `BENCH_ROUNDS` (default 5) and `BENCH_SECONDS` (the steady stretch, default 20).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vvtv_testkit::cluster::{cpu_seconds, playlist, Station};
use vvtv_testkit::daemon::{listed_segments, wait_for, Daemon};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let rounds = env("BENCH_ROUNDS", 5);
    let steady = Duration::from_secs(env("BENCH_SECONDS", 20));
    let tmp = tempfile::tempdir().expect("tempdir");
    let station = Station::start(tmp.path());
    let mut nodes: BTreeMap<String, Daemon> =
        ["node-a", "node-b"].into_iter().map(|n| (n.to_string(), station.start_node(n))).collect();
    for (i, pattern) in ["smpte", "ball"].iter().enumerate() {
        let clip = station.media_dir().join(format!("clip{i}.mp4"));
        vvtv_testkit::media::test_video(&clip, (320, 180), 60, pattern);
        let out = nodes.values().nth(i).expect("node").vvtvctl(&["ingest", &clip.display().to_string()]);
        assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    }
    wait_for("two assets", Duration::from_secs(300), || {
        station.number("SELECT COUNT(*) FROM jobs WHERE status = 'ready'") == 2
    });
    wait_for("both nodes to serve the channel", Duration::from_secs(60), || {
        let lists: Vec<Vec<u64>> = nodes.values().filter_map(playlist).map(|p| listed_segments(&p)).collect();
        lists.len() == 2 && lists[0].len() >= 3 && lists[0].last() == lists[1].last()
    });

    println!("two nodes, one channel (2-rung 180p ladder, 4 s segments), lease 4 s; {rounds} rounds");
    println!("{:>5}  {:>12}  {:>12}  {:>12}", "round", "holder cpu", "standby cpu", "takeover s");
    let (mut takeovers, mut holder_cpu, mut standby_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (holder, epoch) = station.lease("main").expect("a lease");
        let standby = nodes.keys().find(|n| **n != holder).cloned().expect("a standby");
        let before: BTreeMap<&String, f64> = nodes.iter().map(|(n, d)| (n, cpu_seconds(d.child.id()))).collect();
        let started = Instant::now();
        std::thread::sleep(steady);
        let wall = started.elapsed().as_secs_f64();
        let share = |name: &str| (cpu_seconds(nodes[name].child.id()) - before[&name.to_string()]) / wall;
        let (h, s) = (share(&holder), share(&standby));

        let mut victim = nodes.remove(&holder).expect("holder");
        let killed = Instant::now();
        victim.signal_and_wait(libc::SIGKILL, Duration::from_secs(5)).expect("killed");
        drop(victim);
        wait_for("a takeover", Duration::from_secs(30), || station.lease("main").is_some_and(|(_, e)| e > epoch));
        let (_, new_epoch) = station.lease("main").expect("a lease");
        let (seen, _) = station.wait_for_epoch(&nodes[&standby], new_epoch, Duration::from_secs(30));
        let takeover = (seen - killed).as_secs_f64();
        println!("{round:>5}  {:>11.3}c  {:>11.3}c  {takeover:>12.2}", h, s);
        takeovers.push(takeover);
        holder_cpu.push(h);
        standby_cpu.push(s);

        nodes.insert(holder.clone(), station.start_node(&holder));
        wait_for("the restarted node to serve the channel", Duration::from_secs(30), || {
            let lists: Vec<Vec<u64>> = nodes.values().filter_map(playlist).map(|p| listed_segments(&p)).collect();
            lists.len() == 2 && lists[0].last() == lists[1].last()
        });
    }
    takeovers.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "takeover after SIGKILL: min {:.2} s, median {:.2} s, max {:.2} s; CPU (cores): holder {:.3}, standby {:.3}",
        takeovers[0],
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1],
        mean(&holder_cpu),
        mean(&standby_cpu)
    );
}
