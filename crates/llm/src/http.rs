//! HTTP plumbing shared by the providers: the response body with its idle and total time
//! limits and a size cap, error bodies, `retry-after`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;
use tokio::time::{Instant, Sleep};

use crate::error::one_line;

/// A streamed answer larger than this is cut off with an error: it bounds the memory a
/// broken or hostile server can make the gateway use (a text answer is kilobytes, tool
/// arguments rarely more than a few megabytes).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// An error body larger than this is truncated (only its message is kept anyway).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Why the body stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// No bytes for the idle limit.
    Idle,
    /// The request's total time limit passed.
    Deadline,
    /// More than [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// The connection failed.
    Transport(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Idle => f.write_str("idle timeout"),
            BodyError::Deadline => f.write_str("request timeout"),
            BodyError::TooLarge => {
                write!(f, "the answer exceeded {} MiB", MAX_RESPONSE_BYTES >> 20)
            }
            BodyError::Transport(e) => f.write_str(e),
        }
    }
}

/// The time limits of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub idle: Duration,
    pub deadline: Option<Instant>,
}

impl Limits {
    /// When waiting that starts now must end, and which limit ends it.
    pub(crate) fn next_expiry(&self) -> (Instant, BodyError) {
        let idle_at = Instant::now() + self.idle;
        match self.deadline {
            Some(deadline) if deadline <= idle_at => (deadline, BodyError::Deadline),
            _ => (idle_at, BodyError::Idle),
        }
    }
}

/// A response body as a stream of chunks that fails with [`BodyError::Idle`] when no
/// chunk arrives for the idle limit, with [`BodyError::Deadline`] at the request deadline,
/// and with [`BodyError::TooLarge`] past [`MAX_RESPONSE_BYTES`]. Ends after an error.
pub(crate) struct Body {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    timer_error: BodyError,
    received: usize,
    done: bool,
}

impl Body {
    pub(crate) fn new(response: reqwest::Response, limits: Limits) -> Body {
        let (at, timer_error) = limits.next_expiry();
        Body {
            inner: Box::pin(response.bytes_stream()),
            limits,
            timer: Box::pin(tokio::time::sleep_until(at)),
            timer_error,
            received: 0,
            done: false,
        }
    }

    fn rearm(&mut self) {
        let (at, error) = self.limits.next_expiry();
        self.timer.as_mut().reset(at);
        self.timer_error = error;
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len();
                if self.received > MAX_RESPONSE_BYTES {
                    self.done = true;
                    return Poll::Ready(Some(Err(BodyError::TooLarge)));
                }
                self.rearm();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(BodyError::Transport(transport_detail(e)))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(self.timer_error.clone())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// A reqwest error as one line, with its causes (reqwest's own text is often just "error
/// sending request"), without the URL (messages show it once, through [`shown_url`]).
pub(crate) fn transport_detail(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `url` as shown in messages: without user name, password or query, which may hold
/// credentials.
pub(crate) fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// Reads an error response's body (at most [`MAX_ERROR_BODY_BYTES`], within `limits`) and
/// extracts the provider's message: `error.message` (OpenAI, Anthropic), `error` (Ollama),
/// `message` or `detail`, else the text itself. `secret` is scrubbed from it.
pub(crate) async fn error_message(
    response: reqwest::Response,
    limits: Limits,
    secret: Option<&str>,
) -> String {
    use futures_util::StreamExt;
    let mut body = Body::new(response, limits);
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= MAX_ERROR_BODY_BYTES {
            bytes.truncate(MAX_ERROR_BODY_BYTES);
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let message = provider_message(&text).unwrap_or_else(|| text.trim().to_owned());
    let message = if message.is_empty() {
        "(empty response body)".to_owned()
    } else {
        one_line(&message, 400)
    };
    scrub(&message, secret)
}

/// The message inside a provider's JSON error document.
pub(crate) fn provider_message(text: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    let error = doc.get("error");
    error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .or_else(|| error.and_then(|e| e.as_str()))
        .or_else(|| doc.get("message").and_then(|m| m.as_str()))
        .or_else(|| doc.get("detail").and_then(|m| m.as_str()))
        .map(str::to_owned)
}

/// `text` with every occurrence of `secret` replaced by `***`.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_owned(),
    }
}

/// The delay a response asks for: `retry-after-ms` (OpenAI), else `retry-after` in
/// seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(value)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as seconds since the Unix epoch.
fn parse_http_date(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("soon"), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn provider_messages() {
        assert_eq!(
            provider_message(
                r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#
            )
            .as_deref(),
            Some("Incorrect API key")
        );
        assert_eq!(
            provider_message(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            )
            .as_deref(),
            Some("Overloaded")
        );
        assert_eq!(
            provider_message(r#"{"error":"model \"x\" not found, try pulling it first"}"#)
                .as_deref(),
            Some("model \"x\" not found, try pulling it first")
        );
        assert_eq!(provider_message("<html>Bad Gateway</html>"), None);
        assert_eq!(
            shown_url("https://u:p@host.example/v1/messages?key=k"),
            "https://host.example/v1/messages"
        );
        assert_eq!(
            scrub("bad key sk-123 given", Some("sk-123")),
            "bad key *** given"
        );
    }
}
