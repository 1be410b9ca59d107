//! Asking rtkit (`org.freedesktop.RealtimeKit1` on the system bus) for real-time priority, the
//! way desktop audio programs get it without root: a small D-Bus client that does exactly this
//! and nothing else. Used once at start-up by rt.rs (allocating is fine here), never in a frame.
//!
//! Why a hand-written client rather than the `dbus` crate: that crate links libdbus-1 through
//! libdbus-sys, so every machine that builds the platform (CI, each developer's box) would need
//! libdbus-1-dev and pkg-config for one start-up request. What the request needs is small:
//! connect to a Unix socket, authenticate with SASL EXTERNAL (our uid; the only mechanism a
//! system bus offers local clients anyway), `Hello`, two `Properties.Get` and one
//! `MakeThreadRealtime` per thread, then read the replies. That is the code below: std only,
//! one `unsafe` (geteuid), messages written little-endian, replies read in either byte order,
//! signals that arrive in between skipped. Every read and write is bounded by one deadline
//! (socket timeouts), so a bus that accepts and never answers cannot hang the caller; rt.rs also
//! runs it on a helper thread it waits for a bounded time (as platform/audio/reopen.rs does).
//!
//! Reference: the D-Bus specification (message format, SASL), rtkit's
//! org.freedesktop.RealtimeKit1.xml (`MakeThreadRealtime(t thread, u priority)`, properties
//! `MaxRealtimePriority` (i) and `RTTimeUSecMax` (x)).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Where the system bus listens when `DBUS_SYSTEM_BUS_ADDRESS` does not say.
const SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";
const RTKIT: &str = "org.freedesktop.RealtimeKit1";
const RTKIT_PATH: &str = "/org/freedesktop/RealtimeKit1";
/// A reply larger than this is not one of the few small replies asked for.
const MAX_MESSAGE: usize = 1 << 20;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

/// What rtkit hands out: requests above either limit are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_priority: u32,
    /// RLIMIT_RTTIME's hard limit must be at most this many microseconds.
    pub rttime_usec_max: u64,
}

/// One connection to the system bus, authenticated and said `Hello` to.
pub struct Bus {
    stream: UnixStream,
    serial: u32,
    deadline: Instant,
}

impl Bus {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket); everything done on
    /// this connection must finish within `timeout` from now.
    pub fn system(timeout: Duration) -> Result<Self, String> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| SYSTEM_BUS.into());
        Self::connect(&address, timeout)
    }

    pub fn connect(address: &str, timeout: Duration) -> Result<Self, String> {
        let deadline = Instant::now() + timeout;
        let stream = connect_address(address)?;
        let mut bus = Self { stream, serial: 0, deadline };
        bus.authenticate()?;
        bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", &[])?;
        Ok(bus)
    }

    /// rtkit's `MaxRealtimePriority` and `RTTimeUSecMax`.
    pub fn rtkit_limits(&mut self) -> Result<Limits, String> {
        let max_priority = self.rtkit_property("MaxRealtimePriority")?;
        let rttime_usec_max = self.rtkit_property("RTTimeUSecMax")?;
        Ok(Limits {
            max_priority: u32::try_from(max_priority).map_err(|_| format!("MaxRealtimePriority {max_priority}"))?,
            rttime_usec_max: u64::try_from(rttime_usec_max).map_err(|_| format!("RTTimeUSecMax {rttime_usec_max}"))?,
        })
    }

    /// Asks rtkit to make thread `tid` (of this process: rtkit takes the caller's pid from the
    /// bus) real-time at `priority`. rtkit uses its own policy (SCHED_RR unless configured) and
    /// always adds SCHED_RESET_ON_FORK.
    pub fn make_thread_realtime(&mut self, tid: u64, priority: u32) -> Result<(), String> {
        self.call(RTKIT, RTKIT_PATH, RTKIT, "MakeThreadRealtime", &[Arg::U64(tid), Arg::U32(priority)]).map(drop)
    }

    fn rtkit_property(&mut self, name: &str) -> Result<i64, String> {
        let properties = "org.freedesktop.DBus.Properties";
        let body = self.call(RTKIT, RTKIT_PATH, properties, "Get", &[Arg::Str(RTKIT), Arg::Str(name)])?;
        body.reader().variant_int().map_err(|e| format!("{name}: {e}"))
    }

    /// SASL EXTERNAL: the bus checks the uid we claim against the socket's peer credentials.
    fn authenticate(&mut self) -> Result<(), String> {
        // SAFETY: geteuid cannot fail and touches no memory of ours.
        let uid = unsafe { libc::geteuid() };
        let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        self.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let answer = self.read_line()?;
        if !answer.starts_with("OK ") {
            return Err(format!("the bus refused authentication: {}", answer.trim_end()));
        }
        self.write_all(b"BEGIN\r\n")
    }

    /// Sends one method call and waits for its reply (skipping signals and anything else).
    fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Arg],
    ) -> Result<Body, String> {
        self.serial += 1;
        let message = method_call(self.serial, destination, path, interface, member, args);
        self.write_all(&message)?;
        loop {
            let reply = self.read_message()?;
            if reply.reply_serial != Some(self.serial) {
                continue;
            }
            return match reply.kind {
                METHOD_RETURN => Ok(reply.body),
                ERROR => Err(reply.error_text()),
                other => Err(format!("unexpected message type {other} in reply to {member}")),
            };
        }
    }

    fn read_message(&mut self) -> Result<Message, String> {
        let mut fixed = [0u8; 16];
        self.read_exact(&mut fixed)?;
        let big = match fixed[0] {
            b'l' => false,
            b'B' => true,
            other => return Err(format!("not a D-Bus message (byte order {other:#x})")),
        };
        let word = |at: usize| read_u32([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]], big) as usize;
        let (body_len, fields_len) = (word(4), word(12));
        let header_len = (16 + fields_len).next_multiple_of(8);
        if header_len + body_len > MAX_MESSAGE {
            return Err(format!("a {} byte message is too large", header_len + body_len));
        }
        let mut rest = vec![0u8; header_len - 16 + body_len];
        self.read_exact(&mut rest)?;
        let mut header = fixed.to_vec();
        header.extend_from_slice(&rest[..fields_len]);
        let body = Body { bytes: rest[header_len - 16..].to_vec(), big, signature: String::new() };
        parse_header(&header, big, fixed[1], body)
    }

    fn read_line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            self.read_exact(&mut byte)?;
            line.push(byte[0]);
            if line.len() > 512 {
                return Err("the bus sent an over-long authentication line".into());
            }
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn remaining(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the system bus did not answer in time".into());
        }
        Ok(left)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        let left = self.remaining()?;
        self.stream.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
        self.stream.write_all(bytes).map_err(|e| io_text("write to the system bus", &e))
    }

    fn read_exact(&mut self, into: &mut [u8]) -> Result<(), String> {
        let mut filled = 0;
        while filled < into.len() {
            let left = self.remaining()?;
            self.stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.stream.read(&mut into[filled..]) {
                Ok(0) => return Err("the system bus closed the connection".into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_text("read from the system bus", &e)),
            }
        }
        Ok(())
    }
}

fn io_text(what: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "the system bus did not answer in time".into(),
        _ => format!("cannot {what}: {e}"),
    }
}

/// The first `unix:path=` or `unix:abstract=` address of a D-Bus address list that connects.
fn connect_address(address: &str) -> Result<UnixStream, String> {
    let mut last = format!("no usable address in `{address}` (only unix:path= and unix:abstract=)");
    for entry in address.split(';') {
        let Some(keys) = entry.strip_prefix("unix:") else { continue };
        for key in keys.split(',') {
            let connected = if let Some(path) = key.strip_prefix("path=") {
                UnixStream::connect(unescape(path))
            } else if let Some(name) = key.strip_prefix("abstract=") {
                connect_abstract(&unescape(name))
            } else {
                continue;
            };
            match connected {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("cannot connect to the system bus at {entry}: {e}"),
            }
        }
    }
    Err(last)
}

fn connect_abstract(name: &str) -> std::io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixStream::connect_addr(&addr)
}

/// D-Bus addresses escape bytes as `%xx`.
fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_u32(b: [u8; 4], big: bool) -> u32 {
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// An argument of a method call.
#[derive(Debug, Clone, Copy)]
enum Arg<'a> {
    Str(&'a str),
    U32(u32),
    U64(u64),
}

/// Little-endian marshalling; offsets (and so alignment) count from the start of the buffer.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn pad(&mut self, align: usize) {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn arg(&mut self, arg: Arg) -> char {
        match arg {
            Arg::Str(s) => self.string(s),
            Arg::U32(v) => self.u32(v),
            Arg::U64(v) => self.u64(v),
        }
        match arg {
            Arg::Str(_) => 's',
            Arg::U32(_) => 'u',
            Arg::U64(_) => 't',
        }
    }
    /// One header field: a `(yv)` struct, 8-aligned.
    fn field(&mut self, code: u8, kind: &str, value: &str) {
        self.pad(8);
        self.0.push(code);
        self.signature(kind);
        if kind == "g" {
            self.signature(value);
        } else {
            self.string(value);
        }
    }
}

/// A complete METHOD_CALL message. The body starts 8-aligned, so its alignment counts from 0.
fn method_call(serial: u32, destination: &str, path: &str, interface: &str, member: &str, args: &[Arg]) -> Vec<u8> {
    let mut body = Writer::default();
    let signature: String = args.iter().map(|&a| body.arg(a)).collect();
    let mut message = Writer(vec![b'l', METHOD_CALL, 0, 1]);
    message.u32(body.0.len() as u32);
    message.u32(serial);
    message.u32(0); // the header fields' length, filled in below
    message.field(1, "o", path);
    message.field(2, "s", interface);
    message.field(3, "s", member);
    message.field(6, "s", destination);
    if !signature.is_empty() {
        message.field(8, "g", &signature);
    }
    let fields_len = (message.0.len() - 16) as u32;
    message.0[12..16].copy_from_slice(&fields_len.to_le_bytes());
    message.pad(8);
    message.0.extend_from_slice(&body.0);
    message.0
}

/// A message received: its type, the fields a reply needs, and its body.
#[derive(Debug)]
struct Message {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    body: Body,
}

impl Message {
    /// `Name: message` of an ERROR reply.
    fn error_text(&self) -> String {
        let name = self.error_name.as_deref().unwrap_or("an unnamed error");
        let text = if self.body.signature.starts_with('s') { self.body.reader().string().ok() } else { None };
        match text {
            Some(text) => format!("{name}: {text}"),
            None => name.to_string(),
        }
    }
}

/// The header fields a reply needs: REPLY_SERIAL (5), ERROR_NAME (4), SIGNATURE (8).
/// `header` is the fixed part and the fields, without the padding after them.
fn parse_header(header: &[u8], big: bool, kind: u8, mut body: Body) -> Result<Message, String> {
    let mut r = Reader { bytes: header, at: 16, big };
    let (mut reply_serial, mut error_name) = (None, None);
    while r.at < header.len() {
        r.align(8)?;
        let code = r.byte()?;
        let kind = r.signature()?;
        match (code, kind.as_str()) {
            (5, "u") => reply_serial = Some(r.u32()?),
            (4, "s") => error_name = Some(r.string()?),
            (8, "g") => body.signature = r.signature()?,
            (_, "s" | "o") => drop(r.string()?),
            (_, "g") => drop(r.signature()?),
            (_, "u") => drop(r.u32()?),
            (_, other) => return Err(format!("unexpected header field type `{other}`")),
        }
    }
    Ok(Message { kind, reply_serial, error_name, body })
}

/// A message body with its byte order and signature.
#[derive(Debug)]
struct Body {
    bytes: Vec<u8>,
    big: bool,
    signature: String,
}

impl Body {
    fn reader(&self) -> Reader<'_> {
        Reader { bytes: &self.bytes, at: 0, big: self.big }
    }
}

/// Unmarshalling from a buffer whose offset 0 is 8-aligned in the message.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    big: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("a truncated D-Bus message")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
    fn align(&mut self, align: usize) -> Result<(), String> {
        let to = self.at.next_multiple_of(align);
        self.take(to - self.at).map(drop)
    }
    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.align(4)?;
        let b = self.take(4)?;
        Ok(read_u32([b[0], b[1], b[2], b[3]], self.big))
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.align(8)?;
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "a truncated D-Bus message")?;
        Ok(if self.big { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        let text = String::from_utf8_lossy(self.take(len)?).into_owned();
        self.take(1)?;
        Ok(text)
    }
    fn signature(&mut self) -> Result<String, String> {
        let len = self.byte()? as usize;
        let text = String::from_utf8_lossy(self.take(len)?).into_owned();
        self.take(1)?;
        Ok(text)
    }
    /// A variant holding an integer (rtkit's properties are `i` and `x`).
    fn variant_int(&mut self) -> Result<i64, String> {
        match self.signature()?.as_str() {
            "i" => Ok(self.u32()? as i32 as i64),
            "u" => Ok(self.u32()? as i64),
            "x" => Ok(self.u64()? as i64),
            "t" => i64::try_from(self.u64()?).map_err(|e| e.to_string()),
            other => Err(format!("a variant of type `{other}` where an integer was expected")),
        }
    }
}

#[cfg(test)]
#[path = "rtkit_tests.rs"]
mod tests;
