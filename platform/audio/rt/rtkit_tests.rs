//! Tests of the rtkit D-Bus client: message bytes and reply parsing checked by hand against the
//! D-Bus specification, then a real `dbus-daemon` (a private one) talked to, and a bus that
//! never answers.

use super::*;
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Stdio};

#[test]
fn a_method_call_is_laid_out_as_the_specification_says() {
    let m = method_call(7, "org.x", "/o", "org.i", "M", &[Arg::U32(5), Arg::U64(9)]);
    assert_eq!(&m[..4], &[b'l', METHOD_CALL, 0, 1], "byte order, type, flags, version");
    let word = |at: usize| u32::from_le_bytes(m[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(word(8), 7, "serial");
    let fields_len = word(12);
    let body_at = (16 + fields_len).next_multiple_of(8);
    assert_eq!(word(4), 16, "body: u32 5, 4 bytes of padding, u64 9");
    assert_eq!(m.len(), body_at + 16);
    assert_eq!(&m[body_at..], &[5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    // The first field: PATH (1), signature "o", string "/o".
    assert_eq!(&m[16..28], &[1, 1, b'o', 0, 2, 0, 0, 0, b'/', b'o', 0, 0]);
    // The last field: SIGNATURE (8), signature "g", the body's signature "ut".
    assert_eq!(&m[16 + fields_len - 8..16 + fields_len], &[8, 1, b'g', 0, 2, b'u', b't', 0]);
}

/// A reply as a bus sends it, in either byte order.
fn reply(big: bool, kind: u8, reply_serial: u32, signature: &str, body: &[u8]) -> Vec<u8> {
    let w32 = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut m = vec![if big { b'B' } else { b'l' }, kind, 0, 1];
    m.extend(w32(body.len() as u32));
    m.extend(w32(3));
    let mut fields = vec![5, 1, b'u', 0];
    fields.extend(w32(reply_serial));
    if !signature.is_empty() {
        // The REPLY_SERIAL field took 8 bytes: the next one is 8-aligned already.
        fields.extend([8, 1, b'g', 0, signature.len() as u8]);
        fields.extend(signature.bytes());
        fields.push(0);
    }
    m.extend(w32(fields.len() as u32));
    m.extend(&fields);
    while m.len() % 8 != 0 {
        m.push(0);
    }
    m.extend(body);
    m
}

fn parse(bytes: &[u8]) -> Message {
    let big = bytes[0] == b'B';
    let fields_len = read_u32(bytes[12..16].try_into().unwrap(), big) as usize;
    let header_len = (16 + fields_len).next_multiple_of(8);
    let body = Body { bytes: bytes[header_len..].to_vec(), big, signature: String::new() };
    parse_header(&bytes[..16 + fields_len], big, bytes[1], body).unwrap()
}

#[test]
fn integer_variants_are_read_in_either_byte_order() {
    // `v` holding `x` 200000: signature "x", padding to 8, the value.
    let mut little = vec![1, b'x', 0, 0, 0, 0, 0, 0];
    little.extend(200_000i64.to_le_bytes());
    let mut big = vec![1, b'x', 0, 0, 0, 0, 0, 0];
    big.extend(200_000i64.to_be_bytes());
    for (is_big, body) in [(false, little), (true, big)] {
        let m = parse(&reply(is_big, METHOD_RETURN, 4, "v", &body));
        assert_eq!((m.kind, m.reply_serial, m.body.signature.as_str()), (METHOD_RETURN, Some(4), "v"));
        assert_eq!(m.body.reader().variant_int(), Ok(200_000));
    }
    // `v` holding `i` -3.
    let mut body = vec![1, b'i', 0, 0];
    body.extend((-3i32).to_le_bytes());
    assert_eq!(parse(&reply(false, METHOD_RETURN, 1, "v", &body)).body.reader().variant_int(), Ok(-3));
    let text = vec![1, b's', 0, 0, 1, 0, 0, 0, b'a', 0];
    assert!(parse(&reply(false, METHOD_RETURN, 1, "v", &text)).body.reader().variant_int().is_err());
}

#[test]
fn a_truncated_body_is_an_error_not_a_panic() {
    let m = parse(&reply(false, METHOD_RETURN, 1, "v", &[1, b'x', 0, 0, 0, 0, 0, 0, 1, 2]));
    assert_eq!(m.body.reader().variant_int(), Err("a truncated D-Bus message".to_string()));
}

#[test]
fn addresses_are_unescaped_and_unusable_ones_said() {
    assert_eq!(unescape("/tmp/a%20b%2c"), "/tmp/a b,");
    assert_eq!(unescape("100%"), "100%");
    let e = connect_address("tcp:host=localhost,port=1").unwrap_err();
    assert!(e.contains("no usable address"), "{e}");
    let e = connect_address("unix:path=/nonexistent/bus").unwrap_err();
    assert!(e.contains("cannot connect to the system bus at unix:path=/nonexistent/bus"), "{e}");
}

/// A bus that accepts the connection and never answers costs the timeout, not a hang.
#[test]
fn a_bus_that_never_answers_is_an_error_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent");
    let listener = UnixListener::bind(&path).unwrap();
    let start = Instant::now();
    let result = Bus::connect(&format!("unix:path={}", path.display()), Duration::from_millis(300));
    let elapsed = start.elapsed();
    drop(listener);
    assert_eq!(result.err().as_deref(), Some("the system bus did not answer in time"));
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn a_refused_authentication_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refusing");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        let mut first = [0u8; 16];
        peer.read_exact(&mut first).unwrap();
        peer.write_all(b"REJECTED EXTERNAL\r\n").unwrap();
        first
    });
    let result = Bus::connect(&format!("unix:path={}", path.display()), Duration::from_secs(1));
    let first = server.join().unwrap();
    assert_eq!(&first[..15], b"\0AUTH EXTERNAL ");
    assert_eq!(result.err().as_deref(), Some("the bus refused authentication: REJECTED EXTERNAL"));
}

/// A private dbus-daemon; killed when dropped.
struct PrivateBus(Child, tempfile::TempDir);

impl PrivateBus {
    fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus");
        let xml = format!(
            "<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow send_destination=\"*\"/><allow receive_sender=\"*\"/><allow own=\"*\"/></policy></busconfig>",
            socket.display()
        );
        std::fs::write(&config, xml).unwrap();
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: cannot run dbus-daemon ({e}); .ci/setup.sh installs it");
                return None;
            }
            Err(e) => panic!("cannot run dbus-daemon under CI: {e}"),
        };
        let bus = Self(child, dir);
        for _ in 0..200 {
            if socket.exists() {
                return Some(bus);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("dbus-daemon did not create {}", socket.display());
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.1.path().join("bus").display())
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Against a real dbus-daemon: authentication and `Hello` succeed, a call with a string
/// argument gets its string reply, and asking a name nobody owns (rtkit, here) is the bus's
/// own error in one line.
#[test]
fn a_real_bus_answers_and_its_errors_are_one_line() {
    let Some(daemon) = PrivateBus::start() else { return };
    let mut bus = Bus::connect(&daemon.address(), Duration::from_secs(2)).expect("connect and Hello");
    let dbus = "org.freedesktop.DBus";
    let owner = bus.call(dbus, "/org/freedesktop/DBus", dbus, "GetNameOwner", &[Arg::Str(dbus)]).unwrap();
    assert_eq!(owner.signature, "s");
    assert_eq!(owner.reader().string().unwrap(), dbus);
    let e = bus.rtkit_limits().unwrap_err();
    assert!(e.starts_with("org.freedesktop.DBus.Error.ServiceUnknown: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // The connection is still usable after an error reply.
    bus.call(dbus, "/org/freedesktop/DBus", dbus, "GetId", &[]).expect("GetId");
}

/// `unix:abstract=` addresses (Linux's abstract socket names) connect too.
#[test]
fn an_abstract_address_connects() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("handmade-rtkit-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let result = Bus::connect(&format!("unix:abstract={name},guid=0"), Duration::from_millis(100));
    drop(listener);
    assert_eq!(result.err().as_deref(), Some("the system bus did not answer in time"), "it connected, then waited");
}
