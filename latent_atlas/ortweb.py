"""The onnxruntime-web runtime the explorer page runs on: vendored, checked, written once per
output folder in a form that a page opened from disk (``file://``) can load.

Why vendored (``vendor/onnxruntime-web/``, npm ``onnxruntime-web`` at :data:`VERSION`) and not
installed from npm at build time: the tests and CI run without a network, a wheel is built
without node or npm, and the files must be byte-for-byte the ones published. The three files
the wasm backend needs are kept as published (the ``.wasm`` gzipped: the page needs it gzipped
anyway, and compressing 14 MB at every report would cost a second); :func:`runtime_files`
checks each against the sha256 of the published file before it is written anywhere.
``make vendor-ortweb`` fetches the pinned version again and checks the same hashes.

Why no ``fetch``: Chromium refuses ``fetch`` and module imports of ``file://`` URLs, which is how
onnxruntime-web loads its ``.wasm`` binary and its Emscripten glue (``.mjs``). So the output
holds them as script files: ``ort-wasm.js`` defines ``globalThis.LATENT_ATLAS_ORT`` with the
glue's source text and the binary (gzip, base64), which the page hands to onnxruntime-web as
``env.wasm.wasmBinary`` and as a ``blob:`` URL for the glue (``env.wasm.wasmPaths.mjs``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tarfile
from functools import lru_cache
from pathlib import Path

from latent_atlas.toolkit.atomic import check_file_target, write_bytes
from latent_atlas.toolkit.errors import AtlasError

VERSION = "1.30.0"
NPM_INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)  # fmt: skip
VENDOR = Path(__file__).resolve().parent / "vendor" / "onnxruntime-web"
# sha256 of each file as published in onnxruntime-web-1.30.0.tgz (NPM_INTEGRITY: the tarball)
# and of the licence files of the same release (the npm package has none; they come from the
# onnxruntime 1.30.0 wheel: onnxruntime/LICENSE, onnxruntime/ThirdPartyNotices.txt).
SHA256 = {
    "ort.wasm.min.js":
        "faece07e84faa9001f5104bbe4e5c70861d06cb2376a0dea1fa0ad33a67adc81",
    "ort-wasm-simd-threaded.mjs":
        "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm":
        "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
    "LICENSE":
        "2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c",
    "ThirdPartyNotices.txt":
        "143764b952fdb1a7c69ce653bfba74a7744d6a8a573bfb73e235fba356c83de3",
}  # fmt: skip
GZIPPED = {"ort-wasm-simd-threaded.wasm"}  # stored as NAME.gz
# The folder the runtime goes into, beside the report folders it serves.
FOLDER = "explorer-runtime"
# The two scripts a page loads, in this order.
SCRIPTS = ("ort.wasm.min.js", "ort-wasm.js")
# The published script ends with a source-map comment; no map ships, so a browser's developer
# tools would try (and fail) to fetch it. The written copy drops that one line.
_SOURCE_MAP = b"\n//# sourceMappingURL=ort.wasm.min.js.map\n"

README = f"""\
onnxruntime-web {VERSION} (npm package onnxruntime-web, MIT licence: LICENSE,
ThirdPartyNotices.txt), the runtime of the latent-atlas explorer pages (explore.html) that
refer to this folder.

ort.wasm.min.js   the published file, without its last line (a source-map comment)
ort-wasm.js       the published ort-wasm-simd-threaded.mjs (source text) and
                  ort-wasm-simd-threaded.wasm (gzip, base64) as one script, so that a page
                  opened from disk loads them without fetch()
"""


def _vendored(name: str, vendor: Path) -> tuple[bytes, bytes]:
    """One vendored file as stored and as published (gunzipped), checked against the published
    file's pinned sha256."""
    stored = vendor / (f"{name}.gz" if name in GZIPPED else name)
    try:
        raw = stored.read_bytes()
        data = gzip.decompress(raw) if name in GZIPPED else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise AtlasError(
            f"onnxruntime-web file {stored}: unreadable ({exc}); expected the vendored file of "
            f"onnxruntime-web {VERSION}: reinstall latent-atlas or run `make vendor-ortweb`"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise AtlasError(
            f"onnxruntime-web file {stored}: sha256 {digest[:12]}…, expected {SHA256[name][:12]}… "
            f"(onnxruntime-web {VERSION} as published); reinstall latent-atlas or run "
            "`make vendor-ortweb`"
        )
    return raw, data


@lru_cache(maxsize=2)
def runtime_files(vendor: Path = VENDOR) -> dict[str, bytes]:
    """The files of an output's runtime folder, ``{name: bytes}``, from the checked vendored
    files. Raises :class:`AtlasError` when a vendored file is missing or differs."""
    checked = {name: _vendored(name, vendor) for name in SHA256}
    files = {name: data for name, (_, data) in checked.items()}
    script = files.pop("ort.wasm.min.js")
    if script.endswith(_SOURCE_MAP):
        script = script[: -len(_SOURCE_MAP)] + b"\n"
    packed, wasm = checked["ort-wasm-simd-threaded.wasm"]
    del files["ort-wasm-simd-threaded.wasm"]
    glue = files.pop("ort-wasm-simd-threaded.mjs").decode("utf-8")
    runtime = {
        "version": VERSION,
        "glue": glue,
        "wasmGzipBase64": base64.b64encode(packed).decode("ascii"),
        "wasmBytes": len(wasm),
    }
    body = "globalThis.LATENT_ATLAS_ORT = " + json.dumps(runtime, separators=(",", ":")) + ";\n"
    return {
        "ort.wasm.min.js": script,
        "ort-wasm.js": body.encode("utf-8"),
        **files,  # LICENSE, ThirdPartyNotices.txt
        "README.txt": README.encode("utf-8"),
    }


def check_runtime_target(folder: Path) -> None:
    """Refuse early (writing nothing) what :func:`write_runtime` would refuse: a batch checks
    its runtime's place before any work and writes the runtime only once a report exists."""
    for name in runtime_files():
        check_file_target(Path(folder) / name)


def write_runtime(folder: Path) -> Path:
    """Write the runtime files into ``folder`` (one per output folder: every explorer page of a
    batch refers to the same copy). Returns ``folder``."""
    files = runtime_files()
    check_runtime_target(folder)  # every target first: a refusal leaves no file half-written
    for name, data in files.items():
        write_bytes(Path(folder) / name, data)
    return Path(folder)


def vendor(tarball: Path, integrity: str = NPM_INTEGRITY, target: Path = VENDOR) -> None:
    """Maintainers (``make vendor-ortweb``): take the runtime files out of the npm tarball of
    onnxruntime-web, checked against its npm integrity string, into ``target``; then check every
    vendored file against the pinned sha256 (the licence files stay as they are)."""
    raw = Path(tarball).read_bytes()
    found = "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode("ascii")
    if found != integrity:
        raise AtlasError(f"npm tarball {tarball}: integrity {found}, expected {integrity}")
    with tarfile.open(tarball, "r:gz") as tar:
        for name in SHA256:
            if name in ("LICENSE", "ThirdPartyNotices.txt"):
                continue
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise AtlasError(f"npm tarball {tarball}: no package/dist/{name}")
            data = member.read()
            # overwrite: re-vendoring replaces the package's own copy, by design (checked below)
            if name in GZIPPED:
                write_bytes(target / f"{name}.gz", gzip.compress(data, 9, mtime=0), overwrite=True)
            else:
                write_bytes(target / name, data, overwrite=True)
    runtime_files.cache_clear()
    runtime_files(target)
