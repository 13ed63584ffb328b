//! A small authoritative DNS server on loopback for the tests of executors found
//! through DNS: it plays a Kubernetes headless Service whose pods are `remotemedia
//! serve` processes on 127.0.0.1, with records the test may change at any time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The SRV name the tests publish, as a headless Service in namespace `test` would.
pub const SRV_NAME: &str = "_grpc._tcp.remotemedia-executor.test.svc.cluster.local";
/// The TTL of every record served.
pub const TTL: u32 = 1;

/// Records by (lower-case name with the final dot, type).
type Zone = HashMap<(String, RecordType), Vec<Record>>;

/// An authoritative DNS server on a loopback UDP port, answering from a zone the test
/// may change at any time. Stops when dropped.
pub struct DnsServer {
    pub addr: String,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
    queries: Arc<std::sync::atomic::AtomicUsize>,
}

fn fqdn(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

impl DnsServer {
    pub fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let zone = Arc::new(Mutex::new(Zone::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (z, s, counted) = (Arc::clone(&zone), Arc::clone(&stop), Arc::clone(&queries));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                counted.fetch_add(query.queries.len(), Ordering::Relaxed);
                let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
                reply.metadata.authoritative = true;
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                let mut found = false;
                let mut known = false;
                for q in &query.queries {
                    reply.add_query(q.clone());
                    let name = fqdn(&q.name().to_ascii());
                    let zone = z.lock().unwrap();
                    known |= zone.keys().any(|(n, _)| *n == name);
                    if let Some(records) = zone.get(&(name, q.query_type())) {
                        found = true;
                        reply.add_answers(records.iter().cloned());
                    }
                }
                if !found && !known {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        DnsServer {
            addr,
            zone,
            stop,
            queries,
        }
    }

    /// How many questions it was asked so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    /// Publishes `ports` (executors on 127.0.0.1) as the SRV records of [`SRV_NAME`],
    /// each pointing at a host name of its own, and the A record `remotemedia-executor`.
    pub fn publish(&self, ports: &[u16]) {
        let mut zone = self.zone.lock().unwrap();
        zone.clear();
        let mut srv = Vec::new();
        for (i, &port) in ports.iter().enumerate() {
            let host = format!("pod-{i}.remotemedia-executor.test.svc.cluster.local.");
            let target = Name::from_ascii(&host).unwrap();
            srv.push(Record::from_rdata(
                Name::from_ascii(fqdn(SRV_NAME)).unwrap(),
                TTL,
                RData::SRV(SRV::new(0, 0, port, target.clone())),
            ));
            zone.insert(
                (host, RecordType::A),
                vec![Record::from_rdata(
                    target,
                    TTL,
                    RData::A(A(Ipv4Addr::LOCALHOST)),
                )],
            );
        }
        zone.insert((fqdn(SRV_NAME), RecordType::SRV), srv);
        zone.insert(
            (fqdn("remotemedia-executor"), RecordType::A),
            vec![Record::from_rdata(
                Name::from_ascii("remotemedia-executor.").unwrap(),
                TTL,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            )],
        );
    }

    /// Adds `name` with AAAA records only (no A record), one per address.
    pub fn publish_aaaa(&self, name: &str, addresses: &[std::net::Ipv6Addr]) {
        let records = addresses
            .iter()
            .map(|ip| {
                Record::from_rdata(
                    Name::from_ascii(fqdn(name)).unwrap(),
                    TTL,
                    RData::AAAA(AAAA(*ip)),
                )
            })
            .collect();
        self.zone
            .lock()
            .unwrap()
            .insert((fqdn(name), RecordType::AAAA), records);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
