//! The cross-built Windows agent and its MSI, shared by the MSI test (tables read back
//! with msitools) and the Wine test (installed and run).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// `target/x86_64-pc-windows-gnu/debug/veille-agent.exe` next to this test's target dir.
pub fn windows_exe() -> PathBuf {
    let test_exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/windows_msi-… → target/
    let target = test_exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(Path::parent)
        .expect("test runs from target/<profile>/deps");
    let exe = target.join("x86_64-pc-windows-gnu/debug/veille-agent.exe");
    assert!(
        exe.is_file(),
        "{} is missing: cross-build the Windows agent first \
         (`rustup target add x86_64-pc-windows-gnu`, `apt-get install gcc-mingw-w64-x86-64`, \
         `cargo build -p veille-agent --target x86_64-pc-windows-gnu`)",
        exe.display()
    );
    exe
}

/// Runs `cmd`, fails the test with its stderr unless it succeeds; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): apt-get install wixl msitools"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `deploy/windows/build-msi.sh exe out`: each build is a new product (ProductCode) of
/// the same upgrade family.
pub fn build_msi(exe: &Path, out: &Path) {
    build_msi_version(exe, out, None);
}

/// [`build_msi`] with the MSI's version set to `version` (`x.y.z`) rather than the
/// workspace's, as a later release's package would have.
pub fn build_msi_version(exe: &Path, out: &Path, version: Option<&str>) {
    let mut cmd = Command::new(workspace().join("deploy/windows/build-msi.sh"));
    cmd.arg(exe).arg(out);
    if let Some(v) = version {
        cmd.env("VERSION", v);
    }
    run(&mut cmd);
}

/// The workspace version with its last number one higher (`0.1.0` → `0.1.1`): the
/// version of a next release's MSI.
pub fn next_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let numeric = version.split(['-', '+']).next().unwrap_or(version);
    let (head, last) = numeric.rsplit_once('.').expect("an x.y.z version");
    let last: u32 = last.parse().expect("a numeric version");
    format!("{head}.{}", last + 1)
}
