//! Browser tests of the dashboard: headless Chromium driven over WebDriver
//! (chromedriver), against a sandbox gateway whose sessions link with the
//! in-process wasim simulator through the real whatsapp-rust client.
//! Every wait is on a condition with a timeout; nothing sleeps to
//! synchronise. Each test leaves screenshots in `target/screenshots/`.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod access;
mod chats;
mod forms;
mod groups;
mod linking;
mod messages;
#[path = "../support/tools.rs"]
mod tools;
mod webhooks;
