//! The server's async end of the init channel (framing in `warmbox_inside::protocol`).

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use warmbox_inside::protocol::{self, Frame, FromInit, ProtocolError, ToInit};

fn io(op: &'static str) -> impl Fn(std::io::Error) -> ProtocolError {
    move |source| match source.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => ProtocolError::Closed,
        _ => ProtocolError::Io { op, source },
    }
}

/// Sends one frame; `fds` ride on its first bytes.
pub async fn send(
    stream: &mut UnixStream,
    msg: &ToInit,
    payload: &[u8],
    fds: &[RawFd],
) -> Result<(), ProtocolError> {
    send_parts(stream, msg, &[payload], fds).await
}

/// Sends one frame whose payload is `parts` in order (no copy into one buffer).
pub async fn send_parts(
    stream: &mut UnixStream,
    msg: &ToInit,
    parts: &[&[u8]],
    fds: &[RawFd],
) -> Result<(), ProtocolError> {
    let payload_len = parts.iter().map(|p| p.len()).sum();
    let head = protocol::encode_head(msg, payload_len)?;
    let mut sent = 0;
    if !fds.is_empty() {
        loop {
            stream.writable().await.map_err(io("wait writable"))?;
            let fd = stream.as_raw_fd();
            match stream.try_io(tokio::io::Interest::WRITABLE, || {
                protocol::send_with_fds(fd, &head, fds)
            }) {
                Ok(n) => {
                    sent = n;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io("sendmsg")(e)),
            }
        }
    }
    stream.write_all(&head[sent..]).await.map_err(io("write"))?;
    for part in parts {
        stream.write_all(part).await.map_err(io("write"))?;
    }
    Ok(())
}

/// Sends a frame without fds through a write half.
pub async fn send_plain<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    msg: &ToInit,
) -> Result<(), ProtocolError> {
    let head = protocol::encode_head(msg, 0)?;
    w.write_all(&head).await.map_err(io("write"))
}

/// Receives one frame from the init (the init never sends fds). Not cancel-safe: keep the
/// future alive across `select!` iterations.
pub async fn recv<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame<FromInit>, ProtocolError> {
    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix).await.map_err(io("read"))?;
    let (hlen, plen) = protocol::decode_prefix(prefix)?;
    let mut header = vec![0u8; hlen];
    r.read_exact(&mut header).await.map_err(io("read"))?;
    let mut payload = vec![0u8; plen];
    r.read_exact(&mut payload).await.map_err(io("read"))?;
    let msg =
        serde_json::from_slice(&header).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(Frame {
        msg,
        payload,
        fds: Vec::new(),
    })
}
