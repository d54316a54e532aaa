//! A TCP fault proxy on loopback, between a client (a store node) and an MQTT broker.
//!
//! Every accepted connection is piped to the target port by two threads (one per
//! direction). The proxy's current [`Fault`] decides what happens to each chunk read:
//!
//! * [`Fault::Pass`]: forwarded as is.
//! * [`Fault::Drop`]: a black hole. Connections are still accepted, but every byte is
//!   discarded. Such a connection has lost bytes, so [`FaultProxy::heal`] resets it (as the
//!   far end would once the route returns) instead of letting a corrupt stream go on.
//! * [`Fault::Stall`]: nothing is forwarded until the stall ends; then the held bytes go on
//!   unchanged (a long pause, no loss).
//! * [`Fault::Slow`]: forwarded in small chunks with sleeps, at about N bytes/s.
//!
//! Independently, [`FaultProxy::cut_mid_publish`] arms a one-shot cut: the next MQTT
//! PUBLISH from the client towards the broker is forwarded only up to K bytes, then both
//! sides are closed, so the broker sees a packet that ends in the middle.
//!
//! Threads poll shared state every [`POLL`], so every change takes effect within a bound.

// Each integration-test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);
const BUF: usize = 64 * 1024;
const MQTT_PUBLISH: u8 = 3;

/// What the proxy does to the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Drop,
    Stall { until: Instant },
    Slow { bytes_per_sec: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToBroker,
    ToClient,
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Bytes were discarded: the stream is corrupt and must not be resumed.
    poisoned: AtomicBool,
    closed: AtomicBool,
}

impl Conn {
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct Shared {
    fault: Mutex<Option<Fault>>,
    /// K of an armed mid-PUBLISH cut; 0 when not armed.
    cut_at: AtomicUsize,
    cuts: AtomicU64,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    discarded: AtomicU64,
    conns: Mutex<Vec<Arc<Conn>>>,
    stop: AtomicBool,
}

impl Shared {
    fn fault(&self) -> Fault {
        let fault = self.fault.lock().map(|f| f.unwrap_or(Fault::Pass));
        match fault.unwrap_or(Fault::Pass) {
            Fault::Stall { until } if Instant::now() >= until => Fault::Pass,
            other => other,
        }
    }

    fn set(&self, fault: Fault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = Some(fault);
        }
    }
}

pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    pub fn start(target_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        std::thread::spawn(move || accept_loop(listener, target_port, accept_shared));
        FaultProxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Black hole: accept, forward nothing, until [`Self::heal`].
    pub fn drop_traffic(&self) {
        self.shared.set(Fault::Drop);
    }

    /// Holds every byte for `pause`, then forwards it (returns at once).
    pub fn stall_for(&self, pause: Duration) {
        self.shared.set(Fault::Stall {
            until: Instant::now() + pause,
        });
    }

    /// Throttles both directions to about `bytes_per_sec`, until [`Self::heal`].
    pub fn slow(&self, bytes_per_sec: u64) {
        self.shared.set(Fault::Slow {
            bytes_per_sec: bytes_per_sec.max(1),
        });
    }

    /// Back to forwarding; connections that lost bytes in a black hole are reset.
    pub fn heal(&self) {
        self.shared.set(Fault::Pass);
        if let Ok(mut conns) = self.shared.conns.lock() {
            for conn in conns.iter() {
                if conn.poisoned.load(Ordering::Relaxed) {
                    conn.close();
                }
            }
            conns.retain(|c| !c.closed.load(Ordering::Relaxed));
        }
    }

    /// Arms a one-shot cut: the next PUBLISH towards the broker longer than `k` bytes is
    /// forwarded for its first `k` bytes only, then the connection is closed.
    pub fn cut_mid_publish(&self, k: usize) {
        self.shared.cut_at.store(k.max(1), Ordering::Relaxed);
    }

    /// How many mid-packet cuts happened so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (a reconnect shows up here).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    /// Bytes thrown away by [`Fault::Drop`].
    pub fn discarded(&self) -> u64 {
        self.shared.discarded.load(Ordering::Relaxed)
    }

    /// Closes every live connection (new ones are still accepted).
    pub fn reset_all(&self) {
        if let Ok(mut conns) = self.shared.conns.lock() {
            for conn in conns.drain(..) {
                conn.close();
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.reset_all();
    }
}

fn accept_loop(listener: TcpListener, target_port: u16, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nonblocking(false);
        // Broker down: the client sees its connection closed, as with a refused connect.
        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
            continue;
        };
        let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let conn = Arc::new(Conn {
            client: c,
            server: s,
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        if let Ok(mut conns) = shared.conns.lock() {
            conns.push(conn.clone());
        }
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
            conn.close();
            continue;
        };
        spawn_pump(
            client,
            server2,
            Direction::ToBroker,
            conn.clone(),
            shared.clone(),
        );
        spawn_pump(server, client2, Direction::ToClient, conn, shared.clone());
    }
}

fn spawn_pump(
    from: TcpStream,
    to: TcpStream,
    direction: Direction,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
) {
    std::thread::spawn(move || {
        let mut pump = Pump {
            from,
            to,
            direction,
            conn,
            shared,
            framer: MqttFramer::default(),
        };
        pump.run();
        pump.conn.close();
    });
}

struct Pump {
    from: TcpStream,
    to: TcpStream,
    direction: Direction,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    framer: MqttFramer,
}

impl Pump {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || self.conn.closed.load(Ordering::Relaxed)
    }

    fn run(&mut self) {
        let _ = self.from.set_read_timeout(Some(POLL));
        let mut buf = vec![0u8; BUF];
        while !self.stopped() {
            // A stalled link does not even read: the sender's kernel buffers fill up.
            if matches!(self.shared.fault(), Fault::Stall { .. }) {
                std::thread::sleep(POLL);
                continue;
            }
            let n = match self.from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => return,
            };
            if self.forward(&buf[..n]).is_err() {
                return;
            }
        }
    }

    /// Forwards one chunk according to the fault in force; `Err` ends the connection.
    fn forward(&mut self, chunk: &[u8]) -> Result<(), ()> {
        let (chunk, cut) = self.apply_cut(chunk);
        loop {
            match self.shared.fault() {
                Fault::Stall { .. } if !self.stopped() => std::thread::sleep(POLL),
                Fault::Stall { .. } => return Err(()),
                Fault::Drop => {
                    self.conn.poisoned.store(true, Ordering::Relaxed);
                    self.shared
                        .discarded
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    return if cut { Err(()) } else { Ok(()) };
                }
                Fault::Slow { bytes_per_sec } => {
                    self.write_slowly(chunk, bytes_per_sec)?;
                    break;
                }
                Fault::Pass => {
                    self.write(chunk)?;
                    break;
                }
            }
        }
        if cut {
            self.shared.cuts.fetch_add(1, Ordering::Relaxed);
            // Give the bytes a moment to leave before the close, so the broker really
            // receives the first K bytes of the packet rather than a reset alone.
            let _ = self.to.flush();
            std::thread::sleep(POLL);
            return Err(());
        }
        Ok(())
    }

    /// With a cut armed, the prefix to forward (ending inside a PUBLISH) and `true`.
    fn apply_cut<'a>(&mut self, chunk: &'a [u8]) -> (&'a [u8], bool) {
        let starts = self.framer.feed(chunk);
        if self.direction != Direction::ToBroker {
            return (chunk, false);
        }
        let k = self.shared.cut_at.load(Ordering::Relaxed);
        if k == 0 {
            return (chunk, false);
        }
        let target = starts
            .iter()
            .find(|p| p.packet_type == MQTT_PUBLISH && p.total_len > k);
        let Some(packet) = target else {
            return (chunk, false);
        };
        if self
            .shared
            .cut_at
            .compare_exchange(k, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return (chunk, false);
        }
        let end = (packet.offset + k).min(chunk.len());
        (&chunk[..end], true)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.to.write_all(bytes).map_err(|_| ())?;
        self.shared
            .forwarded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn write_slowly(&mut self, bytes: &[u8], bytes_per_sec: u64) -> Result<(), ()> {
        // About 20 writes a second: small enough to split MQTT packets across many writes.
        let step = usize::try_from(bytes_per_sec / 20)
            .unwrap_or(usize::MAX)
            .max(1);
        let pause = Duration::from_secs_f64(step as f64 / bytes_per_sec as f64);
        for piece in bytes.chunks(step) {
            if self.stopped() {
                return Err(());
            }
            self.write(piece)?;
            std::thread::sleep(pause);
        }
        Ok(())
    }
}

/// Where an MQTT packet starts inside a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketStart {
    pub offset: usize,
    pub packet_type: u8,
    /// Fixed header plus remaining length.
    pub total_len: usize,
}

/// Follows MQTT packet boundaries through a byte stream (fixed header only).
#[derive(Debug, Default)]
pub struct MqttFramer {
    state: FrameState,
}

#[derive(Debug, Default)]
enum FrameState {
    #[default]
    Type,
    Length {
        /// Offset of the packet's first byte in the current chunk, if it is in it.
        start: Option<usize>,
        packet_type: u8,
        value: usize,
        shift: u32,
        header_len: usize,
    },
    Body {
        left: usize,
    },
}

impl MqttFramer {
    /// Consumes `chunk`; returns the packets whose start and whole fixed header are in it.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<PacketStart> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.state {
                FrameState::Type => {
                    self.state = FrameState::Length {
                        start: Some(i),
                        packet_type: chunk[i] >> 4,
                        value: 0,
                        shift: 0,
                        header_len: 1,
                    };
                    i += 1;
                }
                FrameState::Length {
                    start,
                    packet_type,
                    value,
                    shift,
                    header_len,
                } => {
                    let byte = chunk[i];
                    *value |= usize::from(byte & 0x7F) << *shift;
                    *shift += 7;
                    *header_len += 1;
                    i += 1;
                    if byte & 0x80 == 0 || *shift > 21 {
                        let total_len = *header_len + *value;
                        if let Some(offset) = *start {
                            starts.push(PacketStart {
                                offset,
                                packet_type: *packet_type,
                                total_len,
                            });
                        }
                        self.state = if *value == 0 {
                            FrameState::Type
                        } else {
                            FrameState::Body { left: *value }
                        };
                    }
                }
                FrameState::Body { left } => {
                    let take = (*left).min(chunk.len() - i);
                    *left -= take;
                    i += take;
                    if *left == 0 {
                        self.state = FrameState::Type;
                    }
                }
            }
        }
        if let FrameState::Length { start, .. } = &mut self.state {
            // The header continues in the next chunk: its start is not there.
            *start = None;
        }
        starts
    }
}
