//! A simulated UHF reader: inventory rounds with duplicates, jittered RSSI, noise and
//! corrupted frames, and clean replies to the host's commands. What each protocol answers
//! lives in its own file (`m100`, `mercury`, `chafon`).

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::devices::codec::gen2::pc_for_epc;
use crate::devices::codec::mercury::TagRecord;
use crate::devices::codec::{self, ReaderProtocol, Region};

mod chafon;
mod m100;
mod mercury;

/// A few SGTIN-96-looking EPCs (header 0x30) for simulations.
pub fn sample_epcs(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut epc = vec![0x30];
            epc.extend((0..11).map(|_| rng.random::<u8>()));
            epc
        })
        .collect()
}

/// A UHF reader speaking `protocol`.
#[derive(Debug)]
pub struct RfidSim {
    protocol: ReaderProtocol,
    tags: Vec<Vec<u8>>,
    duplicate_factor: u32,
    noise_ratio: f64,
    rng: StdRng,
    valid_reads: u64,
    streaming: bool,
    host_buf: BytesMut,
    power_centi_dbm: u16,
    region: Region,
    /// Mercury's tag buffer between Read Tag ID Multiple and Get Tag Buffer.
    mercury_buffer: Vec<TagRecord>,
    clock_ms: u32,
}

impl RfidSim {
    pub fn new(
        protocol: ReaderProtocol,
        tags: Vec<Vec<u8>>,
        duplicate_factor: u32,
        noise_ratio: f64,
        seed: u64,
    ) -> Self {
        Self {
            protocol,
            tags,
            duplicate_factor: duplicate_factor.max(1),
            noise_ratio: noise_ratio.clamp(0.0, 1.0),
            rng: StdRng::seed_from_u64(seed),
            valid_reads: 0,
            streaming: false,
            host_buf: BytesMut::new(),
            power_centi_dbm: 2600,
            region: Region::Eu,
            mercury_buffer: Vec::new(),
            clock_ms: 0,
        }
    }

    /// Tag reads a correct decoder must have produced from everything emitted so far.
    pub fn valid_reads(&self) -> u64 {
        self.valid_reads
    }

    /// Whether the host started continuous reading (M100 multi-poll, Mercury continuous
    /// read); the harness then feeds `next_chunk` to the port periodically.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    pub fn set_tags(&mut self, tags: Vec<Vec<u8>>) {
        self.tags = tags;
    }

    /// One inventory round: each tag read `duplicate_factor` times with jittered RSSI,
    /// interleaved with noise and corrupted frames at `noise_ratio`.
    pub fn next_chunk(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.duplicate_factor {
            match self.protocol {
                ReaderProtocol::M100 | ReaderProtocol::Mercury => {
                    for index in 0..self.tags.len() {
                        let frame = self.single_read_frame(index);
                        self.emit_noisy(&mut out, frame, 1);
                    }
                }
                ReaderProtocol::Chafon(layout) => {
                    for (frame, tags) in self.chafon_inventory_frames(layout) {
                        self.emit_noisy(&mut out, frame, tags);
                    }
                }
            }
        }
        if self.protocol == ReaderProtocol::Mercury && self.tags.is_empty() {
            out.extend(codec::mercury::encode_keep_alive());
        }
        out
    }

    /// Appends `frame`, maybe after noise, maybe corrupted; counts its reads if intact.
    fn emit_noisy(&mut self, out: &mut Vec<u8>, mut frame: Vec<u8>, reads: u64) {
        if self.rng.random_bool(self.noise_ratio) {
            if self.rng.random_bool(0.5) {
                let count = self.rng.random_range(1..6);
                for _ in 0..count {
                    let byte = self.noise_byte();
                    out.push(byte);
                }
            } else if let Some(check) = frame.len().checked_sub(2).and_then(|at| frame.get_mut(at))
            {
                // M100: the checksum; Mercury and Chafon: a CRC byte.
                *check ^= 0x5A;
                out.extend(frame);
                return;
            }
        }
        out.extend(frame);
        self.valid_reads += reads;
    }

    fn noise_byte(&mut self) -> u8 {
        match self.protocol {
            ReaderProtocol::M100 => loop {
                let byte = self.rng.random::<u8>();
                if byte != 0xBB {
                    break byte;
                }
            },
            ReaderProtocol::Mercury => self.rng.random_range(0..0xFFu8),
            ReaderProtocol::Chafon(_) => self.rng.random_range(0..5u8),
        }
    }

    fn jittered_rssi(&mut self, index: usize) -> i8 {
        let base = -40 - (index * 7 % 30) as i8;
        base + self.rng.random_range(-3..=3i8)
    }

    fn single_read_frame(&mut self, index: usize) -> Vec<u8> {
        let rssi = self.jittered_rssi(index);
        let epc = self.tags.get(index).cloned().unwrap_or_default();
        match self.protocol {
            ReaderProtocol::Mercury => {
                let record = self.mercury_record(&epc, rssi);
                codec::mercury::encode_continuous_record(&record)
            }
            _ => codec::m100::encode_tag_notification(rssi, pc_for_epc(&epc), &epc),
        }
    }

    /// Parses host command frames (possibly partial, across calls) and returns the replies
    /// a reader would send. Replies are clean (no noise).
    pub fn respond(&mut self, host_bytes: &[u8]) -> Vec<u8> {
        self.host_buf.extend_from_slice(host_bytes);
        let mut out = Vec::new();
        loop {
            let reply = match self.protocol {
                ReaderProtocol::M100 => {
                    codec::m100::next_host_command(&mut self.host_buf).map(|c| self.reply_m100(&c))
                }
                ReaderProtocol::Mercury => codec::mercury::next_host_command(&mut self.host_buf)
                    .map(|c| self.reply_mercury(&c)),
                ReaderProtocol::Chafon(layout) => {
                    codec::chafon::next_host_command(&mut self.host_buf)
                        .map(|c| self.reply_chafon(layout, &c))
                }
            };
            match reply {
                Some(bytes) => out.extend(bytes),
                None => return out,
            }
        }
    }
}
