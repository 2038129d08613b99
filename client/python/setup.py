"""Build step of the memnode Python client: adds the generated gRPC stubs.

Metadata lives in pyproject.toml; this file only extends ``build_py`` so that
the wheel also holds ``memnode/v1/*_pb2*.py`` and ``google/rpc/*_pb2*.py``,
which are generated at build time and never committed. Where they come from:

1. ``$MEMNODE_STUBS_DIR`` set: copied from there (a CMake build's
   ``<build>/python``, which target ``memnode_python_stubs`` fills);
2. otherwise generated from the .proto files in ``$MEMNODE_PROTOS_DIR``
   (default: ``../../protos`` next to this file, i.e. the repository's
   ``protos/``) with ``protoc`` (``$PROTOC``, else on PATH) and
   ``grpc_python_plugin`` (``$GRPC_PYTHON_PLUGIN``, else on PATH, else
   /usr/bin/grpc_python_plugin) - the same command as protos/CMakeLists.txt.

Neither ``memnode/v1`` nor ``google``/``google/rpc`` get an ``__init__.py``:
they stay implicit namespace packages exactly as in ``<build>/python``, so an
installed copy never shadows Debian's ``google.protobuf`` (or a
googleapis-common-protos ``google.rpc``), and ``memnode/__init__.py``'s
pkgutil path extension works the same installed or via ``sys.path``.

The build directory defaults to a fresh temporary directory (not
``client/python/build``), so that concurrent installs from the same checkout
never share files.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build import build as _build
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).resolve().parent
# Generated packages shipped in the wheel (relative to <out>).
STUB_PACKAGES = ("memnode/v1", "google/rpc")


def _fail(msg):
    sys.stderr.write("memnode setup.py: %s\n" % msg)
    raise SystemExit(1)


def _copy_stubs(src_root, dst_root):
    src_root = Path(src_root)
    copied = 0
    for pkg in STUB_PACKAGES:
        src = src_root / pkg
        if not src.is_dir():
            _fail("%s has no %s/ (MEMNODE_STUBS_DIR must be <build>/python)" % (src_root, pkg))
        dst = Path(dst_root) / pkg
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*_pb2*.py")):
            shutil.copyfile(f, dst / f.name)
            copied += 1
    return copied


def _find_tool(env, name, fallback=None):
    path = os.environ.get(env) or shutil.which(name) or fallback
    if not path or not os.access(path, os.X_OK):
        _fail("%s not found: install Debian's protobuf-compiler / protobuf-compiler-grpc, "
              "set %s, or set MEMNODE_STUBS_DIR to a build's python/ directory" % (name, env))
    return path


def _generate_stubs(dst_root):
    protos = Path(os.environ.get("MEMNODE_PROTOS_DIR") or HERE.parent.parent / "protos").resolve()
    files = sorted(str(p.relative_to(protos)) for pkg in STUB_PACKAGES
                   for p in (protos / pkg).glob("*.proto"))
    if not files:
        _fail("no .proto files under %s (building outside the repository? set "
              "MEMNODE_PROTOS_DIR or MEMNODE_STUBS_DIR)" % protos)
    protoc = _find_tool("PROTOC", "protoc")
    plugin = _find_tool("GRPC_PYTHON_PLUGIN", "grpc_python_plugin", "/usr/bin/grpc_python_plugin")
    with tempfile.TemporaryDirectory(prefix="memnode-stubs-") as out:
        cmd = [protoc, "-I", str(protos), "--python_out=" + out, "--grpc_out=" + out,
               "--plugin=protoc-gen-grpc=" + plugin] + files
        print("memnode: generating stubs:", " ".join(cmd))
        subprocess.run(cmd, cwd=str(protos), check=True)
        return _copy_stubs(out, dst_root)


class build(_build):
    def initialize_options(self):
        super().initialize_options()
        tmp = tempfile.mkdtemp(prefix="memnode-client-build-")
        atexit.register(shutil.rmtree, tmp, True)
        self.build_base = tmp


class build_py(_build_py):
    def run(self):
        super().run()
        stubs = os.environ.get("MEMNODE_STUBS_DIR")
        n = _copy_stubs(stubs, self.build_lib) if stubs else _generate_stubs(self.build_lib)
        if not (Path(self.build_lib) / "memnode" / "v1" / "machine_pb2.py").is_file():
            _fail("stub generation produced no memnode/v1/machine_pb2.py")
        print("memnode: %d generated stub modules added to the package" % n)


setup(cmdclass={"build": build, "build_py": build_py})
