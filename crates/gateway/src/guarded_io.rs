//! I/O adapters that bound what one peer can hold.
//!
//! [`SocketIo`] wraps every accepted socket: it holds the socket's slot under the connection
//! cap for as long as the socket lives, and fails a write that makes no progress for the
//! write timeout (a peer that stopped reading).
//!
//! [`GuardedIo`] sits under the WebSocket codec and enforces the pre-hello frame limit while
//! the bytes are still on the wire. Until `hello-ok`, a client frame larger than 64 KiB closes
//! the connection with 1009. Checking after the codec has assembled the message would let an
//! unauthenticated peer make us buffer up to the post-hello limit (25 MiB) per socket, so this
//! adapter reads the frame headers as they arrive and fails the read as soon as a header (or a
//! fragmented message's running total) announces more than the limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

/// An accepted socket with its connection slot and a deadline on stalled writes.
pub struct SocketIo<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    write_timeout: Duration,
    /// Running while a write (or flush, or shutdown) is pending; allocated on the first stall.
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
}

impl<S> SocketIo<S> {
    pub fn new(inner: S, slot: OwnedSemaphorePermit, write_timeout: Duration) -> Self {
        SocketIo {
            inner,
            _slot: slot,
            write_timeout,
            stall: None,
            stalled: false,
        }
    }

    /// Passes a finished write through; a pending one starts (or keeps) the stall clock and
    /// fails with `TimedOut` once it has run for `write_timeout`.
    fn watch<T>(&mut self, cx: &mut Context<'_>, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.stalled = false;
            return res;
        }
        let deadline = Instant::now() + self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            stall.as_mut().reset(deadline);
            self.stalled = true;
        }
        if stall.as_mut().poll(cx).is_ready() {
            self.stalled = false;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer took nothing for {} ms",
                    self.write_timeout.as_millis()
                ),
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SocketIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SocketIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, res)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, res)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, res)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, res)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Shared between the adapter and the connection task.
#[derive(Debug, Default)]
pub struct PreHelloGuard {
    /// Cleared once the client is authenticated; the adapter then passes bytes through.
    active: AtomicBool,
    /// Set when an oversize frame was announced.
    tripped: AtomicBool,
}

impl PreHelloGuard {
    pub fn new() -> Arc<Self> {
        Arc::new(PreHelloGuard {
            active: AtomicBool::new(true),
            tripped: AtomicBool::new(false),
        })
    }

    pub fn finish(&self) {
        self.active.store(false, Ordering::Release);
    }

    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }
}

/// Incremental parser of client→server frame headers.
#[derive(Debug, Default)]
struct FrameScanner {
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: u64,
    /// Bytes of the data message being assembled from fragments.
    message_len: u64,
}

impl FrameScanner {
    /// Feeds bytes read from the socket; returns false once a message exceeds `limit`.
    fn feed(&mut self, mut bytes: &[u8], limit: u64) -> bool {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = (bytes.len() as u64).min(self.payload_left);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            let Some((total_header, payload_len)) = self.parse_header() else {
                continue;
            };
            if self.header_len < total_header {
                continue;
            }
            let opcode = self.header[0] & 0x0f;
            let fin = self.header[0] & 0x80 != 0;
            self.header_len = 0;
            self.payload_left = payload_len;
            if opcode & 0x08 == 0 {
                // Data frame (text, binary or continuation).
                self.message_len = self.message_len.saturating_add(payload_len);
                if self.message_len > limit {
                    return false;
                }
                if fin {
                    self.message_len = 0;
                }
            }
        }
        true
    }

    /// Once enough header bytes are in, the header's total size and the payload length.
    fn parse_header(&self) -> Option<(usize, u64)> {
        if self.header_len < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        match self.header[1] & 0x7f {
            126 => {
                if self.header_len < 4 {
                    return None;
                }
                let len = u16::from_be_bytes([self.header[2], self.header[3]]) as u64;
                Some((4 + mask_len, len))
            }
            127 => {
                if self.header_len < 10 {
                    return None;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                Some((10 + mask_len, u64::from_be_bytes(b)))
            }
            n => Some((2 + mask_len, n as u64)),
        }
    }
}

pub struct GuardedIo<S> {
    inner: S,
    guard: Arc<PreHelloGuard>,
    scanner: FrameScanner,
    limit: u64,
}

impl<S> GuardedIo<S> {
    pub fn new(inner: S, guard: Arc<PreHelloGuard>, limit: usize) -> Self {
        GuardedIo {
            inner,
            guard,
            scanner: FrameScanner::default(),
            limit: limit as u64,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res
            && this.guard.active.load(Ordering::Acquire)
            && !this.scanner.feed(&buf.filled()[before..], this.limit)
        {
            this.guard.tripped.store(true, Ordering::Release);
            return Poll::Ready(Err(io::Error::other("pre-hello frame too large")));
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len < 65536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    /// A write that keeps making progress, however slowly, goes on; one that makes none for
    /// the write timeout fails. The socket's slot is freed when the socket is dropped.
    #[tokio::test(start_paused = true)]
    async fn only_a_write_that_makes_no_progress_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let slot = slots.clone().try_acquire_owned().unwrap();
        let (near, mut far) = tokio::io::duplex(16);
        let mut io = SocketIo::new(near, slot, Duration::from_secs(10));
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 16];
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                far.read_exact(&mut chunk).await.unwrap();
            }
            far
        });
        io.write_all(&[0; 64]).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(27));
        let _far = reader.await.unwrap();
        let err = io.write_all(&[0; 32]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(37));
        assert_eq!(slots.available_permits(), 0);
        drop(io);
        assert_eq!(slots.available_permits(), 1);
    }

    #[test]
    fn small_frames_pass_byte_by_byte() {
        let mut s = FrameScanner::default();
        let mut bytes = frame(1, true, 200);
        bytes.extend(frame(9, true, 4));
        bytes.extend(frame(1, true, 65536));
        for b in bytes.chunks(1) {
            assert!(s.feed(b, 65536));
        }
    }

    #[test]
    fn an_oversize_header_trips_before_its_payload() {
        let mut s = FrameScanner::default();
        let f = frame(1, true, 70_000);
        assert!(!s.feed(&f[..14], 65536));
    }

    #[test]
    fn fragments_are_summed() {
        let mut s = FrameScanner::default();
        assert!(s.feed(&frame(1, false, 40_000), 65536));
        assert!(s.feed(&frame(9, true, 0), 65536));
        assert!(!s.feed(&frame(0, true, 40_000), 65536));
    }
}
