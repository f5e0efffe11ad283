//! Real outcalls: one node's request over rustls (webpki roots) — or, for
//! a flexible outcall, one per committee node, made at once — with the
//! IC's behaviour: no redirects followed, a `user-agent: ic/1.0` unless the
//! canister sends one, a timeout (30 s as the IC's adapter), the response
//! read only up to the request's limit. Only hosts on the allow list are
//! reached (`--allow-outcalls HOST`, `*` for any); others are refused with
//! the IC's error for an unreachable host, naming the flag. `http://` URLs
//! are accepted for allowed hosts, as a local replica accepts them.

use std::time::{Duration, Instant};

use super::{Adapter, Method, Replication, Reported, Request, Response, check_size, node_reject};
use crate::replica::RejectCode;

/// The hosts outcalls may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    any: bool,
    hosts: Vec<String>,
}

impl AllowList {
    /// From `--allow-outcalls` values: host names (any port), `host:port`,
    /// or `*` for every host.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let any = entries.iter().any(|e| e.as_ref() == "*");
        let hosts = entries.iter().map(|e| e.as_ref().trim().to_ascii_lowercase()).filter(|e| e != "*" && !e.is_empty()).collect();
        Self { any, hosts }
    }

    /// Every host.
    pub fn any() -> Self {
        Self { any: true, hosts: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.hosts.is_empty()
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.any
            || self.hosts.iter().any(|h| match h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()) {
                Some((name, p)) => name.trim_start_matches('[').trim_end_matches(']') == host && Some(p.parse::<u16>().ok()).flatten() == port,
                None => *h == host,
            })
    }
}

/// Makes real requests to allowed hosts.
#[derive(Clone)]
pub struct LiveAdapter {
    client: reqwest::Client,
    allow: AllowList,
    timeout: Duration,
}

/// The IC adapter's timeout for the remote server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl LiveAdapter {
    pub fn new(allow: AllowList, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .no_proxy()
            .build()?;
        Ok(Self { client, allow, timeout })
    }

    async fn fetch(&self, request: &Request) -> Result<(Response, u64), crate::replica::Reject> {
        let url = reqwest::Url::parse(&request.url).map_err(|e| node_reject(RejectCode::SysFatal, format!("Invalid URL {}: {e}", request.url)))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(node_reject(RejectCode::SysFatal, format!("Invalid URL {}: the scheme must be https", request.url)));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        if !self.allow.allows(&host, url.port_or_known_default()) {
            return Err(node_reject(
                RejectCode::SysTransient,
                format!("Connecting to {host} failed: ww makes outcalls only to hosts named with --allow-outcalls (this node does not allow {host})"),
            ));
        }
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut builder = self.client.request(method, url);
        if !request.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("user-agent")) {
            builder = builder.header("user-agent", "ic/1.0");
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !request.body.is_empty() || request.method == Method::Post {
            builder = builder.body(request.body.clone());
        }
        let started = Instant::now();
        let deadline = started + self.timeout;
        let timed_out = || node_reject(RejectCode::SysFatal, "Timeout expired");
        let mut response = match tokio::time::timeout_at(deadline.into(), builder.send()).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
            Ok(Err(e)) => return Err(node_reject(RejectCode::SysTransient, format!("Connecting to {host} failed: {}", one_line(&e)))),
            Ok(Ok(r)) => r,
        };
        let headers: Vec<(String, String)> =
            response.headers().iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        let mut got = Response { status: response.status().as_u16(), headers, body: Vec::new() };
        check_size(&got, request.max_response_bytes)?;
        loop {
            match tokio::time::timeout_at(deadline.into(), response.chunk()).await {
                Err(_) => return Err(timed_out()),
                Ok(Err(e)) => return Err(node_reject(RejectCode::SysTransient, format!("Reading the response from {host} failed: {}", one_line(&e)))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    got.body.extend_from_slice(&chunk);
                    // Stop reading as soon as the limit is passed.
                    check_size(&got, request.max_response_bytes)?;
                }
            }
        }
        Ok((got, started.elapsed().as_millis() as u64))
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

impl Adapter for LiveAdapter {
    /// One request stands for every node of a replicated outcall (they
    /// would all get the same); a flexible outcall's committee makes one
    /// request each, as its nodes do, and each reports its own response.
    fn perform(&self, request: Request) -> super::Pending {
        let this = self.clone();
        let requests = match request.replication {
            Replication::Flexible { total_requests, .. } => total_requests.max(1) as usize,
            Replication::FullyReplicated | Replication::NonReplicated => 1,
        };
        Box::pin(async move {
            let fetched = futures::future::join_all((0..requests).map(|_| this.fetch(&request))).await;
            let roundtrip_ms = fetched.iter().filter_map(|f| f.as_ref().ok().map(|(_, ms)| *ms)).max().unwrap_or(0);
            let results = fetched.into_iter().map(|f| f.map(|(response, _)| response)).collect();
            Reported::Nodes { results, roundtrip_ms }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AllowList;

    #[test]
    fn allow_list_matches_hosts_and_ports() {
        let list = AllowList::new(&["example.org", "127.0.0.1:8080"]);
        assert!(list.allows("example.org", Some(443)));
        assert!(list.allows("EXAMPLE.org", Some(80)));
        assert!(!list.allows("evil.org", Some(443)));
        assert!(list.allows("127.0.0.1", Some(8080)));
        assert!(!list.allows("127.0.0.1", Some(8081)));
        assert!(AllowList::new(&["*"]).allows("anything", None));
        assert!(AllowList::new::<&str>(&[]).is_empty());
    }
}
