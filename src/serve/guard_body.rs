//! Request bodies at the guard: reading one within a limit, and answering a refusal only
//! after reading and discarding (within [`DRAIN_CAP`] bytes and [`DRAIN_TIME`]) what the
//! client is still sending, so it reads the answer rather than a reset connection.
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::declared_length;
use crate::serve::{answer, d1};

/// How much of a refused request's body is read and discarded before answering, so the
/// client reads the answer rather than a connection reset.
const DRAIN_CAP: usize = 8 << 20;
/// How long a refused request's body may take to drain.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A refusal in the D1 envelope, after reading and discarding what the client is sending
/// (bounded), so that it reads this answer rather than a reset connection.
pub(super) async fn refuse(
    body: Body,
    headers: &HeaderMap,
    status: StatusCode,
    code: u32,
    message: &str,
) -> Response {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects_continue && declared_length(headers).is_none_or(|n| n <= DRAIN_CAP) {
        drain(body, 0).await;
    }
    closing(answer(status, d1::failure(code, message)))
}

pub(super) fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub(super) enum BodyRead {
    Whole(Bytes),
    TooLarge,
    Broken(String),
}

async fn next_data(body: &mut Body) -> Option<Result<Option<Bytes>, axum::Error>> {
    let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|f| f.into_data().ok()))
}

/// The body, or `TooLarge` (the rest drained) once it passes `limit`.
pub(super) async fn read_limited(mut body: Body, limit: usize) -> BodyRead {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match next_data(&mut body).await {
            None => return BodyRead::Whole(Bytes::from(buf)),
            Some(Err(e)) => return BodyRead::Broken(e.to_string()),
            Some(Ok(None)) => {}
            Some(Ok(Some(data))) => {
                if buf.len() + data.len() > limit {
                    drain(body, buf.len() + data.len()).await;
                    return BodyRead::TooLarge;
                }
                buf.extend_from_slice(&data);
            }
        }
    }
}

/// Reads and discards the rest of a body, up to [`DRAIN_CAP`] bytes in all and
/// [`DRAIN_TIME`].
async fn drain(mut body: Body, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_CAP {
            match next_data(&mut body).await {
                Some(Ok(data)) => seen += data.map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}
