//! Running the real kustomize, isolated: only the files the kustomization reaches are copied to a
//! fresh folder, the renderer runs there with an empty environment, no network (a new network
//! namespace when `unshare` allows it; no proxy either way), a time limit and an output limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which program renders kustomizations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renderer {
    /// `kustomize build DIR`
    Kustomize(PathBuf),
    /// `kubectl kustomize DIR`
    Kubectl(PathBuf),
}

/// Rendering budgets and where to look for the renderer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RenderOptions {
    /// Folders searched for `kustomize` then `kubectl`; the process's `PATH` when `None`.
    pub search_path: Option<std::ffi::OsString>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { search_path: None, timeout: Duration::from_secs(60), max_output_bytes: 32 * 1024 * 1024 }
    }
}

fn find_in(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The `kustomize` binary, else `kubectl`; `None` when neither is on the search path.
pub fn find_renderer(opts: &RenderOptions) -> Option<Renderer> {
    let path = opts.search_path.clone().or_else(|| std::env::var_os("PATH")).unwrap_or_default();
    find_in(&path, "kustomize").map(Renderer::Kustomize).or_else(|| find_in(&path, "kubectl").map(Renderer::Kubectl))
}

/// Copies `files` (canonical paths under `boundary`) to the same relative places under `to`.
pub fn copy_tree(boundary: &Path, files: &[PathBuf], to: &Path) -> std::io::Result<()> {
    for file in files {
        let Ok(rel) = file.strip_prefix(boundary) else { continue };
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(file, &dest)?;
    }
    Ok(())
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["-rn", "true"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/usr/bin/unshare").exists()
}

/// Renders the kustomization in `dir` (inside a copied tree) and returns its YAML output.
pub fn run(renderer: &Renderer, dir: &Path, home: &Path, opts: &RenderOptions) -> Result<String, String> {
    let (binary, args): (&Path, Vec<&str>) = match renderer {
        Renderer::Kustomize(b) => (b, vec!["build"]),
        Renderer::Kubectl(b) => (b, vec!["kustomize"]),
    };
    let mut cmd = if unshare_works() {
        let mut c = Command::new("/usr/bin/unshare");
        c.arg("-rn").arg("--").arg(binary);
        c
    } else {
        Command::new(binary)
    };
    cmd.args(&args)
        .arg(dir)
        .env_clear()
        .env("PATH", binary.parent().unwrap_or(Path::new("/nonexistent")))
        .env("HOME", home)
        .env("KUBECONFIG", "/dev/null")
        .env("NO_PROXY", "*")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let limit = opts.max_output_bytes;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout).take(limit as u64 + 1).read_to_end(&mut buf);
        // Drain the rest so the renderer does not block on a full pipe before it is killed.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        buf
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > opts.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the renderer: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("rendering took longer than {} s and was stopped", opts.timeout.as_secs()));
    };
    if out.len() > limit {
        return Err(format!("rendered output is over the {limit} byte limit; it was not checked"));
    }
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let tmp = dir.to_string_lossy();
        return Err(err.trim().replace(tmp.as_ref(), ".").chars().take(2000).collect());
    }
    String::from_utf8(out).map_err(|_| "rendered output is not UTF-8".to_string())
}
