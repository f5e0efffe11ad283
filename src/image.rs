//! Images: one or more layer directories merged into one FHS-style root.
//!
//! An image is a directory with these well-known parts:
//!
//! - `bin/main.wasm`: the entry component (required in the merged union only);
//! - `etc/`: configuration files;
//! - `boot/<peer-id>`: one file per bootstrap peer, named by its base58 libp2p
//!   `PeerId` and listing its multiaddrs one per line (blank lines and lines
//!   starting with `#` are ignored);
//! - `svc/<name>/`: a nested image (its own `bin/main.wasm`, `etc/`, even
//!   `svc/`), started as a service.
//!
//! [`merge_layers`] builds the per-file union of the layers (later layers
//! win, directories merge, nothing is deleted). Symlinks are never followed
//! or copied, and the readers below skip them too, so a layer cannot expose
//! host files through the image.

use std::ffi::{OsStr, OsString};
use std::fs::{self, FileType, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tempfile::TempDir;

const MAIN_WASM: &str = "bin/main.wasm";

/// Why an image could not be merged or read. Each message is one line that
/// names the offending path and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image layers given")]
    NoLayers,
    #[error("layer {}: no such directory", .0.display())]
    LayerNotFound(PathBuf),
    #[error("layer {}: is not a directory", .0.display())]
    LayerNotDirectory(PathBuf),
    /// `root` is the merged root (already removed again if it was temporary).
    #[error("image {}: bin/main.wasm is missing", join_paths(layers))]
    MissingMain { root: PathBuf, layers: Vec<PathBuf> },
    #[error("service image {}: bin/main.wasm is missing", .0.display())]
    MissingServiceMain(PathBuf),
    #[error("service {}: name must be UTF-8 and not start with '.'", .0.display())]
    BadServiceName(PathBuf),
    #[error("{}: is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("{}: not a valid peer id: {reason}", path.display())]
    BadPeerId { path: PathBuf, reason: String },
    #[error("{}:{line}: not a valid multiaddr: {reason}", path.display())]
    BadMultiaddr {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: lists no addresses", .0.display())]
    NoBootAddrs(PathBuf),
    #[error("{}:{line}: not a valid peer id: {reason}", path.display())]
    BadTrustedPeer { path: PathBuf, line: usize, reason: String },
    #[error("{}: {reason}", path.display())]
    BadCanisterRange { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" + ")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { path, source }
}

/// The merged root of an image. A temporary merge directory, if any, is
/// removed when this value is dropped.
#[derive(Debug)]
pub struct MergedImage {
    root: PathBuf,
    layers: Vec<PathBuf>,
    merged: Option<TempDir>,
}

/// A service image found under `svc/<name>` (or opened with [`open_service`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImage {
    pub name: String,
    pub root: PathBuf,
}

/// A bootstrap peer read from `boot/<peer-id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPeer {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Merge `layers` (lowest first) into one image root. A single layer is used
/// in place; several are copied into a temporary directory.
pub fn merge_layers(layers: &[PathBuf]) -> Result<MergedImage, ImageError> {
    for layer in layers {
        match fs::metadata(layer) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ImageError::LayerNotDirectory(layer.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::LayerNotFound(layer.clone()));
            }
            Err(e) => return Err(io_err(layer)(e)),
        }
    }
    let (root, merged) = match layers {
        [] => return Err(ImageError::NoLayers),
        [only] => (only.clone(), None),
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("ww-image-")
                .tempdir()
                .map_err(io_err(&std::env::temp_dir()))?;
            for layer in layers {
                overlay(layer, dir.path())?;
            }
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let layers = layers.to_vec();
    if !has_main(&root)? {
        return Err(ImageError::MissingMain { root, layers });
    }
    Ok(MergedImage {
        root,
        layers,
        merged,
    })
}

/// Open a directory that is already a single image (used for services):
/// checks that it holds a regular file `bin/main.wasm`.
pub fn open_service(name: &str, root: &Path) -> Result<ServiceImage, ImageError> {
    let name = plain_name(name.into()).ok_or_else(|| ImageError::BadServiceName(root.into()))?;
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(ImageError::NotADirectory(root.into())),
        Err(e) => return Err(io_err(root)(e)),
    }
    if !has_main(root)? {
        return Err(ImageError::MissingServiceMain(root.into()));
    }
    let root = root.to_path_buf();
    Ok(ServiceImage { name, root })
}

impl MergedImage {
    /// The merged root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/bin/main.wasm`.
    pub fn main_wasm(&self) -> PathBuf {
        self.root.join(MAIN_WASM)
    }

    /// The images under `svc/`, sorted by name.
    pub fn services(&self) -> Result<Vec<ServiceImage>, ImageError> {
        list_services(&self.root, &|p| self.origin(p))
    }

    /// The peers listed under `boot/`, sorted by file name.
    pub fn boot_peers(&self) -> Result<Vec<BootPeer>, ImageError> {
        let origin = |p: &Path| self.origin(p);
        let mut peers = Vec::new();
        for (name, path, ty) in entries(&self.root, "boot", &origin)? {
            if !ty.is_file() {
                return Err(ImageError::NotAFile(origin(&path)));
            }
            let text = fs::read_to_string(&path).map_err(io_err(&origin(&path)))?;
            peers.push(parse_boot_peer(&origin(&path), &name, &text)?);
        }
        Ok(peers)
    }

    /// The peers `etc/peers` trusts besides the boot peers: one peer id per
    /// line (`#` starts a comment). None when the file is missing.
    pub fn trusted_peers(&self) -> Result<Vec<PeerId>, ImageError> {
        let path = self.root.join("etc/peers");
        let Some(text) = read_optional(&path, &self.origin(&path))? else { return Ok(Vec::new()) };
        let mut peers = Vec::new();
        for (line, text) in (1..).zip(text.lines().map(str::trim)) {
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let peer = text.parse().map_err(|e: libp2p::identity::ParseError| ImageError::BadTrustedPeer {
                path: self.origin(&path),
                line,
                reason: e.to_string(),
            })?;
            peers.push(peer);
        }
        Ok(peers)
    }

    /// The canister ids the node hosts when networked, from
    /// `etc/canister-range` (`START-END`, canister indexes); `None` when
    /// the file is missing.
    pub fn canister_range(&self) -> Result<Option<std::ops::RangeInclusive<u64>>, ImageError> {
        let path = self.root.join("etc/canister-range");
        let Some(text) = read_optional(&path, &self.origin(&path))? else { return Ok(None) };
        crate::net::routing::parse_range(&text)
            .map(Some)
            .map_err(|reason| ImageError::BadCanisterRange { path: self.origin(&path), reason })
    }

    /// Where a path under the merged root came from, for error messages: the
    /// last layer that holds it. Paths in the temporary merge directory would
    /// mean nothing to the user (and are gone once the image is dropped).
    fn origin(&self, path: &Path) -> PathBuf {
        let (Some(_), Ok(rel)) = (&self.merged, path.strip_prefix(&self.root)) else {
            return path.to_path_buf();
        };
        let mut layers = self.layers.iter().rev();
        let layer = layers.find(|l| matches!(lstat_beneath(l, rel), Ok(Some(_))));
        layer.map_or_else(|| path.to_path_buf(), |l| l.join(rel))
    }
}

impl ServiceImage {
    /// `root/bin/main.wasm`.
    pub fn main_wasm(&self) -> PathBuf {
        self.root.join(MAIN_WASM)
    }

    /// The images nested under this service's own `svc/`, sorted by name.
    pub fn services(&self) -> Result<Vec<ServiceImage>, ImageError> {
        list_services(&self.root, &Path::to_path_buf)
    }
}

/// Copy the regular files and directories of `src` over `dst`, replacing any
/// entry of a different kind; symlinks and special files are skipped.
fn overlay(src: &Path, dst: &Path) -> Result<(), ImageError> {
    for entry in fs::read_dir(src).map_err(io_err(src))? {
        let entry = entry.map_err(io_err(src))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ty = entry.file_type().map_err(io_err(&from))?;
        if ty.is_dir() {
            if !fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                remove_entry(&to)?;
                fs::create_dir(&to).map_err(io_err(&to))?;
            }
            overlay(&from, &to)?;
        } else if ty.is_file() {
            // Remove first: fs::copy cannot overwrite a read-only file copied earlier.
            remove_entry(&to)?;
            fs::copy(&from, &to).map_err(io_err(&from))?;
        } else {
            tracing::warn!(path = %from.display(), "image layer: skipping symlink or special file");
        }
    }
    Ok(())
}

fn remove_entry(path: &Path) -> Result<(), ImageError> {
    let removed = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(io_err(path))
}

/// Metadata of `root/rel` without following symlinks at or below `root`;
/// `None` if it is missing or one of its parents is not a real directory.
fn lstat_beneath(root: &Path, rel: &Path) -> io::Result<Option<Metadata>> {
    let mut path = root.to_path_buf();
    let mut meta: Option<Metadata> = None;
    for part in rel.components() {
        if meta.as_ref().is_some_and(|m| !m.is_dir()) {
            return Ok(None);
        }
        path.push(part);
        meta = match fs::symlink_metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(meta)
}

fn has_main(root: &Path) -> Result<bool, ImageError> {
    let meta = lstat_beneath(root, Path::new(MAIN_WASM)).map_err(io_err(&root.join(MAIN_WASM)))?;
    Ok(meta.is_some_and(|m| m.is_file()))
}

fn plain_name(name: OsString) -> Option<String> {
    let name = name.into_string().ok()?;
    (!name.is_empty() && !name.starts_with('.')).then_some(name)
}

/// Maps a path inside an image to the path to show the user.
type Origin<'a> = &'a dyn Fn(&Path) -> PathBuf;

/// The entries of `root/dir` sorted by name, without symlinks (skipped with a
/// warning). A missing (or symlinked) `dir` has no entries.
fn entries(
    root: &Path,
    dir: &str,
    origin: Origin,
) -> Result<Vec<(OsString, PathBuf, FileType)>, ImageError> {
    let path = root.join(dir);
    match lstat_beneath(root, Path::new(dir)).map_err(io_err(&path))? {
        None => return Ok(Vec::new()),
        Some(meta) if meta.is_dir() => {}
        Some(meta) if meta.is_symlink() => {
            tracing::warn!(path = %origin(&path).display(), "image: ignoring symlinked directory");
            return Ok(Vec::new());
        }
        Some(_) => return Err(ImageError::NotADirectory(origin(&path))),
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&path).map_err(io_err(&path))? {
        let entry = entry.map_err(io_err(&path))?;
        let ty = entry.file_type().map_err(io_err(&entry.path()))?;
        if ty.is_symlink() {
            tracing::warn!(path = %origin(&entry.path()).display(), "image: skipping symlink");
        } else {
            found.push((entry.file_name(), entry.path(), ty));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn list_services(root: &Path, origin: Origin) -> Result<Vec<ServiceImage>, ImageError> {
    let mut services = Vec::new();
    for (name, path, ty) in entries(root, "svc", origin)? {
        let Some(name) = plain_name(name) else {
            return Err(ImageError::BadServiceName(origin(&path)));
        };
        if !ty.is_dir() {
            return Err(ImageError::NotADirectory(origin(&path)));
        }
        if !has_main(&path)? {
            return Err(ImageError::MissingServiceMain(origin(&path)));
        }
        services.push(ServiceImage { name, root: path });
    }
    Ok(services)
}

/// A configuration file's text, `None` when it does not exist.
fn read_optional(path: &Path, shown: &Path) -> Result<Option<String>, ImageError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(shown)(e)),
    }
}

fn parse_boot_peer(path: &Path, file_name: &OsStr, text: &str) -> Result<BootPeer, ImageError> {
    let path = path.to_path_buf();
    let bad_id = |reason: String| ImageError::BadPeerId {
        path: path.clone(),
        reason,
    };
    let name = file_name
        .to_str()
        .ok_or_else(|| bad_id("file name is not UTF-8".into()))?;
    let peer_id: PeerId = name
        .parse()
        .map_err(|e: libp2p::identity::ParseError| bad_id(e.to_string()))?;
    let mut addrs = Vec::new();
    for (line, text) in (1..).zip(text.lines().map(str::trim)) {
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let bad_addr = |reason| ImageError::BadMultiaddr {
            path: path.clone(),
            line,
            reason,
        };
        let addr: Multiaddr = text
            .parse()
            .map_err(|e: libp2p::multiaddr::Error| bad_addr(e.to_string()))?;
        if let Some(Protocol::P2p(named)) = addr.iter().last()
            && named != peer_id
        {
            return Err(bad_addr(format!(
                "ends in /p2p/{named}, not this file's peer id"
            )));
        }
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(ImageError::NoBootAddrs(path));
    }
    Ok(BootPeer { peer_id, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// A fresh layer directory holding the given files.
    fn layer(files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new().unwrap();
        for (rel, content) in files {
            write(dir.path(), rel, content);
        }
        dir
    }

    fn merge(layers: &[&TempDir]) -> Result<MergedImage, ImageError> {
        let paths: Vec<_> = layers.iter().map(|l| l.path().to_path_buf()).collect();
        merge_layers(&paths)
    }

    fn read(image: &MergedImage, rel: &str) -> String {
        fs::read_to_string(image.root().join(rel)).unwrap()
    }

    fn peer() -> PeerId {
        let key = libp2p::identity::Keypair::generate_ed25519();
        key.public().to_peer_id()
    }

    /// `boot_peers()` of a single-layer image with one boot file.
    fn boot(file: &str, content: &str) -> (TempDir, Result<Vec<BootPeer>, ImageError>) {
        let a = layer(&[(MAIN_WASM, ""), (&format!("boot/{file}"), content)]);
        let peers = merge(&[&a]).unwrap().boot_peers();
        (a, peers)
    }

    #[test]
    fn single_layer_is_used_in_place() {
        let a = layer(&[(MAIN_WASM, "main")]);
        let image = merge(&[&a]).unwrap();
        assert_eq!(image.root(), a.path());
        assert_eq!(image.main_wasm(), a.path().join("bin/main.wasm"));
        assert!(image.services().unwrap().is_empty());
        assert!(image.boot_peers().unwrap().is_empty());
    }

    #[test]
    fn later_files_win_and_directories_merge() {
        let a = layer(&[(MAIN_WASM, "old"), ("etc/a", "a"), ("etc/both", "from a")]);
        let b = layer(&[(MAIN_WASM, "new"), ("etc/b", "b"), ("etc/both", "from b")]);
        let image = merge(&[&a, &b]).unwrap();
        assert!(image.root() != a.path() && image.root() != b.path());
        assert_eq!(read(&image, MAIN_WASM), "new");
        assert_eq!(read(&image, "etc/a"), "a");
        assert_eq!(read(&image, "etc/b"), "b");
        assert_eq!(read(&image, "etc/both"), "from b");
        let root = image.root().to_path_buf();
        drop(image);
        assert!(!root.exists(), "merged directory outlived the image");
    }

    #[test]
    fn file_and_directory_replace_each_other() {
        let a = layer(&[(MAIN_WASM, ""), ("etc/x/inner", "1"), ("etc/y", "file")]);
        let b = layer(&[("etc/x", "file now"), ("etc/y/inner", "dir now")]);
        let image = merge(&[&a, &b]).unwrap();
        assert_eq!(read(&image, "etc/x"), "file now");
        assert_eq!(read(&image, "etc/y/inner"), "dir now");
    }

    #[test]
    fn missing_main_wasm_names_the_layers() {
        let (a, b) = (layer(&[("etc/a", "")]), layer(&[("bin/other.wasm", "")]));
        let err = merge(&[&a, &b]).unwrap_err();
        assert!(matches!(err, ImageError::MissingMain { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.ends_with(": bin/main.wasm is missing"), "{msg}");
        assert!(msg.contains(&a.path().display().to_string()), "{msg}");
        assert!(msg.contains(&b.path().display().to_string()), "{msg}");
        let dir_main = layer(&[("bin/main.wasm/x", "")]);
        let err = merge(&[&dir_main]).unwrap_err();
        assert!(matches!(err, ImageError::MissingMain { .. }), "{err:?}");
    }

    #[test]
    fn missing_layer_and_file_layer_are_rejected() {
        let a = layer(&[(MAIN_WASM, ""), ("plain", "")]);
        let (missing, file) = (a.path().join("nope"), a.path().join("plain"));
        let msg = merge_layers(&[a.path().into(), missing.clone()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("layer {}: no such directory", missing.display())
        );
        let msg = merge_layers(std::slice::from_ref(&file))
            .unwrap_err()
            .to_string();
        assert_eq!(msg, format!("layer {}: is not a directory", file.display()));
        assert!(matches!(merge_layers(&[]), Err(ImageError::NoLayers)));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_copied_or_followed() {
        use std::os::unix::fs::symlink;
        let host = layer(&[("secret", "host data"), (MAIN_WASM, "host main")]);
        let (a, b) = (layer(&[("etc/keep", "")]), layer(&[]));
        symlink(host.path().join("secret"), a.path().join("etc/leak")).unwrap();
        symlink(host.path().join("bin"), b.path().join("bin")).unwrap();
        let err = merge(&[&a, &b]).unwrap_err();
        assert!(matches!(err, ImageError::MissingMain { .. }), "{err:?}");
        let err = merge(&[&b]).unwrap_err();
        assert!(matches!(err, ImageError::MissingMain { .. }), "{err:?}");

        write(a.path(), MAIN_WASM, "");
        let image = merge(&[&a, &b]).unwrap();
        assert!(image.root().join("etc/keep").is_file());
        assert!(fs::symlink_metadata(image.root().join("etc/leak")).is_err());
        assert_eq!(read(&image, MAIN_WASM), "");
    }

    #[test]
    fn services_are_listed_sorted_with_nested_services() {
        let a = layer(&[(MAIN_WASM, ""), ("svc/zeta/bin/main.wasm", "z")]);
        let b = layer(&[
            ("svc/alpha/bin/main.wasm", ""),
            ("svc/alpha/svc/in/bin/main.wasm", ""),
        ]);
        let image = merge(&[&a, &b]).unwrap();
        let services = image.services().unwrap();
        let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(services[0].root, image.root().join("svc/alpha"));
        assert_eq!(fs::read_to_string(services[1].main_wasm()).unwrap(), "z");

        let nested = services[0].services().unwrap();
        let root = services[0].root.join("svc/in");
        assert_eq!(nested, [open_service("in", &root).unwrap()]);
        assert_eq!((nested[0].name.as_str(), &nested[0].root), ("in", &root));
        assert!(services[1].services().unwrap().is_empty());
    }

    #[test]
    fn service_errors() {
        let a = layer(&[
            (MAIN_WASM, ""),
            ("svc/ok/bin/main.wasm", ""),
            ("svc/bad/etc/x", ""),
        ]);
        let err = merge(&[&a]).unwrap().services().unwrap_err();
        let bad = a.path().join("svc/bad");
        let expected = format!("service image {}: bin/main.wasm is missing", bad.display());
        assert_eq!(err.to_string(), expected);
        assert_eq!(open_service("bad", &bad).unwrap_err().to_string(), expected);
        let err = open_service(".x", a.path()).unwrap_err();
        assert!(matches!(err, ImageError::BadServiceName(_)), "{err:?}");

        let hidden = layer(&[(MAIN_WASM, ""), ("svc/.hidden/bin/main.wasm", "")]);
        let err = merge(&[&hidden]).unwrap().services().unwrap_err();
        assert!(matches!(err, ImageError::BadServiceName(_)), "{err:?}");
        let file = layer(&[(MAIN_WASM, ""), ("svc/plain", ""), ("boot", "")]);
        let image = merge(&[&file]).unwrap();
        let err = image.services().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: is not a directory",
                file.path().join("svc/plain").display()
            )
        );
        let err = image.boot_peers().unwrap_err();
        assert!(matches!(err, ImageError::NotADirectory(_)), "{err:?}");
    }

    #[test]
    fn boot_peers_are_parsed_sorted_skipping_comments() {
        let (p1, p2) = (peer(), peer());
        let with_id = format!("/ip6/::1/tcp/1/p2p/{p2}");
        let a = layer(&[
            (MAIN_WASM, ""),
            (
                &format!("boot/{p1}"),
                "# first\n\n  /ip4/127.0.0.1/tcp/1  \n/dns4/a.b/tcp/2\n",
            ),
            (&format!("boot/{p2}"), &with_id),
        ]);
        let addr = |s: &str| s.parse::<Multiaddr>().unwrap();
        let first = vec![addr("/ip4/127.0.0.1/tcp/1"), addr("/dns4/a.b/tcp/2")];
        let mut expected = vec![
            BootPeer {
                peer_id: p1,
                addrs: first,
            },
            BootPeer {
                peer_id: p2,
                addrs: vec![addr(&with_id)],
            },
        ];
        expected.sort_by_key(|p| p.peer_id.to_base58());
        assert_eq!(merge(&[&a]).unwrap().boot_peers().unwrap(), expected);
    }

    #[test]
    fn bad_boot_files_are_rejected() {
        let (a, peers) = boot("not-a-peer", "/ip4/127.0.0.1/tcp/1");
        let msg = peers.unwrap_err().to_string();
        let path = a.path().join("boot/not-a-peer").display().to_string();
        assert!(
            msg.starts_with(&format!("{path}: not a valid peer id: ")),
            "{msg}"
        );

        let (_a, peers) = boot(&peer().to_string(), "# nothing here\n\n");
        assert!(
            matches!(peers, Err(ImageError::NoBootAddrs(_))),
            "{peers:?}"
        );
    }

    #[test]
    fn bad_multiaddr_reports_its_line() {
        let p = peer();
        let (_a, peers) = boot(&p.to_string(), "# c\n/ip4/127.0.0.1/tcp/1\n\nnot-an-addr\n");
        let err = peers.unwrap_err();
        assert!(
            matches!(err, ImageError::BadMultiaddr { line: 4, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("boot/{p}:4: not a valid multiaddr")),
            "{msg}"
        );
        let (_a, peers) = boot(
            &p.to_string(),
            &format!("/ip4/1.2.3.4/tcp/1/p2p/{}", peer()),
        );
        assert!(
            matches!(peers, Err(ImageError::BadMultiaddr { line: 1, .. })),
            "{peers:?}"
        );
    }

    #[test]
    fn merged_errors_name_the_source_layer() {
        let a = layer(&[(MAIN_WASM, ""), ("boot/bad-a", "/ip4/1.1.1.1/tcp/1")]);
        let b = layer(&[("boot/bad-b", "/ip4/1.1.1.1/tcp/1"), ("svc/x/etc/cfg", "")]);
        let image = merge(&[&a, &b]).unwrap();
        let msg = image.boot_peers().unwrap_err().to_string();
        assert!(
            msg.starts_with(&a.path().join("boot/bad-a").display().to_string()),
            "{msg}"
        );
        let msg = image.services().unwrap_err().to_string();
        assert!(
            msg.contains(&b.path().join("svc/x").display().to_string()),
            "{msg}"
        );
    }
}
