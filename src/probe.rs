//! Small clients the appliance uses on itself: an MQTT CONNECT probe
//! (readiness, `mqrtc healthcheck`) and an HTTP/1.1 request.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends an MQTT 3.1.1 CONNECT (clean session, no credentials) and returns
/// the CONNACK return code. Any code proves the broker serves connections.
pub async fn mqtt_connack(
    addr: SocketAddr,
    client_id: &str,
    timeout: Duration,
) -> std::io::Result<u8> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&connect_packet(client_id, 10)).await?;
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).await?;
        if ack[0] != 0x20 || ack[1] != 0x02 {
            return Err(std::io::Error::other(format!("not a CONNACK: {ack:02x?}")));
        }
        // DISCONNECT, so an accepted probe leaves no session behind.
        let _ = s.write_all(&[0xe0, 0x00]).await;
        Ok(ack[3])
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNACK in time"))?
}

/// A minimal MQTT 3.1.1 CONNECT packet (clean session, no credentials).
pub(crate) fn connect_packet(client_id: &str, keepalive_secs: u16) -> Vec<u8> {
    let id = client_id.as_bytes();
    let mut var = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    var.extend_from_slice(&keepalive_secs.to_be_bytes());
    var.extend_from_slice(&(id.len() as u16).to_be_bytes());
    var.extend_from_slice(id);
    let mut p = vec![0x10];
    let mut len = var.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        p.push(byte);
        if len == 0 {
            break;
        }
    }
    p.extend(var);
    p
}

/// `GET path` over HTTP/1.1; returns the status and body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let (status, body) = http_request(addr, hyper::Method::GET, path, None, timeout).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTP/1.1 request (`json`: a JSON body) to `addr`; returns the status
/// and body. Used for `/healthz` and by the SDK's mock-RTC client.
pub async fn http_request(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    json: Option<String>,
    timeout: Duration,
) -> std::io::Result<(u16, Bytes)> {
    tokio::time::timeout(timeout, async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        if json.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(std::io::Error::other)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no HTTP answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::connect_packet;

    #[test]
    fn connect_packet_layout() {
        let p = connect_packet("abc", 10);
        assert_eq!(p[0], 0x10);
        assert_eq!(p[1] as usize, p.len() - 2);
        assert_eq!(&p[p.len() - 5..], &[0, 3, b'a', b'b', b'c']);
    }
}
