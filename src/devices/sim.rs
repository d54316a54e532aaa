//! Simulated devices: byte streams a real scanner or RFID reader would send, for the
//! simulator CLI and for tests (including a driver talking to a simulated reader on a
//! pseudo-terminal). Deterministic for a given seed.
//!
//! Noise never forms a frame start (0xBB for M100, 0xFF for Mercury, a length byte >= 5
//! for Chafon, STX for scanners), so a correct decoder yields *exactly* the valid reads
//! counted here. Corrupted frames (a flipped checksum byte) are not counted. The codecs'
//! own tests cover arbitrary garbage.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::codec::barcode::{BarcodeFraming, STX};
use super::codec::chafon::{self, ChafonInfo, ChafonLayout, InventoryEntry};
use super::codec::gen2::pc_for_epc;
use super::codec::m100::{self, InfoKind};
use super::codec::mercury::{self, TagRecord, VersionInfo};
use super::codec::{ReaderProtocol, Region};

const GS: u8 = 0x1D;

/// GS1 mod-10 check digit of `digits` (ASCII '0'..='9', check digit excluded).
fn gs1_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

fn random_digits(rng: &mut StdRng, count: usize) -> Vec<u8> {
    (0..count)
        .map(|_| b'0' + rng.random_range(0..10u8))
        .collect()
}

fn with_check_digit(mut digits: Vec<u8>) -> Vec<u8> {
    let check = gs1_check_digit(&digits);
    digits.push(check);
    digits
}

/// A serial barcode scanner: EAN-13, EAN-8 and GS1-128 (GTIN, expiry, lot, serial with GS).
#[derive(Debug)]
pub struct ScannerSim {
    framing: BarcodeFraming,
    aim_ids: bool,
    noise_ratio: f64,
    rng: StdRng,
    emitted: Vec<Vec<u8>>,
}

impl ScannerSim {
    pub fn new(framing: BarcodeFraming, aim_ids: bool, noise_ratio: f64, seed: u64) -> Self {
        Self {
            framing,
            aim_ids,
            noise_ratio: noise_ratio.clamp(0.0, 1.0),
            rng: StdRng::seed_from_u64(seed),
            emitted: Vec::new(),
        }
    }

    /// Payloads of every scan emitted so far, as a decoder should return them.
    pub fn emitted(&self) -> &[Vec<u8>] {
        &self.emitted
    }

    /// One scan's payload (symbology identifier included when AIM ids are on).
    pub fn next_scan(&mut self) -> Vec<u8> {
        let (aim, body) = match self.rng.random_range(0..10) {
            0..=4 => (
                &b"]E0"[..],
                with_check_digit(random_digits(&mut self.rng, 12)),
            ),
            5 | 6 => (
                &b"]E4"[..],
                with_check_digit(random_digits(&mut self.rng, 7)),
            ),
            _ => (&b"]C1"[..], self.gs1_128()),
        };
        let mut scan = if self.aim_ids {
            aim.to_vec()
        } else {
            Vec::new()
        };
        scan.extend_from_slice(&body);
        scan
    }

    fn gs1_128(&mut self) -> Vec<u8> {
        let mut gtin = vec![b'0'];
        gtin.extend(random_digits(&mut self.rng, 12));
        let mut out = b"01".to_vec();
        out.extend(with_check_digit(gtin));
        let (year, month, day) = (
            self.rng.random_range(25..35u8),
            self.rng.random_range(1..13u8),
            self.rng.random_range(1..29u8),
        );
        out.extend_from_slice(format!("17{year:02}{month:02}{day:02}10").as_bytes());
        let lot_len = self.rng.random_range(1..9);
        out.extend((0..lot_len).map(|_| {
            let pick = self.rng.random_range(0..36u8);
            if pick < 10 {
                b'0' + pick
            } else {
                b'A' + pick - 10
            }
        }));
        // The lot is variable length and not last, so FNC1 arrives as GS.
        out.push(GS);
        out.extend_from_slice(b"21");
        let serial_len = self.rng.random_range(4..11);
        out.extend(random_digits(&mut self.rng, serial_len));
        out
    }

    /// The bytes of one scan as they arrive on the wire, sometimes preceded by noise.
    pub fn next_chunk(&mut self) -> Vec<u8> {
        let mut chunk = Vec::new();
        if self.rng.random_bool(self.noise_ratio) {
            if self.framing.stx_etx {
                // Line noise between records; never STX.
                let count = self.rng.random_range(1..4);
                chunk.extend((0..count).map(|_| self.rng.random_range(0x20..0x7Fu8)));
            } else {
                // Scanners emit stray blank lines (e.g. a CR-only trigger); decoders skip them.
                chunk.extend_from_slice(b"\r\n");
            }
        }
        debug_assert!(!chunk.contains(&STX));
        let scan = self.next_scan();
        chunk.extend(self.framing.frame(&scan));
        self.emitted.push(scan);
        chunk
    }
}

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
            out.extend(mercury::encode_keep_alive());
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
                mercury::encode_continuous_record(&record)
            }
            _ => m100::encode_tag_notification(rssi, pc_for_epc(&epc), &epc),
        }
    }

    fn mercury_record(&mut self, epc: &[u8], rssi: i8) -> TagRecord {
        self.clock_ms = self.clock_ms.wrapping_add(self.rng.random_range(1..20));
        TagRecord {
            read_count: 1,
            rssi_dbm: rssi,
            antenna: 0x11,
            frequency_khz: 865_700 + 600 * self.rng.random_range(0..4u32),
            timestamp_ms: self.clock_ms,
            phase: self.rng.random_range(0..180),
            gpio: 0x0F,
            pc: pc_for_epc(epc),
            epc: epc.to_vec(),
            tag_crc: 0,
        }
        .with_valid_crc()
    }

    /// One inventory answer, split over frames (status 0x03 = more follow, 0x01 = last);
    /// each frame comes with the number of tags it carries.
    fn chafon_inventory_frames(&mut self, layout: ChafonLayout) -> Vec<(Vec<u8>, u64)> {
        let entries: Vec<InventoryEntry> = (0..self.tags.len())
            .map(|index| {
                let rssi = self.jittered_rssi(index);
                chafon::entry_for(
                    self.tags.get(index).map_or(&[][..], Vec::as_slice),
                    rssi.into(),
                )
            })
            .collect();
        if entries.is_empty() {
            return vec![(
                chafon::encode_response(0x00, chafon::CMD_INVENTORY, chafon::STATUS_NO_TAG, &[]),
                0,
            )];
        }
        let mut frames = Vec::new();
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let fits = chafon::entries_per_frame(layout, rest).max(1);
            let (batch, remaining) = rest.split_at(fits.min(rest.len()));
            let status = if remaining.is_empty() {
                chafon::STATUS_INVENTORY_DONE
            } else {
                chafon::STATUS_MORE_FRAMES
            };
            let frame = chafon::encode_inventory_response(0x00, layout, status, 0x01, batch);
            frames.push((frame, batch.len() as u64));
            rest = remaining;
        }
        frames
    }

    /// Parses host command frames (possibly partial, across calls) and returns the replies
    /// a reader would send. Replies are clean (no noise).
    pub fn respond(&mut self, host_bytes: &[u8]) -> Vec<u8> {
        self.host_buf.extend_from_slice(host_bytes);
        let mut out = Vec::new();
        loop {
            let reply = match self.protocol {
                ReaderProtocol::M100 => {
                    m100::next_host_command(&mut self.host_buf).map(|c| self.reply_m100(&c))
                }
                ReaderProtocol::Mercury => {
                    mercury::next_host_command(&mut self.host_buf).map(|c| self.reply_mercury(&c))
                }
                ReaderProtocol::Chafon(layout) => chafon::next_host_command(&mut self.host_buf)
                    .map(|c| self.reply_chafon(layout, &c)),
            };
            match reply {
                Some(bytes) => out.extend(bytes),
                None => return out,
            }
        }
    }

    fn reply_m100(&mut self, command: &m100::HostCommand) -> Vec<u8> {
        let first_param = command.params.first().copied();
        match command.command {
            m100::CMD_GET_INFO => {
                let (kind, text) = match first_param {
                    Some(0x01) => (InfoKind::Software, "V2.3.1"),
                    Some(0x02) => (InfoKind::Manufacturer, "MagicRF"),
                    _ => (InfoKind::Hardware, "M100 26dBm V1.0"),
                };
                m100::encode_info_response(kind, text)
            }
            m100::CMD_SINGLE_POLL => {
                if self.tags.is_empty() {
                    return m100::encode_error(m100::ERR_INVENTORY_FAIL);
                }
                let mut out = Vec::new();
                for index in 0..self.tags.len() {
                    out.extend(self.single_read_frame(index));
                    self.valid_reads += 1;
                }
                out
            }
            m100::CMD_MULTI_POLL => {
                self.streaming = true;
                Vec::new()
            }
            m100::CMD_STOP_MULTI_POLL => {
                self.streaming = false;
                m100::encode_ack(m100::CMD_STOP_MULTI_POLL)
            }
            m100::CMD_SET_TX_POWER => {
                if let Some(&[hi, lo]) = command.params.get(..2) {
                    self.power_centi_dbm = u16::from_be_bytes([hi, lo]);
                }
                m100::encode_ack(m100::CMD_SET_TX_POWER)
            }
            m100::CMD_GET_TX_POWER => m100::encode_tx_power_response(self.power_centi_dbm),
            m100::CMD_SET_REGION => m100::encode_ack(m100::CMD_SET_REGION),
            _ => m100::encode_error(0x17),
        }
    }

    fn reply_mercury(&mut self, command: &mercury::HostCommand) -> Vec<u8> {
        use mercury::{STATUS_NO_TAGS_FOUND, STATUS_OK, encode_reply};
        let opcode = command.opcode;
        match opcode {
            mercury::OP_GET_VERSION => mercury::encode_version_reply(&VersionInfo {
                bootloader: [0x12, 0x08, 0x00, 0x30],
                hardware: [0x18, 0x00, 0x00, 0x01],
                firmware_date: [0x20, 0x24, 0x01, 0x15],
                firmware: [0x01, 0x0B, 0x03, 0x02],
                protocols: 0x0000_0010,
            }),
            mercury::OP_BOOT_FIRMWARE
            | mercury::OP_SET_REGION
            | mercury::OP_SET_TAG_PROTOCOL
            | mercury::OP_SET_READ_TX_POWER => encode_reply(opcode, STATUS_OK, &[]),
            mercury::OP_READ_TAG_ID_MULTIPLE => {
                self.mercury_buffer = (0..self.tags.len())
                    .map(|index| {
                        let rssi = self.jittered_rssi(index);
                        let epc = self.tags.get(index).cloned().unwrap_or_default();
                        self.mercury_record(&epc, rssi)
                    })
                    .collect();
                if self.mercury_buffer.is_empty() {
                    return encode_reply(opcode, STATUS_NO_TAGS_FOUND, &[]);
                }
                let count = self.mercury_buffer.len().min(255) as u8;
                encode_reply(opcode, STATUS_OK, &[0x00, 0x00, 0x13, count])
            }
            mercury::OP_GET_TAG_ID_BUFFER => {
                let records = std::mem::take(&mut self.mercury_buffer);
                let records = &records[..records.len().min(255)];
                self.valid_reads += records.len() as u64;
                mercury::encode_tag_buffer_reply(records)
            }
            mercury::OP_MULTI_PROTOCOL_TAG_OP => {
                match command.data.get(2) {
                    Some(0x01) => self.streaming = true,
                    Some(0x02) => self.streaming = false,
                    _ => {}
                }
                encode_reply(opcode, STATUS_OK, command.data.get(..3).unwrap_or_default())
            }
            _ => encode_reply(opcode, 0x0101, &[]),
        }
    }

    fn reply_chafon(&mut self, layout: ChafonLayout, command: &chafon::HostCommand) -> Vec<u8> {
        let layout = match layout {
            ChafonLayout::Auto => ChafonLayout::New,
            fixed => fixed,
        };
        match command.command {
            chafon::CMD_INVENTORY => {
                let mut out = Vec::new();
                for (frame, reads) in self.chafon_inventory_frames(layout) {
                    out.extend(frame);
                    self.valid_reads += reads;
                }
                out
            }
            chafon::CMD_GET_READER_INFO => {
                let (max_fre, min_fre) = match self.region {
                    Region::Us => (49, 0x80),
                    _ => (0x40 | 14, 0x00),
                };
                chafon::encode_reader_info_response(
                    0x00,
                    &ChafonInfo {
                        version: [3, 1],
                        reader_type: 0x09,
                        protocols: 0x03,
                        max_fre,
                        min_fre,
                        power_dbm: (self.power_centi_dbm / 100).min(30) as u8,
                        scan_time_100ms: 10,
                    },
                )
            }
            chafon::CMD_SET_POWER => {
                if let Some(&dbm) = command.data.first() {
                    self.power_centi_dbm = u16::from(dbm) * 100;
                }
                chafon::encode_response(0x00, chafon::CMD_SET_POWER, chafon::STATUS_OK, &[])
            }
            chafon::CMD_SET_REGION => {
                if command.data.first().is_some_and(|max| max & 0x3F == 49) {
                    self.region = Region::Us;
                }
                chafon::encode_response(0x00, chafon::CMD_SET_REGION, chafon::STATUS_OK, &[])
            }
            other @ (chafon::CMD_SET_SCAN_TIME | chafon::CMD_SET_ADDRESS) => {
                chafon::encode_response(0x00, other, chafon::STATUS_OK, &[])
            }
            other => chafon::encode_response(0x00, other, 0xFE, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::codec::barcode::BarcodeCodec;
    use crate::devices::codec::{ReaderCodec, ReaderCommands, ReaderEvent};
    use tokio_util::codec::Decoder;

    /// Feeds `stream` in uneven pieces, as a serial port would deliver it.
    fn decode_in_pieces<D: Decoder>(decoder: &mut D, stream: &[u8], seed: u64) -> Vec<D::Item>
    where
        D::Error: std::fmt::Debug,
    {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let take = rng.random_range(1..=rest.len().min(97));
            let (piece, tail) = rest.split_at(take);
            buf.extend_from_slice(piece);
            rest = tail;
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        while let Some(item) = decoder.decode_eof(&mut buf).unwrap() {
            items.push(item);
        }
        items
    }

    fn tags_of(events: &[ReaderEvent]) -> Vec<&[u8]> {
        events
            .iter()
            .filter_map(|event| match event {
                ReaderEvent::Tag(tag) => Some(tag.epc.as_slice()),
                _ => None,
            })
            .collect()
    }

    const PROTOCOLS: [ReaderProtocol; 5] = [
        ReaderProtocol::M100,
        ReaderProtocol::Mercury,
        ReaderProtocol::Chafon(ChafonLayout::Old),
        ReaderProtocol::Chafon(ChafonLayout::New),
        ReaderProtocol::Chafon(ChafonLayout::Auto),
    ];

    #[test]
    fn gs1_check_digits() {
        assert_eq!(gs1_check_digit(b"590123412345"), b'7');
        assert_eq!(gs1_check_digit(b"9638507"), b'4');
        assert_eq!(gs1_check_digit(b"0703206980498"), b'8');
    }

    #[test]
    fn scanner_stream_decodes_to_exactly_the_emitted_scans() {
        for (framing, aim) in [
            (BarcodeFraming::lines(b"\r\n"), true),
            (BarcodeFraming::lines(b"\r"), false),
            (BarcodeFraming::stx_etx(b"\r"), true),
        ] {
            let mut sim = ScannerSim::new(framing.clone(), aim, 0.3, 7);
            let stream: Vec<u8> = (0..200).flat_map(|_| sim.next_chunk()).collect();
            let frames = decode_in_pieces(&mut BarcodeCodec::new(framing), &stream, 3);
            let scans: Vec<Vec<u8>> = frames.into_iter().map(|frame| frame.data).collect();
            assert_eq!(scans, sim.emitted());
            assert!(
                scans.iter().any(|scan| scan.contains(&GS)),
                "GS1-128 with GS present"
            );
            assert_eq!(scans.iter().all(|scan| scan.starts_with(b"]")), aim);
        }
    }

    #[test]
    fn rfid_stream_decodes_to_exactly_the_valid_reads() {
        for (seed, protocol) in PROTOCOLS.into_iter().enumerate() {
            let tags = sample_epcs(40, seed as u64);
            let mut sim = RfidSim::new(protocol, tags.clone(), 5, 0.2, seed as u64);
            let stream: Vec<u8> = (0..20).flat_map(|_| sim.next_chunk()).collect();
            let mut codec = ReaderCodec::new(protocol);
            let events = decode_in_pieces(&mut codec, &stream, seed as u64);
            let reads = tags_of(&events);
            assert_eq!(reads.len() as u64, sim.valid_reads(), "{protocol}");
            assert!(reads.iter().all(|epc| tags.iter().any(|tag| tag == epc)));
            assert!(
                codec.stats().bad_checksum > 0,
                "{protocol}: noise was injected"
            );
            assert!(
                events
                    .iter()
                    .all(|event| !matches!(event, ReaderEvent::Error { .. })),
                "{protocol}: {events:?}"
            );
        }
    }

    #[test]
    fn driver_commands_get_plausible_replies() {
        for protocol in PROTOCOLS {
            let tags = sample_epcs(3, 1);
            let mut sim = RfidSim::new(protocol, tags, 1, 0.0, 1);
            let mut host = protocol.init_sequence();
            host.push(protocol.get_firmware());
            host.push(protocol.set_power(2000).unwrap());
            host.push(protocol.set_region(Region::Us).unwrap());
            host.push(protocol.start_inventory());
            let wire: Vec<u8> = host.concat();
            // Split mid-frame to check the simulator buffers partial commands.
            let (head, tail) = wire.split_at(wire.len() / 2);
            let mut replies = sim.respond(head);
            replies.extend(sim.respond(tail));
            let mut codec = ReaderCodec::new(protocol);
            let events = decode_in_pieces(&mut codec, &replies, 9);
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, ReaderEvent::Info(info) if info.firmware.is_some())),
                "{protocol}: {events:?}"
            );
            assert!(
                events
                    .iter()
                    .all(|e| !matches!(e, ReaderEvent::Error { .. })),
                "{protocol}: {events:?}"
            );
            if protocol.needs_polling() {
                assert_eq!(tags_of(&events).len(), 3, "{protocol}: inventory answered");
            } else {
                assert!(sim.is_streaming(), "{protocol}");
                let stop = protocol.stop_inventory().unwrap();
                let acks = decode_in_pieces(&mut codec, &sim.respond(&stop), 1);
                assert!(
                    matches!(acks.as_slice(), [ReaderEvent::Ack { .. }]),
                    "{acks:?}"
                );
                assert!(!sim.is_streaming());
            }
            assert_eq!(codec.stats().bad_checksum, 0);
        }
    }

    #[test]
    fn mercury_sync_read_then_tag_buffer() {
        let mut sim = RfidSim::new(ReaderProtocol::Mercury, sample_epcs(4, 2), 1, 0.0, 2);
        let mut codec = ReaderCodec::new(ReaderProtocol::Mercury);
        let ack = sim.respond(&mercury::encode_read_tag_id_multiple(500));
        assert_eq!(
            decode_in_pieces(&mut codec, &ack, 1),
            vec![ReaderEvent::Ack { command: 0x22 }]
        );
        let buffer = sim.respond(&mercury::encode_get_tag_buffer());
        assert_eq!(tags_of(&decode_in_pieces(&mut codec, &buffer, 1)).len(), 4);
        assert_eq!(sim.valid_reads(), 4);
    }

    #[test]
    fn empty_field_answers_no_tag_or_keep_alive() {
        for protocol in PROTOCOLS {
            let mut sim = RfidSim::new(protocol, Vec::new(), 1, 0.0, 3);
            let mut bytes = sim.respond(&m100::encode_single_poll());
            bytes.extend(sim.respond(&chafon::encode_inventory(chafon::BROADCAST)));
            bytes.extend(sim.next_chunk());
            let events = decode_in_pieces(&mut ReaderCodec::new(protocol), &bytes, 1);
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, ReaderEvent::NoTag | ReaderEvent::KeepAlive)),
                "{protocol}: {events:?}"
            );
        }
    }

    /// Decode throughput of an M100 notification stream. Run with
    /// `cargo test --release -- --ignored --nocapture m100_decode_throughput`.
    #[test]
    #[ignore]
    fn m100_decode_throughput() {
        let mut sim = RfidSim::new(ReaderProtocol::M100, sample_epcs(200, 5), 10, 0.01, 5);
        let stream: Vec<u8> = (0..100).flat_map(|_| sim.next_chunk()).collect();
        let mut codec = ReaderCodec::new(ReaderProtocol::M100);
        let start = std::time::Instant::now();
        let mut buf = BytesMut::new();
        let mut reads = 0u64;
        for piece in stream.chunks(64) {
            buf.extend_from_slice(piece);
            while let Some(event) = codec.decode(&mut buf).unwrap() {
                reads += u64::from(matches!(event, ReaderEvent::Tag(_)));
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(reads, sim.valid_reads());
        println!(
            "m100 decode: {reads} reads, {} bytes in {elapsed:.3} s = {:.0} reads/s, {:.1} MB/s",
            stream.len(),
            reads as f64 / elapsed,
            stream.len() as f64 / elapsed / 1e6
        );
    }
}
