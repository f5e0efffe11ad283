//! In-memory byte pipes between the host and a guest's stdio.
//!
//! A [`pipe`] has a bounded buffer shared by one writer and one reader. The
//! host end implements `futures::io::AsyncRead`/`AsyncWrite` (what capnp-rpc's
//! `VatNetwork` wants) and the guest end implements Wasmtime's WASI stream
//! traits directly, with real readiness:
//!
//! - a guest `read` never blocks; `subscribe` resolves when data or end of
//!   stream is there;
//! - a guest `check-write` reports the free space, so a guest that writes
//!   faster than the host reads is held back (backpressure) instead of
//!   buffering without bound;
//! - dropping either end closes the pipe: the reader sees end of stream and
//!   the writer sees `Closed`.
//!
//! Why not `AsyncStdinStream`/`AsyncStdoutStream` from `wasmtime-wasi`: those
//! put a background task and a channel hop between the guest and the buffer
//! (and read at most 64 KiB per hop). Every RPC round trip crosses two pipes,
//! so the direct version saves two task wakeups per message.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Buffer size for pipes that carry a Cap'n Proto session. Larger than any
/// single message we expect on the hot path so a message never stalls halfway.
pub const SESSION_PIPE_CAPACITY: usize = 4 << 20;

/// Buffer size for plain stdio pipes of a `pipes`-mode child.
pub const RAW_PIPE_CAPACITY: usize = 64 << 10;

#[derive(Debug)]
struct State {
    buf: VecDeque<u8>,
    capacity: usize,
    writer_closed: bool,
    reader_closed: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

#[derive(Debug)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of a
        // plain byte buffer; the data is still consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a pipe whose buffer holds at most `capacity` bytes.
pub fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let shared = Arc::new(Shared(Mutex::new(State {
        buf: VecDeque::new(),
        capacity: capacity.max(1),
        writer_closed: false,
        reader_closed: false,
        reader_waker: None,
        writer_waker: None,
    })));
    (
        PipeWriter {
            shared: shared.clone(),
        },
        PipeReader { shared },
    )
}

/// The write end of a pipe. Dropping it signals end of stream to the reader.
#[derive(Debug)]
pub struct PipeWriter {
    shared: Arc<Shared>,
}

/// The read end of a pipe. Dropping it makes further writes fail.
#[derive(Debug)]
pub struct PipeReader {
    shared: Arc<Shared>,
}

impl PipeWriter {
    /// Bytes that can be written now without waiting; `Err` when the reader is gone.
    fn free_space(&self) -> Result<usize, ()> {
        let st = self.shared.lock();
        if st.reader_closed {
            return Err(());
        }
        Ok(st.capacity - st.buf.len().min(st.capacity))
    }

    fn poll_write_some(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock();
        if st.reader_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let free = st.capacity.saturating_sub(st.buf.len());
        if free == 0 {
            st.writer_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = free.min(data.len());
        st.buf.extend(&data[..n]);
        if let Some(w) = st.reader_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.shared.lock();
        if st.reader_closed || st.buf.len() < st.capacity {
            return Poll::Ready(());
        }
        st.writer_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Closes the write end now (the reader sees end of stream once drained).
    pub fn close(&self) {
        let mut st = self.shared.lock();
        st.writer_closed = true;
        if let Some(w) = st.reader_waker.take() {
            w.wake();
        }
    }

    /// Writes all of `data`, waiting for room as needed.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write_some(cx, data)).await?;
            data = &data[n..];
        }
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.close();
    }
}

impl PipeReader {
    /// Reads up to `max` bytes; `Ok(empty)` at end of stream.
    fn poll_read_some(&self, cx: &mut Context<'_>, max: usize) -> Poll<Bytes> {
        let mut st = self.shared.lock();
        if st.buf.is_empty() {
            if st.writer_closed {
                return Poll::Ready(Bytes::new());
            }
            st.reader_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = max.min(st.buf.len());
        let out: Vec<u8> = st.buf.drain(..n).collect();
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
        Poll::Ready(Bytes::from(out))
    }

    fn poll_read_into(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<usize> {
        let mut st = self.shared.lock();
        if st.buf.is_empty() {
            if st.writer_closed || out.is_empty() {
                return Poll::Ready(0);
            }
            st.reader_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = out.len().min(st.buf.len());
        let (a, b) = st.buf.as_slices();
        let from_a = n.min(a.len());
        out[..from_a].copy_from_slice(&a[..from_a]);
        if from_a < n {
            out[from_a..n].copy_from_slice(&b[..n - from_a]);
        }
        st.buf.drain(..n);
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
        Poll::Ready(n)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.shared.lock();
        if !st.buf.is_empty() || st.writer_closed {
            return Poll::Ready(());
        }
        st.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Non-blocking read for the guest side: `Ok(None)` when nothing is buffered yet.
    fn try_read(&self, max: usize) -> Result<Option<Bytes>, ()> {
        let mut st = self.shared.lock();
        if st.buf.is_empty() {
            return if st.writer_closed { Err(()) } else { Ok(None) };
        }
        let n = max.min(st.buf.len());
        let out: Vec<u8> = st.buf.drain(..n).collect();
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
        Ok(Some(Bytes::from(out)))
    }

    /// Reads up to `max` bytes, waiting for data; empty means end of stream.
    pub async fn read(&self, max: usize) -> Bytes {
        std::future::poll_fn(|cx| self.poll_read_some(cx, max)).await
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.reader_closed = true;
        st.buf.clear();
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
    }
}

// ---- host side: futures-io, for capnp-rpc -----------------------------------

impl futures::io::AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_into(cx, buf).map(Ok)
    }
}

impl futures::io::AsyncWrite for PipeWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_some(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(self.poll_read_into(cx, buf.initialize_unfilled()));
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for PipeWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_some(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

// ---- guest side: WASI streams -----------------------------------------------

/// A guest's stdin backed by a pipe. Every stream the guest opens on stdin
/// shares the same pipe (WASI requires that).
pub struct GuestStdin(Arc<PipeReader>);

/// A guest's stdout backed by a pipe.
pub struct GuestStdout(Arc<PipeWriter>);

impl GuestStdin {
    pub fn new(reader: PipeReader) -> Self {
        Self(Arc::new(reader))
    }
}

impl GuestStdout {
    pub fn new(writer: PipeWriter) -> Self {
        Self(Arc::new(writer))
    }
}

impl IsTerminal for GuestStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}
impl IsTerminal for GuestStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for GuestStdin {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(SharedReader(self.0.clone()))
    }
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(SharedReader(self.0.clone()))
    }
}

impl StdoutStream for GuestStdout {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(SharedWriter(self.0.clone()))
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(SharedWriter(self.0.clone()))
    }
}

struct SharedReader(Arc<PipeReader>);
struct SharedWriter(Arc<PipeWriter>);

impl tokio::io::AsyncRead for SharedReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(self.0.poll_read_into(cx, buf.initialize_unfilled()));
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for SharedWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.poll_write_some(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl Pollable for SharedReader {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.0.poll_readable(cx)).await
    }
}

impl InputStream for SharedReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.0.try_read(size) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Ok(Bytes::new()),
            Err(()) => Err(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for SharedWriter {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.0.poll_writable(cx)).await
    }
}

#[async_trait::async_trait]
impl OutputStream for SharedWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let free = self.0.free_space().map_err(|()| StreamError::Closed)?;
        if bytes.len() > free {
            // The guest wrote more than check-write allowed: a guest bug.
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes exceeds the check-write budget of {free}",
                bytes.len()
            )));
        }
        let mut st = self.0.shared.lock();
        st.buf.extend(&bytes[..]);
        if let Some(w) = st.reader_waker.take() {
            w.wake();
        }
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        // Bytes are visible to the reader as soon as they are written.
        self.0.free_space().map(|_| ()).map_err(|()| StreamError::Closed)
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        self.0.free_space().map_err(|()| StreamError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_flow_and_eof() {
        let (w, mut r) = pipe(8);
        let writer = tokio::spawn(async move {
            w.write_all(b"hello, pipe world").await.unwrap();
            // dropped: EOF
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        assert_eq!(out, b"hello, pipe world");
    }

    #[tokio::test]
    async fn guest_side_respects_capacity_and_readiness() {
        let (w, r) = pipe(4);
        let mut out = SharedWriter(Arc::new(w));
        assert_eq!(out.check_write().unwrap(), 4);
        out.write(Bytes::from_static(b"abcd")).unwrap();
        assert_eq!(out.check_write().unwrap(), 0);
        assert!(out.write(Bytes::from_static(b"e")).is_err(), "over budget must trap");
        let got = r.read(2).await;
        assert_eq!(&got[..], b"ab");
        assert_eq!(out.check_write().unwrap(), 2);
        drop(r);
        assert!(matches!(out.check_write(), Err(StreamError::Closed)));
    }

    #[tokio::test]
    async fn guest_reader_sees_empty_then_data_then_closed() {
        let (w, r) = pipe(16);
        let mut input = SharedReader(Arc::new(r));
        assert!(input.read(10).unwrap().is_empty());
        w.write_all(b"xy").await.unwrap();
        input.ready().await;
        assert_eq!(&input.read(10).unwrap()[..], b"xy");
        drop(w);
        input.ready().await;
        assert!(matches!(input.read(10), Err(StreamError::Closed)));
    }
}
