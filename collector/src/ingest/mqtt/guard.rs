//! Per-connection org isolation for the embedded broker, which cannot do it itself.
//!
//! rumqttd 0.20 checks credentials at CONNECT but has no per-user topic ACL (its tenant
//! prefixes need TLS client certificates), and the collector's in-process link does not
//! learn which connection published a message. So every client connection to the
//! embedded broker goes through this proxy (plaintext or TLS alike): it reads the
//! client's MQTT packets (3.1.1 and 5), learns the connection's org from the CONNECT
//! password (the org token, verified by [`Auth::org_for_token`] like every other door),
//! and closes the connection, counting it in `mqtt_cross_org_refused` and logging it, on
//! a PUBLISH, a will or a SUBSCRIBE whose topic could reach another org's
//! `veille/v1/{org}/…` (another org's id, or a wildcard in the org's place). Topics
//! outside `veille/v1/` (Tasmota's `tele/+/SENSOR`) pass. The broker-to-client direction
//! is copied unchanged.
//!
//! [`Guard`] is the pure part (bytes in, verdict out); [`proxy`] the I/O.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use veille_proto::defaults::MAX_BATCH_BYTES;
use veille_proto::topics;

use crate::auth::Auth;
use crate::metrics::IngestMetrics;

/// Largest packet the guard buffers: the broker's own limit (see `broker.rs`).
const MAX_PACKET_BYTES: usize = MAX_BATCH_BYTES + 64 * 1024;

const CONNECT: u8 = 1;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;

/// Why a connection was closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{what} on {topic:?}, outside the connection's org {org:?}")]
    CrossOrg {
        what: &'static str,
        topic: String,
        /// The org of the connection's token; empty when it had no valid token.
        org: String,
    },
    #[error("malformed MQTT packet ({0})")]
    Malformed(&'static str),
    #[error("MQTT packet of {0} bytes, over the limit")]
    TooLarge(usize),
}

/// Whether `filter` (a topic name or a subscription filter, possibly
/// `$share/{group}/…`) can only reach `veille/v1/{org}/…` among Veille's topics.
pub fn within_org(filter: &str, org: Option<&str>) -> bool {
    let mut segs: Vec<&str> = filter.split('/').collect();
    if segs.first() == Some(&"$share") {
        segs.drain(..segs.len().min(2));
    }
    let prefix: Vec<&str> = topics::PREFIX.split('/').collect();
    for (i, want) in prefix.iter().enumerate() {
        match segs.get(i).copied() {
            None => return true,
            Some("#") => return false,
            Some(s) if s == *want || s == "+" => {}
            Some(_) => return true,
        }
    }
    match segs.get(prefix.len()).copied() {
        None => true,
        Some(s) => Some(s) == org && s != "+" && s != "#",
    }
}

/// The client-to-broker half of one connection: checks each complete packet.
pub struct Guard {
    auth: Arc<Auth>,
    org: Option<String>,
    /// MQTT protocol level from CONNECT: 5 adds property blocks.
    level: u8,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refused> {
        let end = self.at.checked_add(n).ok_or(Refused::Malformed("length"))?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or(Refused::Malformed("short"))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Refused> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, Refused> {
        let b = self.take(2)?;
        Ok(usize::from(b[0]) << 8 | usize::from(b[1]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Refused> {
        let n = self.u16()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, Refused> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    fn varint(&mut self) -> Result<usize, Refused> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            v |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Refused::Malformed("variable length"))
    }
    fn skip_properties(&mut self) -> Result<(), Refused> {
        let n = self.varint()?;
        self.take(n).map(|_| ())
    }
}

impl Guard {
    pub fn new(auth: Arc<Auth>) -> Self {
        Self {
            auth,
            org: None,
            level: 4,
        }
    }

    /// The length of the complete packet at the start of `buf` once checked, `None` when
    /// `buf` does not hold a whole packet yet.
    pub fn next_packet(&mut self, buf: &[u8]) -> Result<Option<usize>, Refused> {
        let mut c = Cursor { b: buf, at: 1 };
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let body_len = match c.varint() {
            Ok(n) => n,
            Err(_) if buf.len() < 5 => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = c.at + body_len;
        if total > MAX_PACKET_BYTES {
            return Err(Refused::TooLarge(total));
        }
        if buf.len() < total {
            return Ok(None);
        }
        let mut body = Cursor {
            b: &buf[c.at..total],
            at: 0,
        };
        match first >> 4 {
            CONNECT => self.connect(&mut body)?,
            PUBLISH => {
                let topic = body.str()?;
                self.check("PUBLISH", &topic)?;
            }
            SUBSCRIBE => {
                body.take(2)?; // packet id
                if self.level == 5 {
                    body.skip_properties()?;
                }
                while body.at < body.b.len() {
                    let filter = body.str()?;
                    body.u8()?; // options
                    self.check("SUBSCRIBE", &filter)?;
                }
            }
            _ => {}
        }
        Ok(Some(total))
    }

    fn check(&self, what: &'static str, topic: &str) -> Result<(), Refused> {
        if within_org(topic, self.org.as_deref()) {
            Ok(())
        } else {
            Err(Refused::CrossOrg {
                what,
                topic: topic.chars().take(200).collect(),
                org: self.org.clone().unwrap_or_default(),
            })
        }
    }

    fn connect(&mut self, c: &mut Cursor<'_>) -> Result<(), Refused> {
        c.bytes()?; // protocol name
        self.level = c.u8()?;
        let flags = c.u8()?;
        c.u16()?; // keep alive
        if self.level == 5 {
            c.skip_properties()?;
        }
        c.bytes()?; // client id
        let mut will = None;
        if flags & 0x04 != 0 {
            if self.level == 5 {
                c.skip_properties()?;
            }
            will = Some(c.str()?);
            c.bytes()?; // will payload
        }
        if flags & 0x80 != 0 {
            c.bytes()?; // username
        }
        if flags & 0x40 != 0 {
            let password = String::from_utf8_lossy(c.bytes()?).into_owned();
            self.org = self.auth.org_for_token(&password).map(str::to_owned);
        }
        if let Some(topic) = will {
            self.check("will", &topic)?;
        }
        Ok(())
    }
}

/// Accepts plaintext connections on `listener` until `stop`, for [`proxy`] (with TLS,
/// `tls::accept_loop` takes this place).
pub fn accept_plain(
    listener: tokio::net::TcpListener,
    what: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<(TcpStream, SocketAddr)> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.wait_for(|s| *s) => return,
                () = tx.closed() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    if tx.send((tcp, peer)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(error = %e, "{what}: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    rx
}

/// Forwards each connection from `rx` to the embedded broker at `inner` through a
/// [`Guard`], until the accept loop ends.
pub async fn proxy<C>(
    mut rx: mpsc::Receiver<(C, SocketAddr)>,
    inner: SocketAddr,
    auth: Arc<Auth>,
    metrics: Arc<IngestMetrics>,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    while let Some((conn, peer)) = rx.recv().await {
        let (auth, metrics) = (auth.clone(), metrics.clone());
        tokio::spawn(async move {
            let upstream = match TcpStream::connect(inner).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "cannot reach the embedded MQTT broker at {inner}");
                    return;
                }
            };
            let _ = upstream.set_nodelay(true);
            match one(conn, upstream, Guard::new(auth)).await {
                Ok(()) => {}
                Err(Ended::Refused(r)) => {
                    IngestMetrics::add(&metrics.mqtt_cross_org_refused, 1);
                    tracing::warn!(%peer, reason = "cross_org", "MQTT connection closed: {r}");
                }
                Err(Ended::Io(e)) => tracing::debug!(%peer, error = %e, "MQTT connection ended"),
            }
        });
    }
}

enum Ended {
    Refused(Refused),
    Io(std::io::Error),
}

async fn one<C>(conn: C, upstream: TcpStream, mut guard: Guard) -> Result<(), Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(conn);
    let (mut ur, mut uw) = upstream.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = cr.read(&mut buf).await.map_err(Ended::Io)?;
            if n == 0 {
                let _ = uw.shutdown().await;
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
            let mut checked = 0;
            while let Some(len) = guard
                .next_packet(&pending[checked..])
                .map_err(Ended::Refused)?
            {
                checked += len;
            }
            uw.write_all(&pending[..checked]).await.map_err(Ended::Io)?;
            pending.drain(..checked);
        }
    };
    let down = async {
        tokio::io::copy(&mut ur, &mut cw).await.map_err(Ended::Io)?;
        let _ = cw.shutdown().await;
        Ok(())
    };
    // Either side ending (or a refusal) ends the connection: dropping both halves
    // closes the client and the broker's side.
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenHash;

    fn auth() -> Arc<Auth> {
        Arc::new(Auth::new(
            vec![
                ("acme".into(), TokenHash::of("acme-token-0123456789")),
                ("town".into(), TokenHash::of("town-token-0123456789")),
            ],
            TokenHash::of("operator-0123456789"),
        ))
    }

    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind << 4 | if kind == SUBSCRIBE { 2 } else { 0 }];
        let mut n = body.len();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            p.push(b);
            if n == 0 {
                break;
            }
        }
        p.extend_from_slice(body);
        p
    }

    fn s(v: &str) -> Vec<u8> {
        let mut out = (v.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(v.as_bytes());
        out
    }

    fn connect(level: u8, password: &str, will: Option<&str>) -> Vec<u8> {
        let mut b = s("MQTT");
        b.push(level);
        b.push(0x40 | if will.is_some() { 0x04 } else { 0 });
        b.extend_from_slice(&[0, 30]);
        if level == 5 {
            b.push(0);
        }
        b.extend(s("client-1"));
        if let Some(w) = will {
            if level == 5 {
                b.push(0);
            }
            b.extend(s(w));
            b.extend(s("bye"));
        }
        b.extend(s(password));
        packet(CONNECT, &b)
    }

    fn publish(topic: &str) -> Vec<u8> {
        let mut b = s(topic);
        b.extend_from_slice(b"payload");
        packet(PUBLISH, &b)
    }

    fn subscribe(level: u8, filters: &[&str]) -> Vec<u8> {
        let mut b = vec![0, 1];
        if level == 5 {
            b.push(0);
        }
        for f in filters {
            b.extend(s(f));
            b.push(1);
        }
        packet(SUBSCRIBE, &b)
    }

    #[test]
    fn topics_within_an_org() {
        let acme = Some("acme");
        for ok in [
            "veille/v1/acme/devices/pc-1/reports",
            "veille/v1/acme/devices/+/ack",
            "veille/v1/acme/#",
            "$share/g/veille/v1/acme/devices/+/reports",
            "tele/plug1/SENSOR",
            "tele/#",
            "other/v1/town",
            "veille/v2/town/x",
            "veille/v1",
        ] {
            assert!(within_org(ok, acme), "{ok}");
        }
        for refused in [
            "veille/v1/town/devices/pc-1/reports",
            "veille/v1/+/devices/+/ack",
            "veille/v1/#",
            "veille/+/town/policy",
            "+/v1/town/policy",
            "+/+/+/policy",
            "#",
            "$share/g/veille/v1/+/devices/+/reports",
            "$share/g/#",
        ] {
            assert!(!within_org(refused, acme), "{refused}");
        }
        assert!(!within_org("veille/v1/acme/policy", None));
    }

    #[test]
    fn a_connection_may_publish_and_subscribe_only_in_its_org() {
        for level in [4u8, 5] {
            let mut g = Guard::new(auth());
            let mut wire = connect(level, "acme-token-0123456789", None);
            wire.extend(publish("veille/v1/acme/devices/pc-1/reports"));
            wire.extend(subscribe(level, &["veille/v1/acme/devices/pc-1/ack"]));
            let mut at = 0;
            while at < wire.len() {
                at += g.next_packet(&wire[at..]).unwrap().expect("whole packet");
            }
            let e = g
                .next_packet(&publish("veille/v1/town/devices/pc-1/reports"))
                .unwrap_err();
            assert!(
                matches!(&e, Refused::CrossOrg { what: "PUBLISH", org, .. } if org == "acme"),
                "{e}"
            );
            let e = g
                .next_packet(&subscribe(
                    level,
                    &["veille/v1/acme/policy", "veille/v1/+/policy"],
                ))
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    Refused::CrossOrg {
                        what: "SUBSCRIBE",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn wills_unknown_tokens_and_partial_packets() {
        let mut g = Guard::new(auth());
        let e = g
            .next_packet(&connect(
                4,
                "acme-token-0123456789",
                Some("veille/v1/town/policy"),
            ))
            .unwrap_err();
        assert!(matches!(e, Refused::CrossOrg { what: "will", .. }), "{e}");

        // An unknown token gets no org: rumqttd refuses the CONNECT, and nothing under
        // veille/v1 passes meanwhile.
        let mut g = Guard::new(auth());
        assert!(g.next_packet(&connect(5, "nope", None)).unwrap().is_some());
        assert!(g.next_packet(&publish("veille/v1/acme/policy")).is_err());

        // A packet split anywhere waits for its end; a bad length is refused.
        let mut g = Guard::new(auth());
        let c = connect(4, "town-token-0123456789", None);
        for cut in 0..c.len() {
            assert_eq!(g.next_packet(&c[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(g.next_packet(&c).unwrap(), Some(c.len()));
        assert_eq!(
            g.next_packet(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(Refused::Malformed("variable length"))
        );
        assert!(matches!(
            g.next_packet(&[0x30, 0xff, 0xff, 0xff, 0x7f]),
            Err(Refused::TooLarge(_))
        ));
        // A truncated string inside a complete packet is malformed, not a panic.
        assert!(matches!(
            g.next_packet(&[0x30, 0x02, 0x00, 0x09]),
            Err(Refused::Malformed(_))
        ));
    }
}
