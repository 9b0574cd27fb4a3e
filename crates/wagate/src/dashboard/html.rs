//! The page frame every dashboard page shares and the form pieces they
//! reuse, written with `maud`: every value spliced into markup is escaped
//! unless it is explicitly wrapped in `PreEscaped`, so text from a stranger
//! (a WhatsApp message, a push name) cannot become markup by omission. A
//! response can only be built from [`Markup`], never from a string.

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::auth::CurrentUser;
use crate::app::AppState;

/// Finished HTML, sent with headers that keep pages out of shared caches
/// and scripts limited to our own file.
pub(crate) struct Html(Markup);

impl From<Markup> for Html {
    fn from(markup: Markup) -> Self {
        Self(markup)
    }
}

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
            self.0.into_string(),
        )
            .into_response()
    }
}

/// Which top-level tab is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Sessions,
    Webhooks,
    Tokens,
    Members,
    None,
}

/// Everything the frame needs besides the body.
pub(crate) struct Frame<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub user: Option<&'a CurrentUser>,
    pub sandbox: bool,
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(user: &CurrentUser) -> Markup {
    html! { input type="hidden" name="_csrf" value=(user.csrf()); }
}

/// A one-button form posting to `action`, optionally asking first.
pub(crate) fn button_form(
    user: &CurrentUser,
    action: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form method="post" action=(action) class="inline" data-confirm=[confirm] {
            (csrf_field(user))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A form field's error message, rendered next to it; the field itself
/// points at it with `aria-describedby="{id}-error"`.
pub(crate) fn field_error(error: Option<&str>, id: &str) -> Markup {
    html! {
        @if let Some(error) = error {
            p.field-error id={ (id) "-error" } role="alert" { (error) }
        }
    }
}

/// `aria-describedby` for a field with an error (its `aria-invalid` is
/// `error.map(|_| "true")`).
pub(crate) fn described_by(error: Option<&str>, id: &str) -> Option<String> {
    error.map(|_| format!("{id}-error"))
}

/// A labelled one-line input of a create form (`div.field.grow`), its
/// error tied to it.
pub(crate) struct TextField<'a> {
    pub label: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    /// The input's `type`: `text`, `email`, `url`.
    pub kind: &'a str,
    pub placeholder: &'a str,
    pub value: &'a str,
    pub error: Option<&'a str>,
}

impl TextField<'_> {
    pub(crate) fn render(&self) -> Markup {
        html! {
            div.field.grow {
                label for=(self.id) { (self.label) }
                input id=(self.id) name=(self.name) type=(self.kind) placeholder=(self.placeholder)
                    value=(self.value)
                    aria-invalid=[self.error.map(|_| "true")]
                    aria-describedby=[described_by(self.error, self.id)];
                (field_error(self.error, self.id))
            }
        }
    }
}

fn tabs(frame: &Frame<'_>, user: &CurrentUser) -> Markup {
    let tab = |nav: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(frame.nav == nav).then_some("page")] { (label) }
        }
    };
    html! {
        nav.tabs {
            (tab(Nav::Sessions, "/sessions", "Sessions"))
            @if user.role().can_manage() {
                (tab(Nav::Webhooks, "/webhooks", "Webhooks"))
                (tab(Nav::Tokens, "/tokens", "API tokens"))
                (tab(Nav::Members, "/members", "Members"))
            }
        }
    }
}

fn account(user: &CurrentUser) -> Markup {
    html! {
        div.account {
            span.live-indicator data-live-indicator hidden { "Live" }
            @if user.memberships().len() > 1 {
                form.org-switch method="post" action="/org" {
                    (csrf_field(user))
                    label.visually-hidden for="org-select" { "Organization" }
                    select #org-select name="org_id" data-autosubmit {
                        @for membership in user.memberships() {
                            option value=(membership.org.id)
                                selected[membership.org.id == user.org().id] {
                                (membership.org.name)
                            }
                        }
                    }
                    noscript { button.button.small type="submit" { "Switch" } }
                }
            } @else {
                span.org-name title="Organization" { (user.org().name) }
            }
            span.user-email title={ "Signed in as " (user.email()) " (" (user.role()) ")" } {
                (user.email())
            }
            (button_form(user, "/logout", "Sign out", "button ghost small", None))
        }
    }
}

pub(crate) fn page(frame: &Frame<'_>, body: Markup) -> Html {
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · wagate" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                @if frame.sandbox {
                    div.sandbox-banner role="status" {
                        strong { "Sandbox" }
                        " — every session talks to a built-in WhatsApp simulator. No real phone or account is involved, and nothing here is kept after the gateway stops."
                    }
                }
                header.topbar {
                    div.topbar-inner {
                        a.brand href="/sessions" {
                            img src="/assets/icon.svg" width="22" height="22" alt="";
                            span { "wagate" }
                        }
                        @if let Some(user) = frame.user {
                            (tabs(frame, user))
                            (account(user))
                        }
                    }
                }
                main.container { (body) }
            }
        }
    })
}

/// A signed-in user's page, answered with `status`.
pub(crate) fn user_page(
    state: &AppState,
    user: &CurrentUser,
    title: &str,
    nav: Nav,
    status: StatusCode,
    body: Markup,
) -> Response {
    let frame = Frame {
        title,
        nav,
        user: Some(user),
        sandbox: state.dashboard.is_sandbox(),
    };
    (status, page(&frame, body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_text_is_escaped_in_text_and_attributes() {
        let hostile = r#"<script>alert("x")</script> & 'y'"#;
        let markup = html! { p title=(hostile) { (hostile) } }.into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"), "{markup}");
        assert!(markup.contains("&quot;x&quot;"), "{markup}");
        assert!(markup.contains("&amp;"), "{markup}");
    }

    #[test]
    fn a_field_error_is_tied_to_its_field() {
        let markup = field_error(Some("Too <long>"), "label").into_string();
        assert_eq!(
            markup,
            r#"<p class="field-error" id="label-error" role="alert">Too &lt;long&gt;</p>"#
        );
        assert!(field_error(None, "label").into_string().is_empty());
        assert_eq!(
            described_by(Some("x"), "label").as_deref(),
            Some("label-error")
        );
    }
}
