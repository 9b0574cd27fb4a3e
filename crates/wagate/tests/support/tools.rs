//! The outside tools some tests need (a browser, PyPI packages, Node),
//! each written once with how to get it, and the one rule for all of them,
//! the same as PostgreSQL's (`src/store/test_postgres.rs`): a test asks
//! [`present`] first; without its tool it prints one line, `skipped: …`,
//! naming what is missing and how to get it, and passes, so the README's
//! test command works on a machine with only the Rust toolchain. With the
//! tool's `WAGATE_REQUIRE_*` variable set to `1` (`.ci/run` sets them all
//! and installs every tool) a missing tool fails the test instead, so CI
//! skips nothing. Each suite that needs a tool includes this file as a
//! module.

// Each suite uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// Where Debian's `chromium` and `chromium-driver` packages put them.
pub(crate) const CHROMIUM_BIN: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";

/// The npm packages the contract test generates and compiles a TypeScript
/// client with (pinned in this directory's package-lock.json).
pub(crate) const NODE_CLIENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
const NODE_PACKAGES: [&str; 3] = ["openapi-typescript", "openapi-fetch", "typescript"];

/// A tool some tests cannot run without.
pub(crate) struct Tool {
    /// What it is, as the skip line names it.
    pub name: &'static str,
    /// The variable that, set to `1`, makes its absence a failure.
    pub require: &'static str,
    /// How to get it.
    pub install: &'static str,
    /// `Err(what is missing)` when it is not usable here.
    probe: fn() -> Result<(), String>,
}

/// Headless Chromium and chromedriver: the dashboard's browser tests.
pub(crate) const CHROMIUM: Tool = Tool {
    name: "Chromium and chromedriver (the dashboard's browser tests)",
    require: "WAGATE_REQUIRE_CHROMIUM",
    install: "apt-get install chromium chromium-driver",
    probe: || {
        [CHROMIUM_BIN, CHROMEDRIVER_BIN]
            .iter()
            .try_for_each(|path| file_exists(path))
    },
};

/// The Standard Webhooks project's Python package: checks the gateway's
/// webhook signatures with an implementation independent of it.
pub(crate) const STANDARD_WEBHOOKS: Tool = Tool {
    name: "the PyPI package standardwebhooks (the Python check of webhook signatures)",
    require: "WAGATE_REQUIRE_STANDARDWEBHOOKS",
    install: "python3 -m pip install standardwebhooks",
    probe: || python_imports("standardwebhooks"),
};

/// Schemathesis: fuzzes the API against its OpenAPI document.
pub(crate) const SCHEMATHESIS: Tool = Tool {
    name: "the PyPI package schemathesis (the API contract test)",
    require: "WAGATE_REQUIRE_SCHEMATHESIS",
    install: "python3 -m pip install schemathesis==4.32.5",
    probe: || python_imports("schemathesis"),
};

/// The client generators: openapi-python-client, and Node with
/// openapi-typescript, openapi-fetch and TypeScript.
pub(crate) const CLIENT_GENERATORS: Tool = Tool {
    name: "openapi-python-client and Node with the npm client generators (the generated clients test)",
    require: "WAGATE_REQUIRE_CLIENT_GENERATORS",
    install: "python3 -m pip install openapi-python-client==0.29.1; \
              npm ci --prefix crates/wagate/tests/clients",
    probe: || {
        python_imports("openapi_python_client")?;
        command_runs("node", &["--version"])?;
        NODE_PACKAGES.iter().try_for_each(|package| {
            file_exists(&format!("{NODE_CLIENTS_DIR}/node_modules/{package}"))
        })
    },
};

/// What a test does about a tool.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Run,
    /// Passes without running; the line to print.
    Skip(String),
    /// Fails; why.
    Fail(String),
}

/// The rule: a tool that is there runs; one that is missing skips, or
/// fails when required.
pub(crate) fn decide(tool: &Tool, missing: Option<String>, required: bool) -> Decision {
    match missing {
        None => Decision::Run,
        Some(what) if required => Decision::Fail(format!(
            "{}=1 but {} is missing ({what}); get it with: {}",
            tool.require, tool.name, tool.install
        )),
        Some(what) => Decision::Skip(format!(
            "skipped: no {} ({what}); get it with: {} (set {}=1 to fail instead)",
            tool.name, tool.install, tool.require
        )),
    }
}

/// Whether `tool` is required, reading variables with `var`.
pub(crate) fn required(tool: &Tool, var: impl Fn(&str) -> Option<String>) -> bool {
    var(tool.require).is_some_and(|value| value == "1")
}

/// [`present`], reading variables with `var`.
pub(crate) fn present_with(tool: &Tool, var: impl Fn(&str) -> Option<String>) -> bool {
    match decide(tool, (tool.probe)().err(), required(tool, var)) {
        Decision::Run => true,
        Decision::Skip(line) => {
            eprintln!("{line}");
            false
        }
        Decision::Fail(why) => panic!("{why}"),
    }
}

/// `true` when `tool` is here and the test should run; `false` (after
/// printing the skip line) when it is missing and the test should return
/// now. Panics when it is missing and its `WAGATE_REQUIRE_*` variable is
/// `1`.
pub(crate) fn present(tool: &Tool) -> bool {
    present_with(tool, |name| std::env::var(name).ok())
}

fn file_exists(path: &str) -> Result<(), String> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{path} not found"))
    }
}

fn command_runs(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} could not be run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        Err(format!("`{program} {}` failed: {last}", args.join(" ")))
    }
}

fn python_imports(module: &str) -> Result<(), String> {
    command_runs("python3", &["-c", &format!("import {module}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool no machine has.
    const NOWHERE: Tool = Tool {
        name: "wagate-no-such-tool",
        require: "WAGATE_REQUIRE_NO_SUCH_TOOL",
        install: "nothing installs it",
        probe: || command_runs("wagate-no-such-tool", &["--version"]),
    };

    /// Only `NOWHERE`'s variable, set to `value`.
    fn only(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == NOWHERE.require).then(|| value.to_string())
    }

    #[test]
    #[should_panic(expected = "WAGATE_REQUIRE_NO_SUCH_TOOL=1 but wagate-no-such-tool is missing")]
    fn a_required_tool_that_is_missing_fails_the_test() {
        present_with(&NOWHERE, only("1"));
    }

    #[test]
    fn a_missing_tool_nobody_requires_skips_with_one_line_saying_how_to_get_it() {
        assert!(!present_with(&NOWHERE, only("0")));
        assert!(!present_with(&NOWHERE, |_| None));
        let Decision::Skip(line) = decide(&NOWHERE, (NOWHERE.probe)().err(), false) else {
            panic!("a missing tool nobody requires is skipped");
        };
        assert!(
            line.starts_with("skipped: no wagate-no-such-tool ("),
            "{line}"
        );
        assert!(
            line.contains("wagate-no-such-tool could not be run"),
            "{line}"
        );
        assert!(line.contains("get it with: nothing installs it"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn a_tool_that_is_there_runs_required_or_not() {
        assert_eq!(decide(&NOWHERE, None, true), Decision::Run);
        assert_eq!(decide(&NOWHERE, None, false), Decision::Run);
    }
}
