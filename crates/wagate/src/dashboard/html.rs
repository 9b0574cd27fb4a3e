//! HTML building: escaping, and the page frame every dashboard page shares.
//! Pages are plain Rust functions returning [`Html`] strings; nothing here
//! needs a template engine, and every interpolated value goes through
//! [`esc`].

use std::fmt::Write;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::auth::CurrentUser;

/// Escapes text for an HTML text node or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Finished HTML, sent with headers that keep pages out of shared caches
/// and scripts limited to our own file.
pub struct Html(pub String);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        (
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                // Pages show per-user data and one-time secrets.
                (CACHE_CONTROL, "no-store"),
                (
                    CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                     form-action 'self'; base-uri 'none'",
                ),
            ],
            self.0,
        )
            .into_response()
    }
}

/// Which top-level tab is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Sessions,
    Tokens,
    Members,
    None,
}

/// Everything the frame needs besides the body.
pub struct Frame<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub user: Option<&'a CurrentUser>,
    pub sandbox: bool,
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(user: &CurrentUser) -> String {
    format!(
        r#"<input type="hidden" name="_csrf" value="{}">"#,
        esc(user.csrf())
    )
}

/// A one-button form posting to `action`, optionally asking first.
pub fn button_form(
    user: &CurrentUser,
    action: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> String {
    let confirm = confirm
        .map(|c| format!(r#" data-confirm="{}""#, esc(c)))
        .unwrap_or_default();
    format!(
        r#"<form method="post" action="{action}" class="inline"{confirm}>{csrf}<button type="submit" class="{class}">{label}</button></form>"#,
        action = esc(action),
        csrf = csrf_field(user),
        class = esc(class),
        label = esc(label),
    )
}

/// A form field's error message, rendered next to it.
pub fn field_error(error: Option<&str>, id: &str) -> String {
    error
        .map(|e| {
            format!(
                r#"<p class="field-error" id="{id}-error" role="alert">{}</p>"#,
                esc(e)
            )
        })
        .unwrap_or_default()
}

/// `aria-invalid` and `aria-describedby` for a field with an error.
pub fn invalid_attrs(error: Option<&str>, id: &str) -> String {
    if error.is_some() {
        format!(r#" aria-invalid="true" aria-describedby="{id}-error""#)
    } else {
        String::new()
    }
}

pub fn page(frame: &Frame<'_>, body: &str) -> Html {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · wagate</title>
<link rel="stylesheet" href="/assets/app.css">
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<script src="/assets/app.js" defer></script>
</head>
<body>
"#,
        title = esc(frame.title)
    );
    if frame.sandbox {
        out.push_str(
            r#"<div class="sandbox-banner" role="status"><strong>Sandbox</strong> — every session talks to a built-in WhatsApp simulator. No real phone or account is involved, and nothing here is kept after the gateway stops.</div>
"#,
        );
    }
    out.push_str(r#"<header class="topbar"><div class="topbar-inner">"#);
    out.push_str(
        r#"<a class="brand" href="/sessions"><img src="/assets/icon.svg" width="22" height="22" alt=""><span>wagate</span></a>"#,
    );
    if let Some(user) = frame.user {
        out.push_str(r#"<nav class="tabs">"#);
        let tab = |out: &mut String, nav: Nav, href: &str, label: &str| {
            let current = if frame.nav == nav {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(out, r#"<a href="{href}"{current}>{label}</a>"#);
        };
        tab(&mut out, Nav::Sessions, "/sessions", "Sessions");
        if user.role().can_manage() {
            tab(&mut out, Nav::Tokens, "/tokens", "API tokens");
            tab(&mut out, Nav::Members, "/members", "Members");
        }
        out.push_str("</nav>");
        out.push_str(r#"<div class="account">"#);
        out.push_str(r#"<span class="live-indicator" data-live-indicator hidden>Live</span>"#);
        if user.memberships().len() > 1 {
            let _ = write!(
                out,
                r#"<form method="post" action="/org" class="org-switch">{}<label class="visually-hidden" for="org-select">Organization</label><select id="org-select" name="org_id" data-autosubmit>"#,
                csrf_field(user)
            );
            for membership in user.memberships() {
                let selected = if membership.org.id == user.org().id {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    r#"<option value="{}"{selected}>{}</option>"#,
                    membership.org.id,
                    esc(&membership.org.name)
                );
            }
            out.push_str(r#"</select><noscript><button type="submit" class="button small">Switch</button></noscript></form>"#);
        } else {
            let _ = write!(
                out,
                r#"<span class="org-name" title="Organization">{}</span>"#,
                esc(&user.org().name)
            );
        }
        let _ = write!(
            out,
            r#"<span class="user-email" title="Signed in as {email} ({role})">{email}</span>{signout}"#,
            email = esc(user.email()),
            role = user.role(),
            signout = button_form(user, "/logout", "Sign out", "button ghost small", None),
        );
        out.push_str("</div>");
    }
    out.push_str("</div></header>\n<main class=\"container\">\n");
    out.push_str(body);
    out.push_str("\n</main>\n</body>\n</html>\n");
    Html(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
