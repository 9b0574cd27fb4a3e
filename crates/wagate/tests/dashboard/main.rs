//! Browser tests of the dashboard: headless Chromium driven over WebDriver
//! (chromedriver), against a sandbox gateway whose sessions link with the
//! in-process wasim simulator through the real whatsapp-rust client.
//! Every wait is on a condition with a timeout; nothing sleeps to
//! synchronise. Each test leaves screenshots in `target/screenshots/`.

mod helpers;

mod access;
mod forms;
mod linking;
mod messages;
#[path = "../support/tools.rs"]
mod tools;
mod webhooks;
