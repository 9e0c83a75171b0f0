//! Decode + classify + detect per packet, over a mixed corpus (web, DNS, pings, ARP, IPv6, QinQ,
//! a scan, a sweep, illegal flags, a spoofed flood), through one pipeline with every detector on.
//!
//! Run: `cargo bench --bench pipeline`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scram::craft;
use scram::decode::tcp_flags::{ACK, FIN, PSH, SYN, URG};
use scram::detect::Settings;
use scram::pipeline::{Interfaces, LinkType, PipelineSet, QueueSizes};

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn corpus() -> Vec<Vec<u8>> {
    let mut c = Vec::new();
    let client = v4(0xc000_0207);
    let server = v4(0xc633_6402);
    for i in 0..256u32 {
        let p = i as u16;
        c.push(craft::tcp_frame(client, server, 50000 + p, 443, SYN));
        c.push(craft::tcp_frame(server, client, 443, 50000 + p, SYN | ACK));
        c.push(craft::tcp_frame(client, server, 50000 + p, 443, PSH | ACK));
        c.push(craft::udp_frame(client, server, 30000 + p, 53, b"query"));
        c.push(craft::icmp_frame(client, server, 8, 0));
        c.push(craft::tcp_frame(
            v4(0xcb00_7100 + i),
            server,
            40000,
            1 + p,
            SYN,
        ));
        c.push(craft::tcp_frame(
            client,
            v4(0xc633_6400 + i),
            40000,
            22,
            SYN,
        ));
        c.push(craft::tcp_frame(client, server, 40000, 80, FIN | PSH | URG));
        c.push(craft::tcp_frame(
            "2001:db8::7".parse().expect("literal address"),
            "2001:db8::2".parse().expect("literal address"),
            40000,
            1 + p,
            SYN,
        ));
        c.push(craft::icmp_frame(
            "fe80::1".parse().expect("literal address"),
            "ff02::1:ff00:1".parse().expect("literal address"),
            135,
            0,
        ));
        c.push(craft::ip_frame(
            client,
            server,
            17,
            &craft::udp(1, 2, b""),
            &[(0x88a8, 10), (0x8100, 20)],
        ));
        c.push(craft::arp_frame(
            2,
            craft::MAC_A,
            Ipv4Addr::new(192, 0, 2, 1),
            craft::MAC_B,
            Ipv4Addr::new(192, 0, 2, 7),
        ));
        c.push(craft::tcp_frame(
            v4(0x0a00_0000 + i * 7919),
            server,
            1000 + p,
            80,
            SYN,
        ));
    }
    c
}

fn pipeline(c: &mut Criterion) {
    let corpus = corpus();
    let mut set = PipelineSet::build(
        1,
        Arc::new(Settings::default()),
        LinkType::Ethernet,
        Arc::new(Interfaces {
            loopback: vec![false],
        }),
        QueueSizes::default(),
    );
    let mut rx = set.alert_rx.remove(0);
    let p = &mut set.pipelines[0];
    let mut ts = 1_795_341_600_000_000_000u64;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function(
        format!("decode+route+detect, mixed corpus of {}", corpus.len()),
        |b| {
            b.iter(|| {
                for f in &corpus {
                    ts += 1_000;
                    p.process(f, ts, 0, None);
                }
                while rx.pop().is_ok() {}
            })
        },
    );
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
