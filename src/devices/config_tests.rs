//! Unit tests of the `[devices]` section: parsing, defaults, profiles and every rejection.

use super::*;

fn parse(text: &str) -> Result<DevicesConfig, ConfigError> {
    let raw: RawDevices = toml::from_str(text).unwrap();
    raw.validate(Path::new("/etc/storenode/storenode.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn empty_section_is_valid() {
    let config = parse("").unwrap();
    assert!(config.is_empty());
    assert_eq!(config.rcn_region(), RcnRegion::None);
}

#[test]
fn full_example_validates_with_defaults() {
    let config = parse(
        r#"
        rcn_region = "se"
        [[scanners]]
        id = "scanner0"
        port = "/dev/storenode/scanner0"
        [[scanners]]
        id = "scanner1"
        port = "scanner1"
        profile = "stx-etx-scanner"
        parity = "even"
        [[readers]]
        id = "door"
        port = "/dev/storenode/reader0"
        protocol = "m100"
        region = "eu"
        power_cdbm = 2600
        exit = true
        [[readers]]
        id = "shelf"
        port = "/dev/ttyUSB1"
        profile = "chafon-uhfreader18"
        antennas = [1, 2]
        poll_interval_ms = 100
        "#,
    )
    .unwrap();
    assert_eq!(config.rcn_region(), RcnRegion::Sweden);
    let [plain, stx] = &config.scanners[..] else {
        panic!("two scanners")
    };
    assert_eq!(plain.serial.baud, 9600);
    assert_eq!(plain.framing.suffix, b"\r\n");
    assert_eq!(stx.serial.path, Path::new("/etc/storenode/scanner1"));
    assert!(stx.framing.stx_etx);
    assert_eq!(
        stx.serial.parity,
        Parity::Even,
        "explicit key beats profile"
    );
    let [door, shelf] = &config.readers[..] else {
        panic!("two readers")
    };
    assert_eq!(door.serial.baud, 115_200);
    assert!(door.exit);
    assert_eq!(door.region, Some(Region::Eu));
    assert_eq!(door.absence, Duration::from_secs(30));
    assert_eq!(shelf.serial.baud, 57_600);
    assert_eq!(shelf.poll_interval, Duration::from_millis(100));
}

#[test]
fn errors_name_the_key_and_reason() {
    let unknown = error("[[readers]]\nid = \"r\"\nport = \"/dev/x\"\nprotocol = \"llrp\"");
    assert!(
        unknown.contains("key `devices.readers[0].protocol`")
            && unknown.contains("m100, mercury, chafon, chafon-new or chafon-auto"),
        "{unknown}"
    );
    let duplicate = error(
        "[[scanners]]\nid = \"a\"\nport = \"/dev/x\"\n[[readers]]\nid = \"a\"\nport = \"/dev/y\"\nprotocol = \"m100\"",
    );
    assert!(
        duplicate.contains("devices.readers[0].id") && duplicate.contains("used by another"),
        "{duplicate}"
    );
    let parity = error("[[scanners]]\nid = \"a\"\nport = \"/dev/x\"\nparity = \"mark\"");
    assert!(parity.contains("devices.scanners[0].parity"), "{parity}");
    let power =
        error("[[readers]]\nid = \"r\"\nport = \"/dev/x\"\nprotocol = \"m100\"\npower_cdbm = 9000");
    assert!(
        power.contains("power_cdbm") && power.contains("9000"),
        "{power}"
    );
    let poll = error(
        "[[readers]]\nid = \"r\"\nport = \"/dev/x\"\nprotocol = \"mercury\"\npoll_interval_ms = 100",
    );
    assert!(poll.contains("read continuously"), "{poll}");
    let region = error("rcn_region = \"xx\"");
    assert!(region.contains("devices.rcn_region"), "{region}");
    let profile = error("[[scanners]]\nid = \"a\"\nport = \"/dev/x\"\nprofile = \"yrm100\"");
    assert!(profile.contains("is for a reader"), "{profile}");
    let missing = error("[[readers]]\nid = \"r\"\nport = \"/dev/x\"");
    assert!(
        missing.contains("protocol") && missing.contains("required"),
        "{missing}"
    );
    let bad_id = error("[[scanners]]\nid = \"a b\"\nport = \"/dev/x\"");
    assert!(bad_id.contains("devices.scanners[0].id"), "{bad_id}");
}
