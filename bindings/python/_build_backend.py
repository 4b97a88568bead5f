"""A dependency-free PEP 517 build backend for the rbpf package.

pip builds packages in an isolated environment and downloads the backend named in pyproject.toml;
this one lives in the source tree and needs nothing but the standard library, so
``pip install bindings/python`` works without network access. The wheel holds the ``rbpf``
package and the native library: ``rbpf/librbpf.so`` (or .dylib/.dll) in the package folder, else
the one ``build.sh`` left in ``out/lib``. Without either the wheel is refused (build first), unless
RBPF_WHEEL_WITHOUT_LIBRARY=1 asks for the bindings alone.
"""

import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile

NAME = "rbpf"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
LIBNAMES = ("librbpf.so", "librbpf.dylib", "rbpf.dll")

METADATA = """Metadata-Version: 2.1
Name: {name}
Version: {version}
Summary: Python bindings (ctypes) for librbpf, a userspace eBPF virtual machine
License: MIT
Requires-Python: >=3.8
""".format(name=NAME, version=VERSION)


def _native_library():
    for lib in LIBNAMES:
        for candidate in (os.path.join(HERE, NAME, lib), os.path.join(HERE, "..", "..", "out", "lib", lib)):
            if os.path.isfile(candidate):
                return candidate, lib
    return None, None


def _files():
    pkg = os.path.join(HERE, NAME)
    for entry in sorted(os.listdir(pkg)):
        if entry.endswith(".py") or entry == "py.typed":
            yield os.path.join(pkg, entry), NAME + "/" + entry
    path, lib = _native_library()
    if path:
        yield path, NAME + "/" + lib


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def _tag():
    path, _ = _native_library()
    if path is None:
        return "py3-none-any"
    plat = {"linux": "linux_x86_64", "darwin": "macosx_11_0_x86_64", "win32": "win_amd64"}.get(sys.platform, "any")
    if plat.startswith("linux") and os.uname().machine in ("aarch64", "arm64"):
        plat = "linux_aarch64"
    return "py3-none-" + plat


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, "%s-%s.dist-info" % (NAME, VERSION))
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(METADATA)
    return os.path.basename(info)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if _native_library()[0] is None and os.environ.get("RBPF_WHEEL_WITHOUT_LIBRARY") != "1":
        # A wheel without the library would install and then fail on import: say so now.
        raise RuntimeError("librbpf is not built: run ./build.sh at the top of the repository first, "
                           "then pip install bindings/python again (or set RBPF_WHEEL_WITHOUT_LIBRARY=1 "
                           "to package the bindings alone and point RBPF_LIBRARY at a librbpf)")
    tag = _tag()
    filename = "%s-%s-%s.whl" % (NAME, VERSION, tag)
    info = "%s-%s.dist-info" % (NAME, VERSION)
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as whl:
        def add(arcname, data):
            whl.writestr(arcname, data)
            records.append(_record_line(arcname, data))

        for path, arcname in _files():
            with open(path, "rb") as f:
                add(arcname, f.read())
        add(info + "/METADATA", METADATA.encode())
        add(info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: rbpf-backend\nRoot-Is-Purelib: %s\nTag: %s\n"
                              % ("true" if tag.endswith("any") else "false", tag)).encode())
        record = info + "/RECORD"
        records.append(record + ",,")
        whl.writestr(record, "\n".join(records) + "\n")
    return filename


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for rel in ("pyproject.toml", "_build_backend.py", "README.md"):
            tar.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        for path, arcname in _files():
            tar.add(path, arcname=base + "/" + arcname)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        data = METADATA.encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return filename
