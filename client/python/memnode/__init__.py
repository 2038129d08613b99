"""memnode: Python client of the memnode emulator (gRPC API memnode.v1).

This package is pkgutil-style namespace-extending: the generated stubs
(``memnode.v1.machine_pb2`` and friends) live in the build directory's
``python/memnode/v1`` and are found as a subpackage as long as
``<build>/python`` is on ``sys.path`` (next to ``client/python``).

The friendly API (``Client``, ``Machine``, ``Process``, ``Ksm``,
``MemoryBlock``, ``Result``,
``MemnodeError`` and the errno constants) is exported lazily, so that
``memnode.digest`` stays importable without the generated stubs; so are the
enum display names of ``memnode.enums`` (``display_name``, ``enum_value``).
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)

_CLIENT_NAMES = (
    "Client", "Machine", "Process", "Ksm", "MemoryBlock", "Result", "MemnodeError",
    "node_mask", "PAGE_SIZE", "PROT_NONE", "PROT_READ", "PROT_WRITE",
    "MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE",
    "MPOL_MF_STRICT", "MPOL_MF_MOVE", "MPOL_MF_MOVE_ALL",
    "OFFLINE_PHASE_NONE", "OFFLINE_PHASE_ISOLATED", "OFFLINE_PHASE_GOING_OFFLINE",
    "OFFLINE_PHASE_MIGRATED", "OFFLINE_PHASE_DONE",
    "BLOCK_ONLINE", "BLOCK_GOING_OFFLINE", "BLOCK_OFFLINE", "BLOCK_REMOVED",
    "OK", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "EAGAIN", "ENOMEM",
    "EACCES", "EFAULT", "EBUSY", "ENODEV", "EINVAL",
)

# Enum display names (docs/API.md 1.7); need google.protobuf only.
_ENUM_NAMES = ("display_name", "display_names", "enum_value", "enum_prefix")

__all__ = list(_CLIENT_NAMES) + list(_ENUM_NAMES) + ["digest", "enums"]


def __getattr__(name):
    if name in _ENUM_NAMES:
        from memnode import enums as _enums
        return getattr(_enums, name)
    if name in _CLIENT_NAMES:
        from memnode import client as _client
        return getattr(_client, name)
    raise AttributeError("module 'memnode' has no attribute %r" % name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
