"""Python bindings for librbpf, a userspace eBPF virtual machine.

Pure ctypes, no third-party dependency. The library is found through ``RBPF_LIBRARY``, next to this
package, or on the system's library path.

>>> import rbpf
>>> with rbpf.NoDataVm(rbpf.assemble("mov r0, 3\\nexit")) as vm:
...     vm.execute()
3
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import os
import signal
import struct
import sys
import threading
from collections.abc import MutableMapping
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Type, TypeVar, Union

__all__ = [
    "Vm", "MbuffVm", "FixedMbuffVm", "RawVm", "NoDataVm", "JitFunction", "BytesLike", "Program",
    "assemble", "disassemble", "verify", "version", "library_path", "cbpf_translate",
    "RbpfError", "InvalidArgumentError", "InvalidHandleError", "InvalidProgramError",
    "OutOfBoundsError", "UnknownHelperError", "InstructionLimitError", "CallDepthExceededError",
    "AssemblyError", "NoProgramError", "UnsupportedError", "HelperFailedError",
    "IllegalInstructionError", "ElfError", "OutOfMemoryError", "RunInterruptedError", "InternalError",
    "NotFoundError", "KeyExistsError", "MapFullError", "Map",
    "MAP_HASH", "MAP_ARRAY", "MAP_PROG_ARRAY", "MAP_PERCPU_HASH", "MAP_PERCPU_ARRAY", "MAP_LRU_HASH", "MAP_RINGBUF",
    "ANY", "NOEXIST", "EXIST", "MAX_INSTRUCTIONS",
    "XdpVm", "XdpResult", "CapturedPacket", "read_capture", "write_pcap", "SkbVm", "SkbResult",
    "PROG_SOCKET_FILTER", "PROG_SCHED_CLS", "PROG_SCHED_ACT", "PROG_XDP", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT",
    "MBUFF", "FIXED_MBUFF", "RAW", "NO_DATA",
    "HELPER_KTIME_GETNS", "HELPER_TRACE_PRINTK", "HELPER_GATHER_BYTES", "HELPER_MEMFROB",
    "HELPER_SQRTI", "HELPER_STRCMP", "HELPER_RAND",
]

__version__ = "0.1.0"

# VM kinds (rbpf_vm_kind).
MBUFF, FIXED_MBUFF, RAW, NO_DATA = 0, 1, 2, 3

# Map types (rbpf_map_type, the kernel's numbers) and update flags.
MAP_HASH, MAP_ARRAY, MAP_PROG_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_LRU_HASH, MAP_RINGBUF = 1, 2, 3, 5, 6, 9, 27
ANY, NOEXIST, EXIST = 0, 1, 2

# XDP verdicts (enum xdp_action).
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
_PROG_XDP = 6
PROG_SOCKET_FILTER, PROG_SCHED_CLS, PROG_SCHED_ACT, PROG_XDP = 1, 3, 4, 6

# The longest program a VM takes, in 8-byte slots (RBPF_MAX_INSTRUCTIONS).
MAX_INSTRUCTIONS = 1_000_000

# Standard helper ids (RBPF_HELPER_*).
HELPER_KTIME_GETNS = 5
HELPER_TRACE_PRINTK = 6
HELPER_GATHER_BYTES = 0x70000001
HELPER_MEMFROB = 0x70000002
HELPER_SQRTI = 0x70000003
HELPER_STRCMP = 0x70000004
HELPER_RAND = 0x70000005

_MASK64 = (1 << 64) - 1

# Types of the public API's arguments.
BytesLike = Union[bytes, bytearray, memoryview]
"""Memory a program reads (and writes, when writable): bytes, bytearray, memoryview or any buffer."""
Program = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
"""A program: bytecode, assembly text (str), or the path of a bytecode or ELF file (os.PathLike)."""
_V = TypeVar("_V", bound="Vm")


class RbpfError(Exception):
    """A failure reported by librbpf: ``code`` is the negative RBPF_E_* value, ``message`` the text."""

    code = None

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return "%s (%s)" % (self.message, _error_name(self.code))


class InvalidArgumentError(RbpfError):
    """A NULL pointer, a bad length, an unknown kind, input a kind does not use (RBPF_E_INVALID_ARGUMENT)."""
class InvalidHandleError(RbpfError):
    """The VM was closed or destroyed (RBPF_E_INVALID_HANDLE)."""
class InvalidProgramError(RbpfError):
    """The verifier refused the program, or it is malformed (RBPF_E_INVALID_PROGRAM)."""
class OutOfBoundsError(RbpfError):
    """A load or store outside the memory the program may touch (RBPF_E_OUT_OF_BOUNDS)."""
class UnknownHelperError(RbpfError):
    """A call to a helper that is not registered (RBPF_E_UNKNOWN_HELPER)."""
class InstructionLimitError(RbpfError):
    """The run reached the instruction limit (RBPF_E_INSTRUCTION_LIMIT)."""
class CallDepthExceededError(RbpfError):
    """Local calls nested too deep for the stack (RBPF_E_CALL_DEPTH_EXCEEDED)."""
class AssemblyError(RbpfError):
    """Assembly text that does not assemble; the message names the line and column."""
class NoProgramError(RbpfError):
    """No program is loaded, or it is not JIT-compiled (RBPF_E_NO_PROGRAM)."""
class UnsupportedError(RbpfError):
    """Not available here, such as the JIT on another architecture (RBPF_E_UNSUPPORTED)."""
class HelperFailedError(RbpfError):
    """A helper failed; for a Python helper, its exception is the __cause__ (RBPF_E_HELPER_FAILED)."""
class IllegalInstructionError(RbpfError):
    """An instruction that cannot execute, in an unverified program (RBPF_E_ILLEGAL_INSTRUCTION)."""
class ElfError(RbpfError):
    """An ELF object that cannot be loaded (RBPF_E_ELF_ERROR)."""
class OutOfMemoryError(RbpfError):
    """Memory ran out (RBPF_E_OUT_OF_MEMORY)."""
class RunInterruptedError(RbpfError):
    """The run was stopped by Vm.interrupt() or a signal (RBPF_E_INTERRUPTED). Ctrl-C in the main
    thread raises KeyboardInterrupt instead."""
class NotFoundError(RbpfError, KeyError):
    """A map has no entry for the key (RBPF_E_NOT_FOUND); also a KeyError."""
    def __str__(self) -> str:
        return RbpfError.__str__(self)
class KeyExistsError(RbpfError):
    """A map update with NOEXIST found the key present (RBPF_E_KEY_EXISTS)."""
class MapFullError(RbpfError):
    """A map is full, or an array index is past its end (RBPF_E_MAP_FULL)."""
class InternalError(RbpfError):
    """A bug in librbpf (RBPF_E_INTERNAL): please report it."""


_ERRORS = {
    -1: InvalidArgumentError, -2: InvalidHandleError, -3: InvalidProgramError, -4: OutOfBoundsError,
    -5: UnknownHelperError, -6: InstructionLimitError, -7: CallDepthExceededError, -8: AssemblyError,
    -9: NoProgramError, -10: UnsupportedError, -11: HelperFailedError, -12: IllegalInstructionError,
    -13: ElfError, -14: OutOfMemoryError, -15: RunInterruptedError, -16: NotFoundError, -17: KeyExistsError,
    -18: MapFullError, -99: InternalError,
}

def _unsigned(value, bits, what):
    """``value`` as an unsigned integer of ``bits`` bits, or an error: never silently truncated."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    if value < 0 or value >= 1 << bits:
        raise ValueError("%s must be between 0 and %d, not %d" % (what, (1 << bits) - 1, value))
    return value


_HELPER_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                              ctypes.c_uint64, ctypes.c_uint64)
_VERIFIER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.c_void_p)

_u8p = ctypes.POINTER(ctypes.c_uint8)


def _candidates():
    env = os.environ.get("RBPF_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    names = {"win32": ["rbpf.dll"], "darwin": ["librbpf.dylib"]}.get(sys.platform, ["librbpf.so"])
    for n in names:
        yield os.path.join(here, n)
    found = ctypes.util.find_library("rbpf")
    if found:
        yield found
    for n in names:
        yield n


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append("%s: not found" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    raise ImportError("librbpf not found; set RBPF_LIBRARY to its path (tried: %s)" % "; ".join(errors))


_lib, library_path = _load()


def _declare(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_vm_create = _declare("rbpf_vm_create", ctypes.c_int, ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p))
_vm_create_fixed = _declare("rbpf_vm_create_fixed_mbuff", ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.c_size_t,
                            ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p))
_vm_create_from_elf = _declare("rbpf_vm_create_from_elf", ctypes.c_int, ctypes.c_int, _u8p, ctypes.c_size_t,
                               ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_vm_load_elf = _declare("rbpf_vm_load_elf", ctypes.c_int, ctypes.c_void_p, _u8p, ctypes.c_size_t, ctypes.c_char_p)
_vm_get_data_region = _declare("rbpf_vm_get_data_region", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                               ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_int))
_vm_register_helper_name = _declare("rbpf_vm_register_helper_name", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32,
                                    ctypes.c_char_p, _HELPER_FN)
_vm_set_program = _declare("rbpf_vm_set_program", ctypes.c_int, ctypes.c_void_p, _u8p, ctypes.c_size_t)
_vm_set_program_fixed = _declare("rbpf_vm_set_program_fixed_mbuff", ctypes.c_int, ctypes.c_void_p, _u8p,
                                 ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t)
_vm_get_program = _declare("rbpf_vm_get_program", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_u8p),
                           ctypes.POINTER(ctypes.c_size_t))
_vm_register_helper = _declare("rbpf_vm_register_helper", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, _HELPER_FN)
_vm_register_standard = _declare("rbpf_vm_register_standard_helpers", ctypes.c_int, ctypes.c_void_p)
_vm_set_unwind = _declare("rbpf_vm_set_unwind_helper", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int)
_vm_set_verifier = _declare("rbpf_vm_set_verifier", ctypes.c_int, ctypes.c_void_p, _VERIFIER_FN, ctypes.c_void_p)
_vm_disable_verifier = _declare("rbpf_vm_disable_verifier", ctypes.c_int, ctypes.c_void_p)
_vm_set_limit = _declare("rbpf_vm_set_instruction_limit", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64)
_vm_add_region = _declare("rbpf_vm_add_memory_region", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_size_t, ctypes.c_int)
_vm_clear_regions = _declare("rbpf_vm_clear_memory_regions", ctypes.c_int, ctypes.c_void_p)
_vm_execute = _declare("rbpf_vm_execute", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                       ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64))
_vm_jit_compile = _declare("rbpf_vm_jit_compile", ctypes.c_int, ctypes.c_void_p)
_vm_jit_compile_ex = _declare("rbpf_vm_jit_compile_ex", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
_vm_jit_disassemble = _declare("rbpf_vm_jit_disassemble", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_vm_execute_jit = _declare("rbpf_vm_execute_jit", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64))
_JIT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_uint64))
_vm_jit_function = _declare("rbpf_vm_jit_function", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_vm_destroy = _declare("rbpf_vm_destroy", None, ctypes.c_void_p)
class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("entries", ctypes.c_uint32)]


_RINGBUF_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_map_create = _declare("rbpf_map_create", ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                       ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p))
_map_lookup = _declare("rbpf_map_lookup", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_map_update = _declare("rbpf_map_update", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64)
_map_delete = _declare("rbpf_map_delete", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_map_next_key = _declare("rbpf_map_next_key", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_map_get_info = _declare("rbpf_map_get_info", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_MapInfo))
_map_set_program = _declare("rbpf_map_set_program", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_map_ringbuf_consume = _declare("rbpf_map_ringbuf_consume", ctypes.c_int64, ctypes.c_void_p, _RINGBUF_FN, ctypes.c_void_p)
_map_destroy = _declare("rbpf_map_destroy", None, ctypes.c_void_p)
_vm_bind_map = _declare("rbpf_vm_bind_map", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_vm_get_map = _declare("rbpf_vm_get_map", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_vm_map_names = _declare("rbpf_vm_map_names", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
class _XdpOptions(ctypes.Structure):
    _fields_ = [("headroom", ctypes.c_uint32), ("length", ctypes.c_uint32), ("ingress_ifindex", ctypes.c_uint32),
                ("rx_queue_index", ctypes.c_uint32), ("egress_ifindex", ctypes.c_uint32)]


class _XdpResult(ctypes.Structure):
    _fields_ = [("action", ctypes.c_uint32), ("offset", ctypes.c_uint32), ("length", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32), ("value", ctypes.c_uint64)]


class _Skb(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("protocol", "pkt_type", "mark", "priority", "queue_mapping", "ifindex",
                                                    "ingress_ifindex", "tc_index", "tc_classid", "hash", "vlan_present",
                                                    "vlan_tci")] + [("cb", ctypes.c_uint32 * 5)]


_vm_execute_skb = _declare("rbpf_vm_execute_skb", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.POINTER(_Skb), ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64))
_vm_create_for_type = _declare("rbpf_vm_create_for_type", ctypes.c_int, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p))
_vm_create_kernel_from_elf = _declare("rbpf_vm_create_kernel_from_elf", ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.c_char_p,
                                      ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p))
_vm_execute_xdp = _declare("rbpf_vm_execute_xdp", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.POINTER(_XdpOptions), ctypes.c_uint32, ctypes.POINTER(_XdpResult))
_vm_interrupt = _declare("rbpf_vm_interrupt", ctypes.c_int, ctypes.c_void_p)
_vm_set_interrupt_signal = _declare("rbpf_vm_set_interrupt_signal", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_vm_is_valid = _declare("rbpf_vm_is_valid", ctypes.c_int, ctypes.c_void_p)
_verify = _declare("rbpf_verify", ctypes.c_int, _u8p, ctypes.c_size_t)
_helper_fail = _declare("rbpf_helper_fail", None, ctypes.c_char_p)
_vm_execute_packed = _declare("rbpf_vm_execute_packed", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))
_verifier_reject = _declare("rbpf_verifier_reject", None, ctypes.c_char_p)
_assemble = _declare("rbpf_assemble", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_u8p), ctypes.POINTER(ctypes.c_size_t))
_disassemble = _declare("rbpf_disassemble", ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p))
_cbpf_translate = _declare("rbpf_cbpf_translate", ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.POINTER(_u8p),
                           ctypes.POINTER(ctypes.c_size_t))
_disassemble_ex = _declare("rbpf_disassemble_ex", ctypes.c_int, _u8p, ctypes.c_size_t, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p))
_free = _declare("rbpf_free", None, ctypes.c_void_p)
_last_error = _declare("rbpf_last_error", ctypes.c_char_p)
_last_error_code = _declare("rbpf_last_error_code", ctypes.c_int)
_error_name_fn = _declare("rbpf_error_name", ctypes.c_char_p, ctypes.c_int)
_version = _declare("rbpf_version", ctypes.c_char_p)


def _error_name(code):
    return _error_name_fn(code).decode()


_INTERRUPTED = -15


def _raise_pending_signals(rc):
    """After a run that a signal may have stopped: lets Python run its handlers now, so Ctrl-C
    raises KeyboardInterrupt here. When Python's handler ran already (inside a helper, where
    the KeyboardInterrupt went to sys.unraisablehook below), a run the library says SIGINT stopped
    raises KeyboardInterrupt itself, if SIGINT still means that."""
    if threading.current_thread() is not threading.main_thread():
        return
    ctypes.pythonapi.PyErr_CheckSignals()
    if (rc == _INTERRUPTED and hasattr(signal, "SIGINT")
            and _last_error().endswith(b"(signal %d)" % signal.SIGINT)
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        raise KeyboardInterrupt


# A KeyboardInterrupt can arrive as a Python helper starts, before its own try: ctypes then hands it
# to sys.unraisablehook ("Exception ignored on calling ctypes callback function") and returns 0.
# Helpers' trampolines carry their VM's state: such an exception is kept for the run to raise
# instead of printed. Other objects go to the hook that was installed before.
_previous_unraisablehook = sys.unraisablehook


def _unraisablehook(unraisable):
    state = getattr(unraisable.object, "_rbpf_helper_state", None)
    if state is not None and unraisable.exc_value is not None:
        if getattr(state, "error", None) is None:
            state.error = unraisable.exc_value
        return
    _previous_unraisablehook(unraisable)


sys.unraisablehook = _unraisablehook


def _check(rc):
    if rc < 0:
        message = _last_error().decode("utf-8", "replace")
        raise _ERRORS.get(rc, RbpfError)(rc, message)
    return rc


def _program_buffer(program, elf=False):
    """A ctypes byte array holding a copy of ``program``, and its length. ``program`` is bytes-like,
    an os.PathLike naming a file to read, or a str: assembly text for a program, a file name for an
    ELF object (``elf``), which cannot be text."""
    if isinstance(program, os.PathLike) or (elf and isinstance(program, str)):
        with open(program, "rb") as f:
            data = f.read()
    elif isinstance(program, str):
        data = assemble(program)
    else:
        try:
            if isinstance(program, int):  # bytes(12) would be twelve zero bytes, never what was meant
                raise TypeError()
            data = bytes(program)
        except TypeError:
            raise TypeError("expected %s, not %s" % (
                "an ELF object (bytes-like) or its path (str or os.PathLike)" if elf else
                "bytecode (bytes-like), assembly text (str) or a bytecode file (os.PathLike)",
                type(program).__name__)) from None
    if not elf and data[:4] == b"\x7fELF":
        raise InvalidProgramError(-3, "this is an ELF object, not bytecode: use from_elf() or load_elf()")
    return (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data.ljust(1, b"\0")), len(data)


def _memory(obj):
    """(pointer, length, keepalive) for input memory. Writable buffers (bytearray, writable
    memoryview, ctypes arrays) are passed in place so the program's stores are visible; read-only
    ones (bytes) are copied."""
    if obj is None:
        return None, 0, None
    view = memoryview(obj)
    if not view.contiguous:
        raise InvalidArgumentError(-1, "memory must be a contiguous buffer")
    view = view.cast("B")
    n = view.nbytes
    if n == 0:
        return None, 0, None
    if view.readonly:
        copy = (ctypes.c_uint8 * n).from_buffer_copy(view)
        return ctypes.cast(copy, ctypes.c_void_p), n, copy
    arr = (ctypes.c_uint8 * n).from_buffer(view)
    return ctypes.cast(arr, ctypes.c_void_p), n, (arr, view)


def version() -> str:
    """Version string of the loaded library."""
    return _version().decode()


def assemble(source: str) -> bytes:
    """Assembles eBPF assembly text into bytecode: rbpf's syntax (``mov r0, 1``), the
    bpf_conformance suite's (``%r0``) or LLVM's (``r0 = 1``, as clang -S and llvm-objdump print it),
    line by line."""
    if not isinstance(source, str):
        raise TypeError("source must be a str")
    out = _u8p()
    n = ctypes.c_size_t()
    _check(_assemble(source.encode("utf-8"), ctypes.byref(out), ctypes.byref(n)))
    try:
        return ctypes.string_at(out, n.value)
    finally:
        _free(out)


def disassemble(program: Program, syntax: str = "rbpf", labels: bool = False) -> str:
    """Disassembles bytecode into text that assemble() turns back into the same bytes.
    ``syntax`` is "rbpf" (``add64 r1, 0x5``) or "llvm" (``r1 += 0x5``, as llvm-objdump prints);
    ``labels`` labels every jump and call target (``L7:``) and names it in the jumps."""
    if syntax not in ("rbpf", "llvm"):
        raise ValueError("syntax must be 'rbpf' or 'llvm', not %r" % (syntax,))
    flags = (1 if syntax == "llvm" else 0) | (2 if labels else 0)
    buf, n = _program_buffer(program)
    out = ctypes.c_void_p()
    _check(_disassemble_ex(buf, n, flags, ctypes.byref(out)))
    try:
        return ctypes.string_at(out).decode("utf-8")
    finally:
        _free(out)


def cbpf_translate(program: Union[BytesLike, str, Iterable[Tuple[int, int, int, int]]]) -> bytes:
    """Translates a classic BPF program into eBPF for a RawVm, which returns what libpcap's
    bpf_filter() returns. ``program`` is the instructions' bytes (8 each: code u16, jt, jf, k u32,
    host byte order), tcpdump's ``-dd`` or ``-ddd`` text, or (code, jt, jf, k) tuples.

    >>> vm = rbpf.RawVm(rbpf.cbpf_translate("{ 0x6, 0, 0, 0x00040000 },"))   # accept everything
    """
    if isinstance(program, str):
        program = _parse_cbpf(program)
    if not isinstance(program, (bytes, bytearray, memoryview)):
        out = bytearray()
        for code, jt, jf, k in program:
            out += _unsigned(code, 16, "code").to_bytes(2, "little") + bytes([_unsigned(jt, 8, "jt"), _unsigned(jf, 8, "jf")])
            out += _unsigned(k, 32, "k").to_bytes(4, "little")
        program = bytes(out)
    data = bytes(program)
    buf = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data or b"\0")
    prog = _u8p()
    n = ctypes.c_size_t()
    _check(_cbpf_translate(buf, len(data), ctypes.byref(prog), ctypes.byref(n)))
    try:
        return ctypes.string_at(prog, n.value)
    finally:
        _free(prog)


def _parse_cbpf(text: str) -> List[Tuple[int, int, int, int]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("{"):
        rows = [line.rstrip(",").strip("{} ").split(",") for line in lines]
    elif lines and lines[0].isdigit():
        rows = [line.split() for line in lines[1:]]
        if int(lines[0]) != len(rows):
            raise InvalidProgramError(-3, "classic BPF: line 1 says %s instructions, %d follow" % (lines[0], len(rows)))
    else:
        raise InvalidProgramError(-3, "classic BPF: expected tcpdump -dd ({ code, jt, jf, k }) or -ddd output")
    result = []
    for number, row in enumerate(rows, 1):
        if len(row) != 4:
            raise InvalidProgramError(-3, "classic BPF: line %d: expected 4 numbers" % number)
        code, jt, jf, k = (int(v.strip(), 0) for v in row)
        result.append((code, jt, jf, k))
    return result


def verify(program: Program) -> None:
    """Runs the default verifier; raises InvalidProgramError when it rejects the program."""
    buf, n = _program_buffer(program)
    _check(_verify(buf, n))


_C = TypeVar("_C", bound="_Closable")


class _Closable:
    """What a handle's owner shares: a with block, and garbage collection, end in ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Vm(_Closable):
    """An eBPF VM. Use one of the kinds (MbuffVm, FixedMbuffVm, RawVm, NoDataVm), preferably as a
    context manager; ``close()`` releases it and later calls raise InvalidHandleError."""

    kind = None

    def _init_state(self):
        self._handle = None
        self._helpers = {}
        self._verifier = None
        self._regions = []
        self._helper_error = threading.local()

    def __init__(self, kind: int, program: Optional[Program] = None) -> None:
        self._init_state()
        handle = ctypes.c_void_p()
        if program is None:
            _check(_vm_create(kind, None, 0, ctypes.byref(handle)))
        else:
            buf, n = _program_buffer(program)
            _check(_vm_create(kind, buf, n, ctypes.byref(handle)))
        self._handle = handle
        self._interrupt_on_sigint()

    def _interrupt_on_sigint(self):
        # Ctrl-C stops a run in progress (Linux; elsewhere RBPF_E_UNSUPPORTED is ignored): the library's
        # SIGINT handler interrupts the run, then hands the signal on to Python's.
        if hasattr(signal, "SIGINT"):
            _vm_set_interrupt_signal(self._handle, signal.SIGINT)

    # -- lifetime --
    def close(self) -> None:
        """Destroys the VM. Safe to call twice."""
        if self._handle is not None and self._handle.value:
            _vm_destroy(self._handle)
        self._handle = None

    @property
    def _h(self):
        if self._handle is None:
            raise InvalidHandleError(-2, "the VM is closed")
        return self._handle

    @property
    def closed(self) -> bool:
        """Whether the VM was closed (its handle is no longer valid)."""
        return self._handle is None or not _vm_is_valid(self._handle)

    # -- program --
    def set_program(self, program: Program) -> None:
        """Verifies and loads ``program`` (bytecode, assembly text or a bytecode file's path),
        replacing the loaded one; InvalidProgramError when the verifier refuses it."""
        buf, n = _program_buffer(program)
        _check(_vm_set_program(self._h, buf, n))

    @property
    def program(self) -> Optional[bytes]:
        """The loaded program's bytes."""
        out = _u8p()
        n = ctypes.c_size_t()
        _check(_vm_get_program(self._h, ctypes.byref(out), ctypes.byref(n)))
        try:
            return ctypes.string_at(out, n.value)
        finally:
            _free(out)

    def set_verifier(self, verifier: Optional[Callable[[bytes], object]]) -> None:
        """Replaces the verifier with a callable taking the program bytes and returning True to accept
        (False, or raising, rejects: the exception's message goes into the InvalidProgramError); None
        restores the default. The loaded program is checked again."""
        if verifier is None:
            _check(_vm_set_verifier(self._h, _VERIFIER_FN(), None))
            self._verifier = None
            return

        def trampoline(ptr, length, _user):
            try:
                return 0 if verifier(ctypes.string_at(ptr, length)) else 1
            except Exception as exc:  # its message becomes the error's
                _verifier_reject(str(exc).encode("utf-8", "replace") or repr(exc).encode("utf-8", "replace"))
                return 1

        fn = _VERIFIER_FN(trampoline)
        _check(_vm_set_verifier(self._h, fn, None))
        self._verifier = fn

    def disable_verifier(self) -> None:
        """Loads programs without verifying them (the engines still refuse, when running, any
        instruction that cannot execute)."""
        _check(_vm_disable_verifier(self._h))

    # -- helpers --
    def interrupt(self) -> None:
        """Stops every run of this VM in progress, on any thread, soon: each raises
        RunInterruptedError at its next loop head or function entry (compiled code of a raw VM skips
        the check in loops that go round at most once per input byte, which end by themselves). A
        run that begins afterwards is not affected. Safe to call from any thread (for example a watchdog timer). Ctrl-C does the
        same for runs in the main thread (execute, execute_jit, execute_many, count_verdicts; not a
        JitFunction) and then raises KeyboardInterrupt."""
        rc = _vm_interrupt(self._h)
        if rc < 0:
            raise InvalidHandleError(rc, "the VM was destroyed")

    def register_helper(self, key: int, function: Callable[[int, int, int, int, int], int], name: Optional[str] = None) -> None:
        """Registers a Python callable ``f(r1, r2, r3, r4, r5) -> int`` as helper ``key`` (and under
        ``name``, for ELF objects that call an undefined function of that name). If it raises, the
        run ends right after the call and execute() raises HelperFailedError, chained to the
        helper's exception."""
        key = _unsigned(key, 32, "helper key")
        if not callable(function):
            raise TypeError("helper must be callable")
        state = self._helper_error

        def trampoline(a, b, c, d, e):
            try:
                return int(function(a, b, c, d, e)) & _MASK64
            except BaseException as exc:  # never let an exception cross into C
                if getattr(state, "error", None) is None:
                    state.error = exc
                # End the run right after this call (the engine checks after each helper).
                _helper_fail(("a Python helper raised %r" % (exc,)).encode("utf-8", "replace"))
                return 0

        trampoline._rbpf_helper_state = state
        fn = _HELPER_FN(trampoline)
        if name is None:
            _check(_vm_register_helper(self._h, key, fn))
        else:
            _check(_vm_register_helper_name(self._h, key, name.encode("utf-8"), fn))
        self._helpers[key] = fn

    def register_standard_helpers(self) -> None:
        """Registers rbpf's helpers (bpf_ktime_getns, bpf_trace_printk, gather_bytes, memfrob, sqrti,
        strcmp, rand) under their ids (the HELPER_* constants)."""
        _check(_vm_register_standard(self._h))

    def set_unwind_helper(self, key: int) -> None:
        """Makes helper ``key`` end the program with r0 = 0 when it returns 0; None clears it."""
        _check(_vm_set_unwind(self._h, 0 if key is None else _unsigned(key, 32, "helper key"), 0 if key is None else 1))

    # -- ELF objects --
    @classmethod
    def from_elf(cls: Type[_V], elf: Program, section: Optional[str] = None, kind: Optional[int] = None) -> _V:
        """Creates a VM from an ELF object as clang -target bpf writes it (bytes, or its path as str
        or os.PathLike); ``section`` names the program's section or function (default: the first
        code section other than .text).
        On a kind class (RawVm.from_elf) the kind is the class's; on Vm pass ``kind``."""
        kind = cls.kind if kind is None else kind
        if kind is None:
            raise InvalidArgumentError(-1, "give the VM kind")
        vm = cls.__new__(cls)
        Vm._init_state(vm)
        buf, n = _program_buffer(elf, elf=True)
        handle = ctypes.c_void_p()
        _check(_vm_create_from_elf(kind, buf, n, None if section is None else section.encode("utf-8"), ctypes.byref(handle)))
        vm._handle = handle
        vm._interrupt_on_sigint()
        return vm

    def load_elf(self, elf: Program, section: Optional[str] = None) -> None:
        """Loads a program from an ELF object into this VM (register helpers by name first)."""
        buf, n = _program_buffer(elf, elf=True)
        _check(_vm_load_elf(self._h, buf, n, None if section is None else section.encode("utf-8")))

    @property
    def data_regions(self) -> List[Tuple[str, int, int, bool]]:
        """The global-data regions of the loaded ELF object: a list of (name, address, length, writable)."""
        regions = []
        index = 0
        while True:
            name = ctypes.c_char_p()
            addr = ctypes.c_void_p()
            length = ctypes.c_size_t()
            writable = ctypes.c_int()
            rc = _vm_get_data_region(self._h, index, ctypes.byref(name), ctypes.byref(addr), ctypes.byref(length),
                                     ctypes.byref(writable))
            if rc == -1 or rc == -9:  # past the last region, or no ELF object
                return regions
            _check(rc)
            regions.append((name.value.decode("utf-8"), addr.value, length.value, bool(writable.value)))
            index += 1

    # -- limits and memory --
    @property
    def instruction_limit(self) -> int:
        """Most instructions one run may execute (0: no limit, the default); a run that would go
        past it raises InstructionLimitError. An int from 0 to 2**64 - 1. Both engines charge it a
        basic block at a time (a straight run up to a jump, call or exit): a block that would go
        past the limit does not start, and the error names its first instruction. Setting a limit
        where there was none (or removing it) discards compiled code: jit_compile() again."""
        return getattr(self, "_limit", 0)

    @instruction_limit.setter
    def instruction_limit(self, value: int) -> None:
        value = _unsigned(value, 64, "instruction_limit")
        _check(_vm_set_limit(self._h, value))
        self._limit = value

    def add_memory_region(self, buffer: BytesLike, writable: bool = False) -> Tuple[int, int]:
        """Lets the program touch ``buffer`` (a writable buffer such as bytearray, kept alive by the
        VM until clear_memory_regions). Returns (index, address)."""
        ptr, n, keep = _memory(buffer)
        if ptr is None:
            raise InvalidArgumentError(-1, "region is empty")
        if writable and memoryview(buffer).readonly:
            raise InvalidArgumentError(-1, "a writable region needs a writable buffer")
        index = _check(_vm_add_region(self._h, ptr, n, 1 if writable else 0))
        self._regions.append(keep)
        return index, ptr.value

    def clear_memory_regions(self) -> None:
        """Removes every region added with add_memory_region()."""
        _check(_vm_clear_regions(self._h))
        self._regions = []

    # -- maps --
    def bind_map(self, fd: int, map: Optional[Map]) -> None:
        """Binds ``map`` to file descriptor ``fd``: the program loads it with ``lddw rN, map FD``
        and passes it to the kernel's map helpers (registered where free: lookup 1, update 2,
        delete 3, tail call 12, ring buffer 130-134, ...). None unbinds the fd."""
        _check(_vm_bind_map(self._h, _unsigned(fd, 32, "fd"), None if map is None else map._h))
        self._bound = getattr(self, "_bound", {})
        self._bound[fd] = map

    def get_map(self, name: str) -> Map:
        """The map the loaded ELF object declared under ``name`` (NotFoundError lists the names)."""
        handle = ctypes.c_void_p()
        _check(_vm_get_map(self._h, name.encode("utf-8"), ctypes.byref(handle)))
        return Map._wrap(handle)

    @property
    def maps(self) -> Dict[str, Map]:
        """The maps the loaded ELF object declared, by name."""
        out = ctypes.c_void_p()
        _check(_vm_map_names(self._h, ctypes.byref(out)))
        try:
            names = ctypes.string_at(out).decode("utf-8").split("\n")
        finally:
            _free(out)
        return {n: self.get_map(n) for n in names if n}

    # -- running --
    def _finish(self, rc: int) -> None:
        """After a call into the library that ran the program: raises what the run ended with (a
        Python helper's exception chained to HelperFailedError, KeyboardInterrupt for Ctrl-C, or
        the library's error), and clears the helper state for the next run."""
        helper_error = self._helper_error.error
        self._helper_error.error = None
        if rc == _INTERRUPTED or isinstance(helper_error, KeyboardInterrupt):
            _raise_pending_signals(rc)
        if helper_error is not None and not isinstance(helper_error, Exception):
            raise helper_error  # KeyboardInterrupt, SystemExit: as they are
        if helper_error is not None:
            message = _last_error().decode("utf-8", "replace") if rc == -11 else "a Python helper raised %r" % (helper_error,)
            raise HelperFailedError(-11, message) from helper_error
        _check(rc)

    def _run(self, fn, mem, mbuff):
        mp, mn, keep1 = _memory(mem)
        bp, bn, keep2 = _memory(mbuff)
        result = ctypes.c_uint64()
        self._helper_error.error = None
        rc = fn(self._h, mp, mn, bp, bn, ctypes.byref(result))
        del keep1, keep2
        self._finish(rc)
        return result.value

    def execute(self, mem: Optional[BytesLike] = None, mbuff: Optional[BytesLike] = None) -> int:
        """Interprets the program on ``mem`` (and ``mbuff`` for MbuffVm): bytes-like objects; stores
        go through to writable ones. Returns r0. Input the VM's kind does not use (``mem`` for a
        NoDataVm, ``mbuff`` for any VM but an MbuffVm) raises InvalidArgumentError."""
        return self._run(_vm_execute, mem, mbuff)

    def _run_packed(self, buffers, jit, results, counts, ncounts):
        # The inputs back to back in one buffer (a copy: the program's stores do not reach the
        # originals) and their lengths: one call, and no per-input work in Python but a join.
        items = buffers if isinstance(buffers, (list, tuple)) else list(buffers)
        data = bytearray(b"".join(items))
        lengths = array.array("Q" if ctypes.sizeof(ctypes.c_size_t) == 8 else "I", map(len, items))
        data_ptr = (ctypes.c_char * max(len(data), 1)).from_buffer(data) if data else None
        len_ptr = (ctypes.c_char * max(len(lengths) * lengths.itemsize, 1)).from_buffer(lengths) if lengths else None
        done = ctypes.c_size_t()
        self._helper_error.error = None
        rc = _vm_execute_packed(self._h, data_ptr, len_ptr, len(items), 1 if jit else 0, results, counts, ncounts, ctypes.byref(done))
        self._finish(rc)
        return len(items)

    def execute_many(self, buffers: Iterable[BytesLike], jit: bool = False) -> List[int]:
        """Runs the program once per buffer (each as ``mem``; bytes-like) in one call into the
        library, and returns the list of r0 values: for many packets, far cheaper than calling
        execute() for each. The buffers are copied: stores the program makes do not reach them.
        ``jit`` runs the compiled code (jit_compile() first). The first failing run raises its
        error, its message naming the buffer."""
        items = buffers if isinstance(buffers, (list, tuple)) else list(buffers)
        results = array.array("Q", bytes(8 * len(items)))
        out = (ctypes.c_char * max(len(results) * 8, 1)).from_buffer(results) if items else None
        self._run_packed(items, jit, out, None, 0)
        return results.tolist()

    def count_verdicts(self, buffers: Iterable[BytesLike], n: int, jit: bool = False) -> List[int]:
        """As execute_many(), but counts the results: a list of ``n`` counts where index v counts the
        runs that returned v, and the last one also every result of ``n - 1`` or more."""
        n = _unsigned(n, 32, "n")
        if n == 0:
            raise ValueError("n must be at least 1")
        counts = (ctypes.c_uint64 * n)()
        self._run_packed(buffers, jit, None, counts, n)
        return list(counts)

    def jit_compile(self, unchecked: bool = False, blind_constants: bool = False, interruptible: bool = True) -> None:
        """Compiles the program to machine code, x86-64 or AArch64 (register helpers first). ``unchecked`` drops the
        memory checks (trusted programs only); ``blind_constants`` blinds immediates;
        ``interruptible=False`` drops the checks that let interrupt() and Ctrl-C stop a run (the
        tightest loops run up to a fifth faster; only the instruction limit can stop them then)."""
        flags = (1 if unchecked else 0) | (2 if blind_constants else 0) | (0 if interruptible else 4)
        _check(_vm_jit_compile_ex(self._h, flags) if flags else _vm_jit_compile(self._h))

    def execute_jit(self, mem: Optional[BytesLike] = None, mbuff: Optional[BytesLike] = None) -> int:
        """Runs the JIT-compiled program, like execute()."""
        return self._run(_vm_execute_jit, mem, mbuff)

    def jit_function(self) -> JitFunction:
        """The compiled program as a bare native function (rbpf_vm_jit_function): a JitFunction
        whose ``address`` can go to other native code (valid until the VM is closed or its code
        discarded or recompiled), and which Python can call like execute_jit() (after that, the
        call raises NoProgramError instead)."""
        out = ctypes.c_void_p()
        _check(_vm_jit_function(self._h, ctypes.byref(out)))
        return JitFunction(self, out.value)

    def jit_disassembly(self) -> str:
        """The generated machine code (x86-64 or AArch64) as text."""
        out = ctypes.c_void_p()
        _check(_vm_jit_disassemble(self._h, ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode("utf-8")
        finally:
            _free(out)


class Map(_Closable, MutableMapping):
    """A map shared by the host and programs (rbpf_map): a mutable mapping of keys to values.

    Keys and values are bytes of the map's ``key_size`` and ``value_size``; an int is accepted
    where one is expected and taken as that many little-endian bytes. ``m[key]`` raises
    ``NotFoundError`` (a ``KeyError``) for a missing key, ``del m[key]`` likewise, iteration gives
    the keys. ``Map(MAP_HASH, 4, 8, 1024)`` creates one; ``vm.get_map(name)`` gives one an ELF
    object declared, and ``vm.bind_map(fd, m)`` lets a program use it (``lddw rN, map FD``)."""

    def __init__(self, type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> None:
        handle = ctypes.c_void_p()
        _check(_map_create(_unsigned(type, 32, "type"), _unsigned(key_size, 32, "key_size"),
                           _unsigned(value_size, 32, "value_size"), _unsigned(max_entries, 32, "max_entries"),
                           _unsigned(flags, 32, "flags"), ctypes.byref(handle)))
        self._handle = handle
        self._owned = True
        self._load_info()

    @classmethod
    def _wrap(cls, handle: ctypes.c_void_p) -> "Map":
        m = cls.__new__(cls)
        m._handle = handle
        m._owned = False  # the map's handle is shared: a VM's ELF maps stay usable through others
        m._load_info()
        return m

    def _load_info(self) -> None:
        info = _MapInfo()
        _check(_map_get_info(self._h, ctypes.byref(info)))
        self.type, self.key_size, self.value_size = info.type, info.key_size, info.value_size
        self.max_entries, self.flags = info.max_entries, info.flags

    @property
    def _h(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise InvalidHandleError(-2, "the map is closed")
        return self._handle

    def close(self) -> None:
        """Releases the handle (the map lives on while a VM uses it). Safe to call twice."""
        if self._handle is not None and self._owned:
            _map_destroy(self._handle)
        self._handle = None

    def _bytes(self, value: Union[BytesLike, int], size: int, what: str) -> "ctypes.Array[ctypes.c_char]":
        if isinstance(value, int):
            if value < 0 or value >= 1 << (8 * size):
                raise OverflowError("%s %d does not fit in %d bytes" % (what, value, size))
            data = value.to_bytes(size, "little")
        else:
            data = bytes(value)
            if len(data) != size:
                raise ValueError("%s is %d bytes, the map's are %d" % (what, len(data), size))
        return ctypes.create_string_buffer(data, max(size, 1))

    def __getitem__(self, key: Union[BytesLike, int]) -> bytes:
        out = ctypes.create_string_buffer(max(self.value_size, 1))
        rc = _map_lookup(self._h, self._bytes(key, self.key_size, "key"), out)
        if rc == -16:
            raise NotFoundError(rc, _last_error().decode("utf-8", "replace"))
        _check(rc)
        return out.raw[:self.value_size]

    def __setitem__(self, key: Union[BytesLike, int], value: Union[BytesLike, int]) -> None:
        self.set(key, value, ANY)

    def set(self, key: Union[BytesLike, int], value: Union[BytesLike, int], flags: int = 0) -> None:
        """Sets a value: ``ANY`` (create or replace), ``NOEXIST`` (create only: ``KeyExistsError``)
        or ``EXIST`` (replace only: ``NotFoundError``). A full hash map raises ``MapFullError``."""
        _check(_map_update(self._h, self._bytes(key, self.key_size, "key"), self._bytes(value, self.value_size, "value"),
                           _unsigned(flags, 64, "flags")))

    def __delitem__(self, key: Union[BytesLike, int]) -> None:
        _check(_map_delete(self._h, self._bytes(key, self.key_size, "key")))

    def __iter__(self) -> Iterator[bytes]:
        key = None
        nxt = ctypes.create_string_buffer(max(self.key_size, 1))
        for _ in range(self.max_entries + 1):
            rc = _map_next_key(self._h, key, nxt)
            if rc == -16:
                return
            _check(rc)
            value = nxt.raw[:self.key_size]
            yield value
            key = ctypes.create_string_buffer(value, max(self.key_size, 1))

    def __len__(self) -> int:
        info = _MapInfo()
        _check(_map_get_info(self._h, ctypes.byref(info)))
        return info.entries

    def to_dict(self) -> Dict[int, int]:
        """The entries with keys and values read as little-endian unsigned ints."""
        return {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in self.items()}

    def set_program(self, index: int, vm: Optional["Vm"]) -> None:
        """Program arrays: puts ``vm`` at ``index`` (None clears it) for ``bpf_tail_call``."""
        _check(_map_set_program(self._h, _unsigned(index, 32, "index"), None if vm is None else vm._h))
        if vm is not None:
            self._programs = getattr(self, "_programs", {})
            self._programs[index] = vm  # kept alive while it is in the array

    def consume(self, callback: Callable[[bytes], Optional[int]]) -> int:
        """Ring buffers: calls ``callback(record)`` for each submitted record, in order, and frees
        them; a callback returning a non-zero int stops there. Returns how many records it got."""
        errors: List[BaseException] = []

        def trampoline(_ctx, data, length):
            try:
                result = callback(ctypes.string_at(data, length))
                return int(result) if result else 0
            except BaseException as exc:  # never across C
                errors.append(exc)
                return -1

        fn = _RINGBUF_FN(trampoline)
        rc = _map_ringbuf_consume(self._h, fn, None)
        if errors:
            raise errors[0]
        if rc < 0:
            _check(int(rc))
        return int(rc)


def _kernel_from_elf(cls, elf, section, prog_type):
    """A VM of class ``cls`` for the kernel program in ``section`` of an ELF object (type 0: from the section's name)."""
    vm = cls.__new__(cls)
    Vm._init_state(vm)
    buf, n = _program_buffer(elf, elf=True)
    handle = ctypes.c_void_p()
    _check(_vm_create_kernel_from_elf(buf, n, None if section is None else section.encode("utf-8"), prog_type,
                                      ctypes.byref(handle)))
    vm._handle = handle
    vm._interrupt_on_sigint()
    return vm


class XdpResult(NamedTuple):
    """An XDP run's outcome: the verdict (XDP_*), r0, and where the frame is in the buffer now."""
    action: int
    value: int
    offset: int
    length: int


class XdpVm(Vm):
    """An XDP program written as for the kernel: r1 is a ``struct xdp_md``, whose accesses the
    loader rewrites as the kernel's verifier does (refusing what it refuses). Load it from an ELF
    object with ``XdpVm.from_elf(path, section)`` or give bytecode; run it with ``run()``."""

    kind = MBUFF

    def __init__(self, program: Optional[Program] = None) -> None:
        self._init_state()
        handle = ctypes.c_void_p()
        _check(_vm_create_for_type(_PROG_XDP, ctypes.byref(handle)))
        self._handle = handle
        self._interrupt_on_sigint()
        if program is not None:
            self.set_program(program)

    @classmethod
    def from_elf(cls, elf: Program, section: Optional[str] = None, kind: Optional[int] = None) -> "XdpVm":  # type: ignore[override]
        """Loads the XDP program in ``section`` (a section or function name) of an ELF object."""
        return _kernel_from_elf(cls, elf, section, _PROG_XDP)

    def run(self, buffer: bytearray, headroom: int = 0, length: Optional[int] = None, ingress_ifindex: int = 1,
            rx_queue_index: int = 0, egress_ifindex: int = 0, jit: bool = False) -> XdpResult:
        """Runs the program on the frame at ``headroom`` in ``buffer`` (a writable buffer the program
        may rewrite; ``length`` None: the rest of it). Returns the verdict and where the frame is now."""
        ptr, n, keep = _memory(buffer)
        if memoryview(buffer).readonly:
            raise TypeError("the buffer must be writable (a bytearray): XDP programs may rewrite the frame")
        opts = _XdpOptions(_unsigned(headroom, 32, "headroom"), 0xffffffff if length is None else _unsigned(length, 32, "length"),
                           _unsigned(ingress_ifindex, 32, "ingress_ifindex"), _unsigned(rx_queue_index, 32, "rx_queue_index"),
                           _unsigned(egress_ifindex, 32, "egress_ifindex"))
        result = _XdpResult()
        self._helper_error.error = None
        rc = _vm_execute_xdp(self._h, ptr, n, ctypes.byref(opts), 1 if jit else 0, ctypes.byref(result))
        del keep
        self._finish(rc)
        return XdpResult(result.action, result.value, result.offset, result.length)

    def run_capture(self, packets: Iterable[CapturedPacket], headroom: int = 256,
                    jit: bool = False) -> List[Tuple[XdpResult, bytes]]:
        """Runs the program on each packet (from read_capture()) with ``headroom`` bytes before it,
        and returns each verdict with the frame as the program left it."""
        out = []
        for p in packets:
            buffer = bytearray(headroom) + bytearray(p.data)
            r = self.run(buffer, headroom=headroom, jit=jit)
            out.append((r, bytes(buffer[r.offset:r.offset + r.length])))
        return out


class SkbResult(NamedTuple):
    """A tc or socket filter run: r0 (TC_ACT_*, or the bytes a socket filter keeps) and the
    __sk_buff fields the program may set."""
    value: int
    mark: int
    priority: int
    tc_classid: int
    tc_index: int
    queue_mapping: int
    cb: Tuple[int, int, int, int, int]


class SkbVm(Vm):
    """A tc classifier or action, or a socket filter, written as for the kernel: r1 is a
    ``struct __sk_buff``, whose accesses the loader checks and rewrites as the kernel's verifier
    does. ``SkbVm.from_elf(path, section)`` takes the type from the section (``tc``, ``classifier``,
    ``socket``); ``SkbVm(PROG_SCHED_CLS, program)`` gives it."""

    kind = MBUFF

    def __init__(self, type: int = 3, program: Optional[Program] = None) -> None:
        self._init_state()
        handle = ctypes.c_void_p()
        _check(_vm_create_for_type(_unsigned(type, 32, "type"), ctypes.byref(handle)))
        self._handle = handle
        self._interrupt_on_sigint()
        if program is not None:
            self.set_program(program)

    @classmethod
    def from_elf(cls, elf: Program, section: Optional[str] = None, kind: Optional[int] = None) -> "SkbVm":  # type: ignore[override]
        """Loads the program in ``section`` (a section or function name) of an ELF object; its type
        comes from the section's name."""
        return _kernel_from_elf(cls, elf, section, 0)

    def run(self, frame: BytesLike, protocol: int = 0, mark: int = 0, priority: int = 0, ifindex: int = 1,
            cb: Iterable[int] = (), jit: bool = False) -> SkbResult:
        """Runs the program on an Ethernet frame with the given sk_buff metadata (``protocol`` 0: the
        frame's EtherType) and returns r0 with the fields the program set."""
        ptr, n, keep = _memory(frame)
        skb = _Skb()
        skb.protocol, skb.mark = _unsigned(protocol, 32, "protocol"), _unsigned(mark, 32, "mark")
        skb.priority, skb.ifindex, skb.ingress_ifindex = _unsigned(priority, 32, "priority"), _unsigned(ifindex, 32, "ifindex"), 1
        for k, v in enumerate(list(cb)[:5]):
            skb.cb[k] = _unsigned(v, 32, "cb")
        result = ctypes.c_uint64()
        self._helper_error.error = None
        rc = _vm_execute_skb(self._h, ptr, n, ctypes.byref(skb), 1 if jit else 0, ctypes.byref(result))
        del keep
        self._finish(rc)
        return SkbResult(result.value, skb.mark, skb.priority, skb.tc_classid, skb.tc_index, skb.queue_mapping, tuple(skb.cb))


class CapturedPacket(NamedTuple):
    """One packet of a capture: the bytes captured, its length on the wire, its time in nanoseconds."""
    data: bytes
    original_length: int
    timestamp: int


def read_capture(source: Union[str, "os.PathLike[str]", BytesLike]) -> Tuple[int, List[CapturedPacket]]:
    """Reads a pcap or pcapng capture (a path, or its bytes): its link type (1: Ethernet) and its
    packets. A damaged file raises InvalidArgumentError saying where."""
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(os.fspath(source), "rb").read()

    def bad(message):
        return InvalidArgumentError(-1, "capture: " + message)

    if len(data) < 4:
        raise bad("%d bytes is too short for a pcap or pcapng file" % len(data))
    packets = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        order, links, link, at = "<", [], 1, 0
        while at < len(data):
            if len(data) - at < 12:
                raise bad("block at byte %d is cut short" % at)
            if data[at:at + 4] == b"\x0a\x0d\x0d\x0a":
                bom = data[at + 8:at + 12]
                order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else None
                if order is None:
                    raise bad("section header at byte %d has a bad byte-order magic" % at)
                links = []
            kind, length = struct.unpack_from(order + "II", data, at)
            if length < 12 or length % 4 or length > len(data) - at:
                raise bad("block at byte %d has a bad length %d" % (at, length))
            body, end = at + 8, at + length - 4
            if kind == 1:
                if end - body < 8:
                    raise bad("interface block at byte %d is cut short" % at)
                links.append(struct.unpack_from(order + "H", data, body)[0])
                link = links[0]
            elif kind == 6:
                if end - body < 20:
                    raise bad("packet block at byte %d is cut short" % at)
                iface, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", data, body)
                if iface >= len(links) or incl > end - body - 20:
                    raise bad("packet block at byte %d is inconsistent" % at)
                packets.append(CapturedPacket(data[body + 20:body + 20 + incl], orig, ((hi << 32) | lo) * 1000))
            at += length
        return link, packets
    magic = struct.unpack_from("<I", data)[0]
    formats = {0xa1b2c3d4: ("<", 1000), 0xa1b23c4d: ("<", 1), 0xd4c3b2a1: (">", 1000), 0x4d3cb2a1: (">", 1)}
    if magic not in formats or len(data) < 24:
        raise bad("not a pcap or pcapng file")
    order, scale = formats[magic]
    link = struct.unpack_from(order + "I", data, 20)[0] & 0x0fffffff
    at = 24
    while at < len(data):
        if len(data) - at < 16:
            raise bad("record %d at byte %d: its header is cut short" % (len(packets), at))
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", data, at)
        at += 16
        if incl > len(data) - at:
            raise bad("record %d: %d bytes captured, %d left in the file" % (len(packets), incl, len(data) - at))
        packets.append(CapturedPacket(data[at:at + incl], orig, sec * 1000000000 + frac * scale))
        at += incl
    return link, packets


def write_pcap(destination: Union[str, "os.PathLike[str]"], packets: Iterable[CapturedPacket], link_type: int = 1) -> None:
    """Writes ``packets`` as a pcap file (nanosecond times), which tcpdump and Wireshark read."""
    with open(os.fspath(destination), "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, link_type))
        for p in packets:
            out.write(struct.pack("<IIII", p.timestamp // 1000000000, p.timestamp % 1000000000, len(p.data),
                                  max(p.original_length, len(p.data))))
            out.write(p.data)


class JitFunction:
    """A VM's compiled program as an ``int fn(mem, mem_len, mbuff, mbuff_len, uint64_t *result)``."""

    def __init__(self, vm: Vm, address: int) -> None:
        self._vm = vm  # the code lives as long as the VM keeps it
        self.address = address
        self._fn = _JIT_FN(address)

    def __call__(self, mem: Optional[BytesLike] = None, mbuff: Optional[BytesLike] = None) -> int:
        """Runs the program as Vm.execute_jit() does; returns r0 or raises the error. Raises
        NoProgramError instead of calling code that is gone (the VM closed, its code discarded or
        compiled again): C callers must keep to that themselves."""
        vm = self._vm
        if vm.closed:
            raise NoProgramError(-9, "the VM is closed: its compiled code is gone")
        current = ctypes.c_void_p()
        rc = _vm_jit_function(vm._h, ctypes.byref(current))
        if rc != 0 or current.value != self.address:
            raise NoProgramError(-9, "the compiled code this function called was discarded or replaced: get a new one with jit_function()")
        return vm._run(lambda _h, mp, mn, bp, bn, res: self._fn(mp, mn, bp, bn, res), mem, mbuff)


class MbuffVm(Vm):
    """r1 = the metadata buffer (or the input when none is given), r2 = its length."""
    kind = MBUFF

    def __init__(self, program: Optional[Program] = None) -> None:
        super().__init__(MBUFF, program)


class RawVm(Vm):
    """r1 = the input memory, r2 = its length."""
    kind = RAW

    def __init__(self, program: Optional[Program] = None) -> None:
        super().__init__(RAW, program)


class NoDataVm(Vm):
    """No input."""
    kind = NO_DATA

    def __init__(self, program: Optional[Program] = None) -> None:
        super().__init__(NO_DATA, program)


class FixedMbuffVm(Vm):
    """The VM writes the input's start and end addresses at ``data_offset`` and ``data_end_offset``
    of its own buffer and passes that buffer in r1."""
    kind = FIXED_MBUFF

    def __init__(self, program: Program, data_offset: int, data_end_offset: int) -> None:
        self._init_state()
        buf, n = _program_buffer(program)
        handle = ctypes.c_void_p()
        _check(_vm_create_fixed(buf, n, _unsigned(data_offset, 64, "data_offset"), _unsigned(data_end_offset, 64, "data_end_offset"),
                                ctypes.byref(handle)))
        self._handle = handle
        self._interrupt_on_sigint()

    def set_program(self, program: Program, data_offset: Optional[int] = None, data_end_offset: Optional[int] = None) -> None:  # type: ignore[override]
        """Loads ``program``, with new buffer offsets when given."""
        if data_offset is None and data_end_offset is None:
            return super().set_program(program)
        buf, n = _program_buffer(program)
        _check(_vm_set_program_fixed(self._h, buf, n, _unsigned(data_offset, 64, "data_offset"),
                                     _unsigned(data_end_offset, 64, "data_end_offset")))
