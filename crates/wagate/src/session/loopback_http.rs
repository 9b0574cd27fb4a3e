//! Media over plain http to a local simulator. whatsapp-rust builds every
//! media URL with `https://`; a `simulator` build talks only to a server on
//! a loopback address, which serves http, so media requests to a loopback
//! host go out as `http://`. Anything else is left as it is.

use async_trait::async_trait;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient};

pub(super) struct LoopbackHttp {
    inner: UreqHttpClient,
}

impl LoopbackHttp {
    pub(super) fn new() -> Self {
        Self {
            inner: UreqHttpClient::new(),
        }
    }
}

/// `https://127.0.0.1…` (or `localhost`, `[::1]`) as `http://…`; a host
/// that only starts like one (`127.0.0.1.example.com`) is not rewritten.
fn plain_http(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    ["127.0.0.1", "localhost", "[::1]"].iter().find_map(|host| {
        let after = rest.strip_prefix(host)?;
        (after.is_empty() || after.starts_with([':', '/', '?'])).then(|| format!("http://{rest}"))
    })
}

#[async_trait]
impl HttpClient for LoopbackHttp {
    async fn execute(&self, mut request: HttpRequest) -> anyhow::Result<HttpResponse> {
        if let Some(url) = plain_http(&request.url) {
            request.url = url;
        }
        self.inner.execute(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::plain_http;

    #[test]
    fn only_loopback_hosts_go_out_as_plain_http() {
        assert_eq!(
            plain_http("https://127.0.0.1:9400/mms/image/x?auth=y").as_deref(),
            Some("http://127.0.0.1:9400/mms/image/x?auth=y")
        );
        assert_eq!(
            plain_http("https://localhost/v/x").as_deref(),
            Some("http://localhost/v/x")
        );
        assert_eq!(plain_http("https://127.0.0.1.example.com/x"), None);
        assert_eq!(plain_http("https://mmg.whatsapp.net/x"), None);
    }
}
