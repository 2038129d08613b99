"""A small, friendly wrapper over memnode's gRPC API (package memnode.v1).

The generated stubs (``memnode.v1.*_pb2`` / ``*_pb2_grpc``) come from the
build directory (``<build>/python``), which must be on ``sys.path``; see
``client/python/README.md``.

Two kinds of failure exist and are kept apart (SPEC "Decisions" 6):

* an **emulated** outcome of a syscall or sysfs write (EFAULT, EINVAL, ...)
  is data: the wrapper returns it as a :class:`Result` whose ``errnum`` is
  the Linux errno number and whose ``ok`` is true only for ``ERRNO_OK``;
* a request the service could not act on (unknown machine, malformed name,
  limit exceeded, ...) is a gRPC error: the wrapper raises
  :class:`MemnodeError` carrying the status code and the stable
  ``google.rpc.ErrorInfo`` reason sent by the server.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Union

import grpc

from memnode.enums import display_name, enum_value
from memnode.v1 import common_pb2
from memnode.v1 import hotplug_pb2
from memnode.v1 import hotplug_pb2_grpc
from memnode.v1 import ksm_pb2
from memnode.v1 import ksm_pb2_grpc
from memnode.v1 import machine_pb2
from memnode.v1 import machine_pb2_grpc
from memnode.v1 import numa_pb2
from memnode.v1 import numa_pb2_grpc
from memnode.v1 import process_pb2
from memnode.v1 import process_pb2_grpc

PAGE_SIZE = 4096

# Errno values (Linux x86_64 numbers, as in common.proto).
OK = common_pb2.ERRNO_OK
EPERM = common_pb2.ERRNO_EPERM
ENOENT = common_pb2.ERRNO_ENOENT
ESRCH = common_pb2.ERRNO_ESRCH
EINTR = common_pb2.ERRNO_EINTR
EIO = common_pb2.ERRNO_EIO
EAGAIN = common_pb2.ERRNO_EAGAIN
ENOMEM = common_pb2.ERRNO_ENOMEM
EACCES = common_pb2.ERRNO_EACCES
EFAULT = common_pb2.ERRNO_EFAULT
EBUSY = common_pb2.ERRNO_EBUSY
ENODEV = common_pb2.ERRNO_ENODEV
EINVAL = common_pb2.ERRNO_EINVAL

# Memory policy modes (MPOL_*) and mbind / move_pages flags (MPOL_MF_*).
MPOL_DEFAULT = numa_pb2.MPOL_DEFAULT
MPOL_PREFERRED = numa_pb2.MPOL_PREFERRED
MPOL_BIND = numa_pb2.MPOL_BIND
MPOL_INTERLEAVE = numa_pb2.MPOL_INTERLEAVE
MPOL_MF_STRICT = numa_pb2.MPOL_MF_STRICT
MPOL_MF_MOVE = numa_pb2.MPOL_MF_MOVE
MPOL_MF_MOVE_ALL = numa_pb2.MPOL_MF_MOVE_ALL

# Offline phases (pause points) and memory block states.
OFFLINE_PHASE_NONE = hotplug_pb2.OFFLINE_PHASE_NONE
OFFLINE_PHASE_ISOLATED = hotplug_pb2.OFFLINE_PHASE_ISOLATED
OFFLINE_PHASE_GOING_OFFLINE = hotplug_pb2.OFFLINE_PHASE_GOING_OFFLINE
OFFLINE_PHASE_MIGRATED = hotplug_pb2.OFFLINE_PHASE_MIGRATED
OFFLINE_PHASE_DONE = hotplug_pb2.OFFLINE_PHASE_DONE
BLOCK_ONLINE = hotplug_pb2.MEMORY_BLOCK_STATE_ONLINE
BLOCK_GOING_OFFLINE = hotplug_pb2.MEMORY_BLOCK_STATE_GOING_OFFLINE
BLOCK_OFFLINE = hotplug_pb2.MEMORY_BLOCK_STATE_OFFLINE
BLOCK_REMOVED = hotplug_pb2.MEMORY_BLOCK_STATE_REMOVED

PROT_NONE = process_pb2.PROT_NONE
PROT_READ = process_pb2.PROT_READ
PROT_WRITE = process_pb2.PROT_WRITE

# Protections as mprotect-style letters (a bit mask, not an enum name).
_PROT_NAMES = {"": 0, "-": 0, "none": 0, "r": 1, "w": 2, "rw": 3, "wr": 3}

# Enum arguments (advice, clock, mode, pause_after, notifier event, errno)
# take the display names of memnode.enums, derived from the protos.

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


# --------------------------------------------------------------------------
# errors and results
# --------------------------------------------------------------------------

class MemnodeError(Exception):
    """A gRPC error returned by memnoded (API misuse or server condition).

    Attributes:
        code: the ``grpc.StatusCode``.
        reason: ``google.rpc.ErrorInfo.reason`` (e.g. ``"MACHINE_NOT_FOUND"``),
            or ``""`` when the server attached no ErrorInfo (for example an
            error produced by the gRPC library itself).
        message: the status message.
        domain: ``ErrorInfo.domain`` (``""`` when absent).
        metadata: ``ErrorInfo.metadata`` as a dict.
    """

    def __init__(self, code: grpc.StatusCode, reason: str, message: str,
                 domain: str = "", metadata: Optional[dict] = None) -> None:
        super().__init__("%s %s: %s" % (code.name, reason or "-", message))
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.metadata = dict(metadata or {})

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "MemnodeError":
        """Builds the error from a ``grpc.RpcError`` raised by a stub call.

        The reason is read from the ``grpc-status-details-bin`` trailer: a
        serialized ``google.rpc.Status`` whose first detail is an ``Any``
        holding a ``google.rpc.ErrorInfo``.
        """
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        message = err.details() if hasattr(err, "details") else str(err)
        reason, domain, meta = "", "", {}
        trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        for key, value in trailers or ():
            if key != _STATUS_DETAILS_KEY:
                continue
            info = _error_info_from_status_bytes(value)
            if info is not None:
                reason, domain, meta = info.reason, info.domain, dict(info.metadata)
            break
        return cls(code, reason, message or "", domain, meta)


def _error_info_from_status_bytes(raw: bytes):
    """Returns the first ErrorInfo packed in a serialized google.rpc.Status."""
    try:
        from google.rpc import error_details_pb2, status_pb2
    except ImportError:  # pragma: no cover - stubs missing from sys.path
        return None
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except Exception:  # malformed trailer: report the error without a reason
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            return info
    return None


class Result:
    """An emulated syscall / sysfs outcome wrapping the response message.

    ``errnum`` is the Linux errno number (``0`` on success), ``ok`` is
    ``errnum == 0``, ``errno_name`` is the proto enum name (``"ERRNO_EFAULT"``).
    Every other attribute is read from the wrapped response
    (``result.address``, ``result.data``, ``result.digest``, ...).
    """

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response

    @property
    def errnum(self) -> int:
        return int(self.response.errnum)

    @property
    def ok(self) -> bool:
        return self.errnum == OK

    @property
    def errno_name(self) -> str:
        return common_pb2.Errno.Name(self.errnum)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.response, name)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        body = str(self.response).replace("\n", " ").strip()
        return "Result(%s)" % body


def _call(method: Callable, request: Any, timeout: Optional[float]) -> Any:
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as err:
        raise MemnodeError.from_rpc_error(err) from None


def _prot(prot: Union[int, str]) -> int:
    if isinstance(prot, str):
        try:
            return _PROT_NAMES[prot.lower()]
        except KeyError:
            raise ValueError("prot must be an int or one of %s" % sorted(_PROT_NAMES))
    return int(prot)


def _advice(advice: Union[int, str]) -> int:
    return enum_value(process_pb2.Advice, advice, "advice",
                      exclude=(process_pb2.ADVICE_UNSPECIFIED,))


def _clock(clock: Union[int, str]) -> int:
    return enum_value(common_pb2.ClockMode, clock, "clock")


def _mode(mode: Union[int, str]) -> int:
    return enum_value(numa_pb2.MempolicyMode, mode, "mode")


def node_mask(nodes: Union[None, int, str, Iterable[int]]) -> int:
    """A node mask (bit n = node n) from an int mask, an iterable of node ids,
    or a string such as ``"0,1"``, ``"0-3"``, ``"none"`` / ``""``."""
    if nodes is None:
        return 0
    if isinstance(nodes, bool):
        raise TypeError("a node mask is not a bool")
    if isinstance(nodes, int):
        if nodes < 0:
            raise ValueError("a node mask is not negative")
        return nodes
    if isinstance(nodes, str):
        text = nodes.strip().lower()
        if text in ("", "none"):
            return 0
        mask = 0
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if not 0 <= first <= last < 64:
                raise ValueError("bad node range %r" % part)
            for n in range(first, last + 1):
                mask |= 1 << n
        return mask
    mask = 0
    for n in nodes:
        n = int(n)
        if not 0 <= n < 64:
            raise ValueError("node %d out of range 0..63" % n)
        mask |= 1 << n
    return mask


def _phase(phase: Union[None, int, str]) -> int:
    if phase is None:
        return hotplug_pb2.OFFLINE_PHASE_NONE
    # DONE is where an offline ends, not a place to pause.
    return enum_value(hotplug_pb2.OfflinePhase, phase, "pause_after",
                      exclude=(hotplug_pb2.OFFLINE_PHASE_DONE,))


def _mem_event(event: Union[int, str]) -> int:
    return enum_value(hotplug_pb2.MemoryNotifierEvent, event, "memory notifier event")


def _errno(errnum: Union[int, str]) -> int:
    return enum_value(common_pb2.Errno, errnum, "errno")


def _pid(target: Union[int, "Process"]) -> int:
    return target.pid if isinstance(target, Process) else int(target)


def _call_with(method: Callable, request: Any, client: "Client",
               timeout: Optional[float]) -> Any:
    """A call with its own deadline (``timeout`` seconds) instead of the
    client's, for the calls that may block (run writes during an offline)."""
    return _call(method, request, client.timeout if timeout is None else timeout)


def _paginate(fetch: Callable[[str], Any], field: str) -> Iterator[Any]:
    token = ""
    while True:
        resp = fetch(token)
        for item in getattr(resp, field):
            yield item
        token = resp.next_page_token
        if not token:
            return


# --------------------------------------------------------------------------
# client
# --------------------------------------------------------------------------

class Client:
    """A connection to memnoded: one channel and the three service stubs.

    Usable as a context manager (closes the channel on exit)::

        with Client("127.0.0.1:50051") as c:
            with c.create_machine("demo", nodes=2, blocks_per_node=4,
                                  pages_per_block=64) as m:
                p = m.create_process()
                ...
    """

    def __init__(self, target: str, *, timeout: Optional[float] = 60.0,
                 channel: Optional[grpc.Channel] = None,
                 options: Optional[Sequence] = None) -> None:
        """Opens an insecure channel to ``target`` (``host:port``) unless a
        ready ``channel`` is given. ``timeout`` is the per-call deadline in
        seconds (None: no deadline)."""
        self.target = target
        self.timeout = timeout
        opts = list(options or [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ])
        self.channel = channel or grpc.insecure_channel(target, options=opts)
        self.machines = machine_pb2_grpc.MachineServiceStub(self.channel)
        self.processes = process_pb2_grpc.ProcessServiceStub(self.channel)
        self.ksm = ksm_pb2_grpc.KsmServiceStub(self.channel)
        self.numa = numa_pb2_grpc.NumaServiceStub(self.channel)
        self.blocks = hotplug_pb2_grpc.MemoryBlockServiceStub(self.channel)

    # context manager -----------------------------------------------------
    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel."""
        self.channel.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected (raises on timeout)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def call(self, method: Callable, request: Any) -> Any:
        """Calls a raw stub method, translating gRPC errors to MemnodeError."""
        return _call(method, request, self.timeout)

    # machines ------------------------------------------------------------
    def create_machine(self, machine_id: str, *, nodes: int = 2,
                       blocks_per_node: int = 4, pages_per_block: int = 64,
                       clock: Union[str, int] = "manual",
                       profile: str = "") -> "Machine":
        """CreateMachine: a new machine ``machines/{machine_id}``.

        ``clock`` is ``"manual"`` (deterministic, ksmd only steps on request),
        ``"realtime"`` or a ``ClockMode`` value.
        """
        mode = _clock(clock)
        req = machine_pb2.CreateMachineRequest(
            machine_id=machine_id,
            machine=machine_pb2.Machine(
                topology=machine_pb2.Topology(
                    nodes=nodes, blocks_per_node=blocks_per_node,
                    pages_per_block=pages_per_block),
                clock_mode=mode, profile=profile))
        proto = self.call(self.machines.CreateMachine, req)
        return Machine(self, proto.name, proto)

    def machine(self, machine_id_or_name: str) -> "Machine":
        """A handle on an existing machine (no RPC); accepts ``"demo"`` or
        ``"machines/demo"``."""
        name = machine_id_or_name
        if not name.startswith("machines/"):
            name = "machines/" + name
        return Machine(self, name)

    def list_machines(self, page_size: int = 0) -> List[machine_pb2.Machine]:
        """ListMachines, all pages."""
        return list(_paginate(
            lambda tok: self.call(self.machines.ListMachines,
                                  machine_pb2.ListMachinesRequest(
                                      page_size=page_size, page_token=tok)),
            "machines"))


class Machine:
    """A handle on ``machines/{machine}``.

    As a context manager the machine is deleted on exit (errors on delete are
    ignored only if the machine is already gone).
    """

    def __init__(self, client: Client, name: str,
                 proto: Optional[machine_pb2.Machine] = None) -> None:
        self.client = client
        self.name = name
        self.proto = proto
        self.ksm = Ksm(client, name + "/ksm")

    @property
    def id(self) -> str:
        return self.name.split("/", 1)[1]

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.delete()
        except MemnodeError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:
                raise

    def __repr__(self) -> str:
        return "Machine(%r)" % self.name

    def get(self) -> machine_pb2.Machine:
        """GetMachine (topology, per-node page counts, ...)."""
        self.proto = self.client.call(self.client.machines.GetMachine,
                                      machine_pb2.GetMachineRequest(name=self.name))
        return self.proto

    def delete(self) -> None:
        """DeleteMachine."""
        self.client.call(self.client.machines.DeleteMachine,
                         machine_pb2.DeleteMachineRequest(name=self.name))

    def check(self) -> machine_pb2.CheckMachineResponse:
        """CheckMachine: self-check (``ok``, ``violations``) and state digest."""
        return self.client.call(self.client.machines.CheckMachine,
                                machine_pb2.CheckMachineRequest(name=self.name))

    def page(self, pfn: int) -> machine_pb2.PageFrame:
        """GetPageFrame: the struct page of ``pfn``."""
        return self.client.call(self.client.machines.GetPageFrame,
                                machine_pb2.GetPageFrameRequest(machine=self.name, pfn=pfn))

    def pages(self, start_pfn: int, count: int, *, skip_free: bool = False,
              page_size: int = 0) -> List[machine_pb2.PageFrame]:
        """ListPageFrames over [start_pfn, start_pfn+count), all pages."""
        return list(_paginate(
            lambda tok: self.client.call(
                self.client.machines.ListPageFrames,
                machine_pb2.ListPageFramesRequest(
                    machine=self.name, start_pfn=start_pfn, count=count,
                    skip_free=skip_free, page_size=page_size, page_token=tok)),
            "frames"))

    # processes -----------------------------------------------------------
    def create_process(self, *, uid: int = 0, privileged: bool = False,
                       home_node: int = 0) -> "Process":
        """CreateProcess: a process with an empty address space."""
        proto = self.client.call(
            self.client.processes.CreateProcess,
            process_pb2.CreateProcessRequest(
                parent=self.name,
                process=process_pb2.Process(uid=uid, privileged=privileged,
                                            home_node=home_node)))
        return Process(self.client, proto.name, proto)

    def process(self, pid: int) -> "Process":
        """A handle on process ``pid`` (no RPC)."""
        return Process(self.client, "%s/processes/%d" % (self.name, pid))

    def processes(self, *, show_exited: bool = False,
                  page_size: int = 0) -> List["Process"]:
        """ListProcesses, all pages, as Process handles (``.proto`` filled)."""
        protos = _paginate(
            lambda tok: self.client.call(
                self.client.processes.ListProcesses,
                process_pb2.ListProcessesRequest(
                    parent=self.name, page_size=page_size, page_token=tok,
                    show_exited=show_exited)),
            "processes")
        return [Process(self.client, p.name, p) for p in protos]

    # memory blocks and hotplug -------------------------------------------
    def blocks(self, page_size: int = 0) -> List["MemoryBlock"]:
        """ListMemoryBlocks, all pages, in id order, as MemoryBlock handles
        (``.proto`` filled)."""
        protos = _paginate(
            lambda tok: self.client.call(
                self.client.blocks.ListMemoryBlocks,
                hotplug_pb2.ListMemoryBlocksRequest(
                    parent=self.name, page_size=page_size, page_token=tok)),
            "memory_blocks")
        return [MemoryBlock(self.client, b.name, b) for b in protos]

    def block(self, block: int) -> "MemoryBlock":
        """A handle on memory block ``block`` (no RPC)."""
        return MemoryBlock(self.client, "%s/memoryBlocks/%d" % (self.name, block))

    def add_block(self, node: int) -> "MemoryBlock":
        """AddMemoryBlock: hot-adds a block to ``node`` (it starts OFFLINE)."""
        proto = self.client.call(self.client.blocks.AddMemoryBlock,
                                 hotplug_pb2.AddMemoryBlockRequest(parent=self.name, node=node))
        return MemoryBlock(self.client, proto.name, proto)

    def inject_notifier_failure(self, event: Union[int, str], priority: int,
                                errnum: Union[int, str], count: int = 0) -> None:
        """InjectNotifierFailure: calls of ``event`` (``"going-offline"``,
        ``"MEM_GOING_OFFLINE"`` or a MemoryNotifierEvent value) reach a
        notifier at ``priority`` that fails with ``errnum`` (``EBUSY``,
        ``"EBUSY"``); ``count`` failures, 0 = until cleared."""
        self.client.call(self.client.blocks.InjectNotifierFailure,
                         hotplug_pb2.InjectNotifierFailureRequest(
                             parent=self.name, event=_mem_event(event), priority=priority,
                             errnum=_errno(errnum), count=count))

    def clear_notifier_failures(self) -> None:
        """ClearNotifierFailures: removes every injected notifier."""
        self.client.call(self.client.blocks.ClearNotifierFailures,
                         hotplug_pb2.ClearNotifierFailuresRequest(parent=self.name))


class MemoryBlock:
    """A handle on ``machines/{machine}/memoryBlocks/{block}`` (sysfs
    /sys/devices/system/memory/memoryN).

    ``offline``, ``resume`` and ``cancel`` return the OfflineReport as a
    :class:`Result` (``.errnum``, ``.paused``, ``.phase``,
    ``.notifier_calls``, ``.pages_migrated``, ...); ``online`` and ``remove``
    a Result over SyscallResult.
    """

    def __init__(self, client: Client, name: str,
                 proto: Optional[hotplug_pb2.MemoryBlock] = None) -> None:
        self.client = client
        self.name = name
        self.proto = proto

    @property
    def id(self) -> int:
        return int(self.name.rsplit("/", 1)[1])

    @property
    def machine_name(self) -> str:
        return self.name.split("/memoryBlocks/", 1)[0]

    def __repr__(self) -> str:
        return "MemoryBlock(%r)" % self.name

    def _rpc(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        return _call_with(getattr(self.client.blocks, method), request, self.client, timeout)

    def get(self) -> hotplug_pb2.MemoryBlock:
        """GetMemoryBlock (state, node, pfns, page counts, removable)."""
        self.proto = self._rpc("GetMemoryBlock", hotplug_pb2.GetMemoryBlockRequest(name=self.name))
        return self.proto

    @property
    def state(self) -> int:
        """The block's current MemoryBlockState (one GetMemoryBlock)."""
        return self.get().state

    def offline(self, pause_after: Union[None, int, str] = None, *, timeout_ms: int = 0,
                pause_ttl_seconds: int = 0, timeout: Optional[float] = None) -> Result:
        """OfflineMemoryBlock (``echo offline > state``). ``pause_after`` is
        None, ``"isolated"``, ``"going-offline"``, ``"migrated"`` or an
        OfflinePhase; ``timeout_ms`` the migration-loop deadline in emulated
        ms (0: the server's 120 s); ``pause_ttl_seconds`` how long a pause may
        be left alone (0: the server's default)."""
        return Result(self._rpc("OfflineMemoryBlock", hotplug_pb2.OfflineMemoryBlockRequest(
            name=self.name, pause_after=_phase(pause_after), timeout_ms=timeout_ms,
            pause_ttl_seconds=pause_ttl_seconds), timeout))

    def resume(self, pause_after: Union[None, int, str] = None, *,
               timeout: Optional[float] = None) -> Result:
        """ResumeOffline of a paused offline, optionally pausing again after
        a later phase."""
        return Result(self._rpc("ResumeOffline", hotplug_pb2.ResumeOfflineRequest(
            name=self.name, pause_after=_phase(pause_after)), timeout))

    def cancel(self) -> Result:
        """CancelOffline of a paused offline (MEM_CANCEL_OFFLINE; EINTR)."""
        return Result(self._rpc("CancelOffline", hotplug_pb2.CancelOfflineRequest(name=self.name)))

    def online(self) -> Result:
        """OnlineMemoryBlock (``echo online > state``)."""
        return Result(self._rpc("OnlineMemoryBlock",
                                hotplug_pb2.OnlineMemoryBlockRequest(name=self.name)))

    def remove(self) -> Result:
        """RemoveMemoryBlock of an OFFLINE block (EBUSY otherwise)."""
        return Result(self._rpc("RemoveMemoryBlock",
                                hotplug_pb2.RemoveMemoryBlockRequest(name=self.name)))

    def kernel_pages(self, count: int, unmovable: bool = False) -> hotplug_pb2.KernelPagesResponse:
        """AllocateKernelPages: ``count`` kernel pages in the block, in an
        unmovable pageblock (isolation fails) or, by default, as non-LRU pages
        of a movable pageblock. Returns ``pages`` and the block after."""
        resp = self._rpc("AllocateKernelPages", hotplug_pb2.AllocateKernelPagesRequest(
            name=self.name, count=count, unmovable=unmovable))
        self.proto = resp.memory_block
        return resp

    def free_kernel_pages(self, count: int) -> hotplug_pb2.KernelPagesResponse:
        """FreeKernelPages: frees up to ``count`` kernel pages of the block."""
        resp = self._rpc("FreeKernelPages", hotplug_pb2.FreeKernelPagesRequest(
            name=self.name, count=count))
        self.proto = resp.memory_block
        return resp


class Process:
    """A handle on ``machines/{machine}/processes/{pid}`` and its syscalls.

    Methods that emulate a syscall return a :class:`Result` (check ``.ok`` /
    ``.errnum``); they raise :class:`MemnodeError` only for unusable requests.
    """

    def __init__(self, client: Client, name: str,
                 proto: Optional[process_pb2.Process] = None) -> None:
        self.client = client
        self.name = name
        self.proto = proto

    @property
    def pid(self) -> int:
        return int(self.name.rsplit("/", 1)[1])

    @property
    def machine_name(self) -> str:
        return self.name.split("/processes/", 1)[0]

    def __repr__(self) -> str:
        return "Process(%r)" % self.name

    def _rpc(self, method: str, request: Any) -> Any:
        return self.client.call(getattr(self.client.processes, method), request)

    # lifecycle -----------------------------------------------------------
    def get(self) -> process_pb2.Process:
        """GetProcess (VMAs, page counts, ksm_registered, ...)."""
        self.proto = self._rpc("GetProcess", process_pb2.GetProcessRequest(name=self.name))
        return self.proto

    def fork(self) -> "Process":
        """fork(2): returns the child."""
        proto = self._rpc("ForkProcess", process_pb2.ForkProcessRequest(name=self.name))
        return Process(self.client, proto.name, proto)

    def exit(self) -> process_pb2.ExitProcessResponse:
        """exit(2): returns the ExitProcessResponse (pages_freed)."""
        return self._rpc("ExitProcess", process_pb2.ExitProcessRequest(name=self.name))

    # address space -------------------------------------------------------
    def mmap(self, length: int, prot: Union[int, str] = "rw", *,
             shared: bool = False, address: int = 0,
             fixed: bool = False) -> Result:
        """mmap(2) of anonymous memory; ``result.address`` is the start."""
        return Result(self._rpc("Mmap", process_pb2.MmapRequest(
            name=self.name, address=address, length=length, prot=_prot(prot),
            shared=shared, fixed=fixed)))

    def munmap(self, address: int, length: int) -> Result:
        """munmap(2)."""
        return Result(self._rpc("Munmap", process_pb2.MunmapRequest(
            name=self.name, address=address, length=length)))

    def mprotect(self, address: int, length: int, prot: Union[int, str]) -> Result:
        """mprotect(2)."""
        return Result(self._rpc("Mprotect", process_pb2.MprotectRequest(
            name=self.name, address=address, length=length, prot=_prot(prot))))

    def madvise(self, address: int, length: int, advice: Union[int, str]) -> Result:
        """madvise(2); ``advice`` is ``"mergeable"``, ``"unmergeable"``,
        ``"dontneed"`` or an ``Advice`` value."""
        return Result(self._rpc("Madvise", process_pb2.MadviseRequest(
            name=self.name, address=address, length=length, advice=_advice(advice))))

    # memory contents -----------------------------------------------------
    def write(self, address: int, data: bytes) -> Result:
        """WriteMemory: stores ``data`` at ``address`` (write faults, COW)."""
        return Result(self._rpc("WriteMemory", process_pb2.WriteMemoryRequest(
            name=self.name, address=address, data=bytes(data))))

    def fill(self, address: int, length: int, *, byte: Optional[int] = None,
             pattern64: Optional[int] = None, seed: Optional[int] = None) -> Result:
        """FillMemory with exactly one of ``byte``, ``pattern64`` or ``seed``
        (splitmix64 random stream, see memnode.digest.random_bytes)."""
        given = [x is not None for x in (byte, pattern64, seed)]
        if sum(given) != 1:
            raise ValueError("give exactly one of byte=, pattern64=, seed=")
        req = process_pb2.FillMemoryRequest(name=self.name, address=address, length=length)
        if byte is not None:
            req.byte_value = byte
        elif pattern64 is not None:
            req.pattern64 = pattern64
        else:
            req.random_seed = seed
        return Result(self._rpc("FillMemory", req))

    def read(self, address: int, length: int) -> Result:
        """ReadMemory (observation only); bytes in ``result.data``."""
        return Result(self._rpc("ReadMemory", process_pb2.ReadMemoryRequest(
            name=self.name, address=address, length=length)))

    def read_bytes(self, address: int, length: int, chunk: int = 256 << 10) -> bytes:
        """Reads a range in several ReadMemory calls of at most ``chunk``
        bytes; raises ``OSError`` carrying the errno if any part fails."""
        out = bytearray()
        addr, end = address, address + length
        while addr < end:
            n = min(chunk, end - addr)
            res = self.read(addr, n)
            if not res.ok:
                raise OSError(res.errnum, "ReadMemory %s at 0x%x" % (res.errno_name, addr))
            out += res.data
            addr += n
        return bytes(out)

    def digest(self, address: int, length: int) -> Result:
        """DigestMemory; hex digest in ``result.digest`` (see memnode.digest)."""
        return Result(self._rpc("DigestMemory", process_pb2.DigestMemoryRequest(
            name=self.name, address=address, length=length)))

    def touch(self, address: int, length: int) -> Result:
        """TouchMemory: read fault on every page of the range."""
        return Result(self._rpc("TouchMemory", process_pb2.TouchMemoryRequest(
            name=self.name, address=address, length=length)))

    def pin(self, address: int, length: int) -> Result:
        """PinPages (get_user_pages); ``result.pages`` pinned."""
        return Result(self._rpc("PinPages", process_pb2.PinPagesRequest(
            name=self.name, address=address, length=length)))

    def unpin(self, address: int, length: int) -> Result:
        """UnpinPages; ``result.pages`` unpinned."""
        return Result(self._rpc("UnpinPages", process_pb2.UnpinPagesRequest(
            name=self.name, address=address, length=length)))

    def translate(self, address: int, pages: int = 1) -> List[process_pb2.PageTranslation]:
        """TranslateAddresses: one PageTranslation per page (pagemap)."""
        resp = self._rpc("TranslateAddresses", process_pb2.TranslateAddressesRequest(
            name=self.name, address=address, pages=pages))
        return list(resp.pages)

    def pfn(self, address: int) -> Optional[int]:
        """The pfn mapped at ``address``, or None when no pte is present."""
        t = self.translate(address, 1)[0]
        return t.pfn if t.present else None

    def rmap_items(self, page_size: int = 0) -> List[ksm_pb2.RmapItem]:
        """ListRmapItems of this process (KSM's view of its pages)."""
        return Ksm(self.client, self.machine_name + "/ksm").rmap_items(self.pid, page_size)

    # NUMA policy and migration --------------------------------------------
    def _numa(self, method: str, request: Any) -> Any:
        return self.client.call(getattr(self.client.numa, method), request)

    def set_mempolicy(self, mode: Union[int, str], nodes: Any = 0) -> Result:
        """set_mempolicy(2): ``mode`` ``"default"``, ``"preferred"``,
        ``"bind"``, ``"interleave"`` or an MPOL_* value; ``nodes`` a mask, a
        list of node ids or a string like ``"0-1"``."""
        return Result(self._numa("SetMempolicy", numa_pb2.SetMempolicyRequest(
            name=self.name, mode=_mode(mode), nodes=node_mask(nodes))))

    def get_mempolicy(self, address: Optional[int] = None, node: bool = False) -> Result:
        """get_mempolicy(2): the task policy, or with ``address`` the policy
        of the VMA there (MPOL_F_ADDR), or with ``node=True`` too the node of
        the page at the address (MPOL_F_NODE, read-faults it in).
        ``result.mode``, ``result.nodes``, ``result.node``."""
        req = numa_pb2.GetMempolicyRequest(name=self.name, node_of_address=node)
        if address is not None:
            req.address = address
        return Result(self._numa("GetMempolicy", req))

    def mbind(self, address: int, length: int, mode: Union[int, str], nodes: Any = 0,
              flags: int = 0, *, strict: bool = False, move: bool = False,
              move_all: bool = False) -> Result:
        """mbind(2) over [address, address+length). ``flags`` MPOL_MF_* bits,
        or the keywords ``strict``/``move``/``move_all``."""
        bits = int(flags)
        bits |= MPOL_MF_STRICT if strict else 0
        bits |= MPOL_MF_MOVE if move else 0
        bits |= MPOL_MF_MOVE_ALL if move_all else 0
        return Result(self._numa("Mbind", numa_pb2.MbindRequest(
            name=self.name, address=address, length=length, mode=_mode(mode),
            nodes=node_mask(nodes), flags=bits)))

    def migrate_pages(self, target: Union[int, "Process"], old_nodes: Any,
                      new_nodes: Any) -> Result:
        """migrate_pages(2) called by this process on ``target`` (a pid, a
        Process, or 0 for itself); ``result.not_migrated`` is the syscall's
        return (KSM pages are neither moved nor counted)."""
        return Result(self._numa("MigratePages", numa_pb2.MigratePagesRequest(
            caller=self.name, pid=_pid(target), old_nodes=node_mask(old_nodes),
            new_nodes=node_mask(new_nodes))))

    def move_pages(self, addresses: Sequence[int], nodes: Optional[Sequence[int]] = None,
                   target: Union[int, "Process"] = 0, flags: int = MPOL_MF_MOVE) -> Result:
        """move_pages(2) called by this process on ``target`` (0: itself).
        Without ``nodes``: query mode. ``result.status`` is a list with, per
        address, the node id or ``-errno`` (``-ENOENT`` for a KSM page)."""
        req = numa_pb2.MovePagesRequest(caller=self.name, pid=_pid(target),
                                        addresses=list(addresses), flags=flags)
        if nodes is not None:
            req.nodes.extend(int(n) for n in nodes)
        return Result(self._numa("MovePages", req))


class Ksm:
    """A handle on ``machines/{machine}/ksm`` (sysfs knobs, ksmd, trees)."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def machine_name(self) -> str:
        return self.name.rsplit("/ksm", 1)[0]

    def __repr__(self) -> str:
        return "Ksm(%r)" % self.name

    def _rpc(self, method: str, request: Any) -> Any:
        return self.client.call(getattr(self.client.ksm, method), request)

    def get(self) -> ksm_pb2.Ksm:
        """GetKsm: knobs and counters."""
        return self._rpc("GetKsm", ksm_pb2.GetKsmRequest(name=self.name))

    def set(self, *, run: Optional[int] = None, pages_to_scan: Optional[int] = None,
            sleep_millisecs: Optional[int] = None, timeout: Optional[float] = None) -> Result:
        """UpdateKsm with the given knobs; ``result.ksm`` is the state after.

        A write of ``run`` waits while an offline holds KSM's lock, until the
        offline ends or the deadline (``timeout`` seconds, default the
        client's) expires: MemnodeError DEADLINE_EXCEEDED."""
        req = ksm_pb2.UpdateKsmRequest(name=self.name)
        if run is not None:
            req.run = run
        if pages_to_scan is not None:
            req.pages_to_scan = pages_to_scan
        if sleep_millisecs is not None:
            req.sleep_millisecs = sleep_millisecs
        return Result(_call_with(self.client.ksm.UpdateKsm, req, self.client, timeout))

    def write_sysfs(self, file: str, value: str, *, timeout: Optional[float] = None) -> Result:
        """WriteKsmSysfs: writes ``value`` as text to /sys/kernel/mm/ksm/``file``
        (a ``run`` write waits for an offline like :meth:`set`)."""
        return Result(_call_with(self.client.ksm.WriteKsmSysfs, ksm_pb2.WriteKsmSysfsRequest(
            name=self.name, file=file, value=value), self.client, timeout))

    def step(self, *, visits: Optional[int] = None, full_scans: Optional[int] = None,
             max_visits: int = 0) -> ksm_pb2.StepKsmResponse:
        """StepKsm: exactly one of ``visits`` (that many ksmd visits) or
        ``full_scans`` (until full_scans has grown by that many passes)."""
        if (visits is None) == (full_scans is None):
            raise ValueError("give exactly one of visits=, full_scans=")
        req = ksm_pb2.StepKsmRequest(name=self.name, max_visits=max_visits)
        if visits is not None:
            req.visits = visits
        else:
            req.full_scans = full_scans
        return self._rpc("StepKsm", req)

    def stable_nodes(self, page_size: int = 0) -> List[ksm_pb2.StableNode]:
        """ListStableNodes, all pages, in tree order."""
        return list(_paginate(
            lambda tok: self._rpc("ListStableNodes", ksm_pb2.ListStableNodesRequest(
                parent=self.name, page_size=page_size, page_token=tok)),
            "stable_nodes"))

    def unstable_items(self, page_size: int = 0) -> List[ksm_pb2.RmapItem]:
        """ListUnstableItems, all pages, in tree order."""
        return list(_paginate(
            lambda tok: self._rpc("ListUnstableItems", ksm_pb2.ListUnstableItemsRequest(
                parent=self.name, page_size=page_size, page_token=tok)),
            "items"))

    def rmap_items(self, pid: int, page_size: int = 0) -> List[ksm_pb2.RmapItem]:
        """ListRmapItems of process ``pid``, all pages, in address order."""
        process = "%s/processes/%d" % (self.machine_name, pid)
        return list(_paginate(
            lambda tok: self._rpc("ListRmapItems", ksm_pb2.ListRmapItemsRequest(
                process=process, page_size=page_size, page_token=tok)),
            "items"))

    def counters(self) -> dict:
        """The five sysfs counters as a dict (handy for assertions)."""
        k = self.get()
        return {
            "pages_shared": k.pages_shared,
            "pages_sharing": k.pages_sharing,
            "pages_unshared": k.pages_unshared,
            "pages_volatile": k.pages_volatile,
            "full_scans": k.full_scans,
        }


__all__ = [
    "Client", "Machine", "Process", "Ksm", "MemoryBlock", "Result", "MemnodeError",
    "node_mask", "PAGE_SIZE", "PROT_NONE", "PROT_READ", "PROT_WRITE",
    "MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE",
    "MPOL_MF_STRICT", "MPOL_MF_MOVE", "MPOL_MF_MOVE_ALL",
    "OFFLINE_PHASE_NONE", "OFFLINE_PHASE_ISOLATED", "OFFLINE_PHASE_GOING_OFFLINE",
    "OFFLINE_PHASE_MIGRATED", "OFFLINE_PHASE_DONE",
    "BLOCK_ONLINE", "BLOCK_GOING_OFFLINE", "BLOCK_OFFLINE", "BLOCK_REMOVED",
    "OK", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "EAGAIN", "ENOMEM",
    "EACCES", "EFAULT", "EBUSY", "ENODEV", "EINVAL", "display_name", "enum_value",
]
