"""Tests of the rbpf Python package (run with: python3 -m unittest discover -s tests -t .)."""

import ctypes
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import sys
import time
import threading
import unittest

import rbpf

ADD = bytes([
    0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xb4, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x0c, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
])


class SeedExamples(unittest.TestCase):
    def test_add(self):
        with rbpf.NoDataVm(ADD) as vm:
            self.assertEqual(vm.execute(), 3)

    def test_raw_packet(self):
        prog = bytes([0x71, 0x10, 0x02, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
        with rbpf.RawVm(prog) as vm:
            self.assertEqual(vm.execute(bytes([0xaa, 0xbb, 0x11, 0xcc, 0xdd])), 0x11)
            self.assertEqual(vm.execute(bytearray([0xaa, 0xbb, 0x11, 0xcc, 0xdd])), 0x11)
            self.assertEqual(vm.execute(memoryview(b"\xaa\xbb\x11\xcc\xdd")), 0x11)

    def test_mbuff(self):
        prog = rbpf.assemble("ldxdw r1, [r1+8]\nldxh r0, [r1+2]\nexit")
        mem = (ctypes.c_uint8 * 6)(0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd)
        mbuff = bytearray(32)
        addr = ctypes.addressof(mem)
        mbuff[8:16] = addr.to_bytes(8, "little")
        mbuff[24:32] = (addr + 6).to_bytes(8, "little")
        with rbpf.MbuffVm(prog) as vm:
            self.assertEqual(vm.execute(mem, mbuff), 0x2211)

    def test_fixed_mbuff(self):
        prog = rbpf.assemble("ldxdw r2, [r1+0x40]\nldxdw r3, [r1+0x50]\nmov r0, r3\nsub r0, r2\nexit")
        with rbpf.FixedMbuffVm(prog, 0x40, 0x50) as vm:
            self.assertEqual(vm.execute(bytearray(71)), 71)
            vm.set_program(prog, 0x50, 0x40)
            self.assertEqual(vm.execute(bytearray(71)), (-71) & ((1 << 64) - 1))

    def test_llvm_syntax_both_ways(self):
        llvm = "r0 = 0\nloop:\nr0 += 1\nif r0 < 10 goto loop\nr1 = *(u8 *)(r10 - 8)\nexit"
        prog = rbpf.assemble(llvm)
        self.assertEqual(prog, rbpf.assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 10, loop\nldxb r1, [r10-8]\nexit"))
        text = rbpf.disassemble(prog, syntax="llvm", labels=True)
        self.assertEqual(text, "r0 = 0x0\nL1:\nr0 += 0x1\nif r0 < 0xa goto L1\nr1 = *(u8 *)(r10 - 8)\nexit\n")
        self.assertEqual(rbpf.assemble(text), prog)
        self.assertEqual(rbpf.disassemble(prog, labels=True).splitlines()[1:3], ["L1:", "add64 r0, 0x1"])
        self.assertRaises(ValueError, rbpf.disassemble, prog, syntax="att")
        with rbpf.NoDataVm(llvm) as vm:
            self.assertEqual(vm.execute(), 10)

    def test_assembler_bytes(self):
        prog = rbpf.assemble("add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit")
        self.assertEqual(prog, bytes([
            0x07, 0x01, 0x00, 0x00, 0x05, 0x06, 0x00, 0x00,
            0xb7, 0x02, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00,
            0xbf, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xdc, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
            0x87, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]))
        text = rbpf.disassemble(prog)
        self.assertEqual(text, "add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit\n")
        self.assertEqual(rbpf.assemble(text), prog)


class Errors(unittest.TestCase):
    def test_out_of_bounds(self):
        with rbpf.RawVm(rbpf.assemble("ldxw r0, [r1+2]\nexit")) as vm:
            self.assertEqual(vm.execute(bytes(6)), 0)
            with self.assertRaises(rbpf.OutOfBoundsError) as cm:
                vm.execute(bytes(5))
            self.assertEqual(cm.exception.code, -4)
            self.assertIn("load of 4 bytes", cm.exception.message)
            self.assertIn("RBPF_E_OUT_OF_BOUNDS", str(cm.exception))

    def test_invalid_program(self):
        with self.assertRaises(rbpf.InvalidProgramError):
            rbpf.NoDataVm(b"\xff" + bytes(7))
        with self.assertRaises(rbpf.InvalidProgramError):
            rbpf.RawVm(b"")
        with self.assertRaises(rbpf.InvalidProgramError):
            rbpf.verify(bytes(12))
        rbpf.verify(ADD)

    def test_longest_program(self):
        add_r0_1 = bytes([0x07, 0, 0, 0, 1, 0, 0, 0])
        exit_ = bytes([0x95]) + bytes(7)
        with rbpf.NoDataVm(add_r0_1 * (rbpf.MAX_INSTRUCTIONS - 1) + exit_) as vm:
            self.assertEqual(vm.execute(), rbpf.MAX_INSTRUCTIONS - 1)
            vm.jit_compile()
            self.assertEqual(vm.execute_jit(), rbpf.MAX_INSTRUCTIONS - 1)
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.NoDataVm(add_r0_1 * rbpf.MAX_INSTRUCTIONS + exit_)
        self.assertIn("1000001 instructions", cm.exception.message)

    def test_integers_are_range_checked_not_truncated(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r0, 1\nexit")) as vm:
            for bad in (2 ** 40, -1):
                with self.assertRaises(ValueError):
                    vm.register_helper(bad, lambda *a: 0)
            with self.assertRaises(TypeError):
                vm.register_helper("1", lambda *a: 0)
            for bad in (2 ** 64 + 5, -1):
                with self.assertRaises(ValueError):
                    vm.instruction_limit = bad
            self.assertEqual(vm.instruction_limit, 0)
            vm.instruction_limit = 2 ** 64 - 1
            self.assertEqual(vm.instruction_limit, 2 ** 64 - 1)
            with self.assertRaises(ValueError):
                vm.set_unwind_helper(-3)

    def test_programs_as_text_and_paths(self):
        import pathlib
        import tempfile
        with rbpf.NoDataVm("mov r0, 6\nexit") as vm:           # assembly text
            self.assertEqual(vm.execute(), 6)
            with tempfile.TemporaryDirectory() as tmp:
                path = pathlib.Path(tmp) / "prog.bin"
                path.write_bytes(rbpf.assemble("mov r0, 7\nexit"))
                vm.set_program(path)                            # a bytecode file
                self.assertEqual(vm.execute(), 7)
        with self.assertRaises(TypeError) as cm:
            rbpf.verify(12)
        self.assertIn("assembly text (str)", str(cm.exception))
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.NoDataVm(b"\x7fELF" + bytes(60))
        self.assertIn("from_elf", cm.exception.message)

    def test_package_is_typed_and_documented(self):
        import inspect
        self.assertIn("JitFunction", rbpf.__all__)
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(rbpf.__file__), "py.typed")))
        for name in rbpf.__all__:
            obj = getattr(rbpf, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                self.assertTrue(obj.__doc__, name)
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if member.startswith("_"):
                        continue
                    f = value.fget if isinstance(value, property) else value
                    if isinstance(f, classmethod):
                        f = f.__func__
                    if callable(f):
                        self.assertTrue(getattr(f, "__doc__", None), name + "." + member)
                        self.assertIn("return", f.__annotations__, name + "." + member + " has no type hints")
            if inspect.isfunction(obj):
                self.assertIn("return", obj.__annotations__, name + " has no type hints")
        for dunder in ("__init__", "__enter__", "__exit__"):
            self.assertIn("return", getattr(rbpf.Vm, dunder).__annotations__, dunder)

    def test_batches(self):
        with rbpf.RawVm("ldxb r0, [r1]\nexit") as vm:
            packets = [b"\x00", bytearray(b"\x01"), b"\x05", b"\x01"]
            vm.jit_compile()
            for jit in (False, True):
                self.assertEqual(vm.execute_many(packets, jit=jit), [0, 1, 5, 1])
                self.assertEqual(vm.count_verdicts(packets, 2, jit=jit), [1, 3])
                with self.assertRaises(rbpf.OutOfBoundsError) as cm:
                    vm.execute_many(packets + [b""], jit=jit)
                self.assertIn("buffer 4", cm.exception.message)
            self.assertEqual(vm.execute_many([]), [])
            with self.assertRaises(ValueError):
                vm.count_verdicts(packets, 0)

    def test_input_a_kind_does_not_use_is_refused(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r0, 1\nexit")) as vm:
            with self.assertRaises(rbpf.InvalidArgumentError) as cm:
                vm.execute(b"packet")
            self.assertIn("takes no input memory", cm.exception.message)
            self.assertEqual(vm.execute(), 1)
        with rbpf.RawVm(rbpf.assemble("mov r0, r2\nexit")) as vm:
            with self.assertRaises(rbpf.InvalidArgumentError) as cm:
                vm.execute(b"ab", mbuff=b"meta")
            self.assertIn("takes no metadata buffer", cm.exception.message)
            self.assertEqual(vm.execute(b"ab"), 2)

    def test_verifier_refuses_endless_loops_and_unused_fields(self):
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.verify(rbpf.assemble("l:\nja l\nexit"))
        self.assertIn("infinite loop", cm.exception.message)
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.NoDataVm(bytes([0x95, 0, 0, 0, 1, 0, 0, 0]))  # exit with imm 1
        self.assertIn("must be 0", cm.exception.message)

    def test_assembly_error_has_position(self):
        with self.assertRaises(rbpf.AssemblyError) as cm:
            rbpf.assemble("mov r0, 1\n  frob r1")
        self.assertIn("line 2, column 3", cm.exception.message)
        self.assertTrue(issubclass(rbpf.AssemblyError, rbpf.RbpfError))

    def test_closed_vm(self):
        vm = rbpf.NoDataVm(ADD)
        vm.close()
        vm.close()
        self.assertTrue(vm.closed)
        with self.assertRaises(rbpf.InvalidHandleError):
            vm.execute()

    def test_no_program(self):
        with rbpf.RawVm() as vm:
            with self.assertRaises(rbpf.NoProgramError):
                vm.execute()
            vm.set_program(ADD)
            self.assertEqual(vm.execute(), 3)
            self.assertEqual(vm.program, ADD)

    def test_instruction_limit(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit")) as vm:
            vm.instruction_limit = 500
            self.assertEqual(vm.instruction_limit, 500)
            with self.assertRaises(rbpf.InstructionLimitError):
                vm.execute()

    def test_call_depth(self):
        with rbpf.NoDataVm(rbpf.assemble("f:\ncall local f\nexit")) as vm:
            with self.assertRaises(rbpf.CallDepthExceededError):
                vm.execute()

    def test_jit(self):
        with rbpf.RawVm(rbpf.assemble("ldxw r0, [r1+2]\nexit")) as vm:
            with self.assertRaises(rbpf.NoProgramError):
                vm.execute_jit(bytes(6))
            vm.jit_compile()
            self.assertEqual(vm.execute_jit(bytes([0, 0, 0x11, 0x22, 0x33, 0x44])), 0x44332211)
            with self.assertRaises(rbpf.OutOfBoundsError) as cm:
                vm.execute_jit(bytes(5))
            self.assertIn("load of 4 bytes", cm.exception.message)
            self.assertIn("ldxw r0, [r1+2]", vm.jit_disassembly())
            vm.jit_compile(unchecked=True, blind_constants=True)
            self.assertEqual(vm.execute_jit(bytes([0, 0, 1, 0, 0, 0])), 1)

    def test_jit_function(self):
        with rbpf.RawVm(rbpf.assemble("ldxw r0, [r1+2]\nstb [r1], 9\nexit")) as vm:
            with self.assertRaises(rbpf.NoProgramError):
                vm.jit_function()
            vm.jit_compile()
            fn = vm.jit_function()
            self.assertIsInstance(fn.address, int)
            self.assertNotEqual(fn.address, 0)
            mem = bytearray([0, 0, 0x11, 0x22, 0x33, 0x44])
            self.assertEqual(fn(mem), 0x44332211)
            self.assertEqual(mem[0], 9)  # stores reach the caller's buffer
            with self.assertRaises(rbpf.OutOfBoundsError) as cm:
                fn(bytes(5))
            self.assertIn("load of 4 bytes", cm.exception.message)
        with rbpf.NoDataVm(rbpf.assemble("mov r1, 20\ncall 1\nadd r0, 1\nexit")) as vm:
            vm.register_helper(1, lambda a, *rest: a * 3)
            vm.jit_compile()
            fn = vm.jit_function()
            self.assertEqual(fn(), 61)
            # Code that is gone is never called: recompiled, discarded, or the VM closed.
            vm.jit_compile()
            with self.assertRaises(rbpf.NoProgramError):
                fn()
            fn = vm.jit_function()
            self.assertEqual(fn(), 61)
            vm.register_helper(1, lambda a, *rest: a)
            with self.assertRaises(rbpf.NoProgramError):
                fn()
        with self.assertRaises(rbpf.NoProgramError):
            fn()

    def test_jit_calls_python_helpers(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r1, 20\ncall 1\nadd r0, 1\nexit")) as vm:
            vm.register_helper(1, lambda a, *rest: a * 2)
            vm.jit_compile()
            self.assertEqual(vm.execute_jit(), 41)
            vm.register_helper(1, lambda *rest: 1 // 0)
            vm.jit_compile()
            with self.assertRaises(rbpf.HelperFailedError):
                vm.execute_jit()

    def test_bad_kind_and_offsets(self):
        with self.assertRaises(rbpf.InvalidArgumentError):
            rbpf.Vm(9, ADD)
        with self.assertRaises(rbpf.InvalidArgumentError):
            rbpf.FixedMbuffVm(ADD, 0, 4)


class Helpers(unittest.TestCase):
    def test_python_helper(self):
        prog = rbpf.assemble("mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\ncall 7\nexit")
        with rbpf.NoDataVm(prog) as vm:
            with self.assertRaises(rbpf.UnknownHelperError):
                vm.execute()
            vm.register_helper(7, lambda a, b, c, d, e: a + 10 * b + 100 * c + 1000 * d + 10000 * e)
            self.assertEqual(vm.execute(), 54321)
            vm.register_helper(7, lambda *args: -1)
            self.assertEqual(vm.execute(), (1 << 64) - 1)

    def test_raising_helper(self):
        with rbpf.NoDataVm(rbpf.assemble("call 7\nexit")) as vm:
            vm.register_helper(7, lambda *args: 1 // 0)
            with self.assertRaises(rbpf.HelperFailedError) as cm:
                vm.execute()
            self.assertIsInstance(cm.exception.__cause__, ZeroDivisionError)
            vm.register_helper(7, lambda *args: 5)
            self.assertEqual(vm.execute(), 5)

    def test_raising_helper_ends_the_run_at_once(self):
        prog = rbpf.assemble("mov r6, 1000\nl:\ncall 7\nsub r6, 1\njne r6, 0, l\nexit")
        with rbpf.NoDataVm(prog) as vm:
            calls = []

            def failing(*args):
                calls.append(1)
                raise KeyError("no such flow")

            vm.register_helper(7, failing)
            vm.jit_compile()
            for run in (vm.execute, vm.execute_jit):
                del calls[:]
                with self.assertRaises(rbpf.HelperFailedError) as cm:
                    run()
                self.assertEqual(len(calls), 1)
                self.assertIsInstance(cm.exception.__cause__, KeyError)
                self.assertIn("insn #1", cm.exception.message)

    def test_standard_helpers(self):
        with rbpf.RawVm(rbpf.assemble("mov r2, 3\ncall 0x70000002\nexit")) as vm:
            vm.register_standard_helpers()
            mem = bytearray(b"abc")
            self.assertEqual(vm.execute(mem), 0)
            self.assertEqual(bytes(mem), bytes(c ^ 42 for c in b"abc"))

    def test_unwind_helper(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r1, 0\ncall 5\nmov r0, 2\nexit")) as vm:
            vm.register_helper(5, lambda a, *rest: a)
            self.assertEqual(vm.execute(), 2)
            vm.set_unwind_helper(5)
            self.assertEqual(vm.execute(), 0)
            vm.set_unwind_helper(None)
            self.assertEqual(vm.execute(), 2)


class TracePrintk(unittest.TestCase):
    def test_formats_its_format_string_on_stdout(self):
        # The library writes to the process's standard output: run it in a child to read it.
        # "x=%d\n" and its NUL on the stack, r3 = -12.
        code = ("import rbpf\n"
                "src = 'lddw r1, 0x000a64253d78\\nstxdw [r10-8], r1\\nmov r1, r10\\nadd r1, -8\\n"
                "mov r2, 6\\nmov r3, -12\\ncall bpf_trace_printk\\nexit'\n"
                "vm = rbpf.NoDataVm(rbpf.assemble(src))\n"
                "vm.register_standard_helpers()\n"
                "print(vm.execute(), flush=True)\n")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(rbpf.__file__)), env.get("PYTHONPATH")] if p)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "x=-12\n6\n")


ELF_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "elf")

COUNTER = """
ldxw r1, [r1]
stxw [r10-4], r1
lddw r1, map 0
mov r2, r10
add r2, -4
call bpf_map_lookup_elem
jne r0, 0, found
mov r1, 1
stxdw [r10-16], r1
lddw r1, map 0
mov r2, r10
add r2, -4
mov r3, r10
add r3, -16
mov r4, 1
call bpf_map_update_elem
mov r0, 1
exit
found:
mov r1, 1
lock add64 [r0], r1
ldxdw r0, [r0]
exit
"""


def frame(port, proto=17, length=60):
    f = bytearray(length)
    f[12], f[14], f[23] = 0x08, 0x45, proto
    f[36], f[37] = port >> 8, port & 0xff
    return bytes(f)


class Maps(unittest.TestCase):
    def test_mapping_protocol_and_kernel_rules(self):
        with rbpf.Map(rbpf.MAP_HASH, 4, 8, 2) as m:
            m[1] = 10
            m[b"\x02\x00\x00\x00"] = (20).to_bytes(8, "little")
            self.assertEqual(len(m), 2)
            self.assertEqual(m[1], (10).to_bytes(8, "little"))
            self.assertEqual(sorted(int.from_bytes(k, "little") for k in m), [1, 2])
            self.assertEqual(m.to_dict(), {1: 10, 2: 20})
            self.assertIn(1, m)
            self.assertNotIn(3, m)
            self.assertEqual(m.get(3), None)
            with self.assertRaises(rbpf.MapFullError):
                m[3] = 30
            with self.assertRaises(rbpf.KeyExistsError):
                m.set(1, 11, rbpf.NOEXIST)
            with self.assertRaises(rbpf.NotFoundError):
                m.set(7, 11, rbpf.EXIST)
            del m[1]
            with self.assertRaises(KeyError):
                del m[1]
            with self.assertRaises(KeyError):
                m[1]
            with self.assertRaises(ValueError):
                m[b"\x01"] = 1
            with self.assertRaises(OverflowError):
                m[2**40] = 1
        self.assertRaises(rbpf.InvalidHandleError, lambda: m[2])
        with self.assertRaises(rbpf.InvalidArgumentError):
            rbpf.Map(rbpf.MAP_ARRAY, 8, 8, 4)
        arr = rbpf.Map(rbpf.MAP_ARRAY, 4, 4, 3)
        self.assertEqual(len(arr), 3)
        self.assertEqual(arr.to_dict(), {0: 0, 1: 0, 2: 0})
        with self.assertRaises(rbpf.InvalidArgumentError):
            del arr[0]

    def test_programs_count_in_a_bound_map(self):
        counts = rbpf.Map(rbpf.MAP_HASH, 4, 8, 64)
        for jit in (False, True):
            with rbpf.RawVm(COUNTER) as vm:
                vm.bind_map(0, counts)
                if jit:
                    vm.jit_compile()
                for _ in range(3):
                    (vm.execute_jit if jit else vm.execute)((7).to_bytes(4, "little"))
        self.assertEqual(counts.to_dict(), {7: 6})

    def test_elf_maps_ring_buffers_and_tail_calls(self):
        with rbpf.RawVm.from_elf(os.path.join(ELF_DIR, "port_counts.o")) as vm:
            self.assertEqual(sorted(vm.maps), ["port_counts", "total_bytes"])
            for port in (53, 53, 80):
                self.assertEqual(vm.execute(frame(port)), 1)
            self.assertEqual(vm.get_map("port_counts").to_dict(), {53: 2, 80: 1})
            self.assertEqual(vm.get_map("total_bytes").to_dict(), {0: 180})
            with self.assertRaises(rbpf.NotFoundError) as cm:
                vm.get_map("nope")
            self.assertIn("port_counts", str(cm.exception))
        with rbpf.RawVm.from_elf(os.path.join(ELF_DIR, "legacy_maps.o")) as vm:
            vm.execute(bytes(range(1, 9)))
            vm.execute(bytes(range(2, 10)))
            records = []
            self.assertEqual(vm.get_map("events").consume(records.append), 2)
            self.assertEqual(records, [bytes(range(1, 9)), bytes(range(2, 10))])
            with self.assertRaises(rbpf.InvalidArgumentError) as cm:
                vm.get_map("events")[b""]  # a ring buffer has no keys
            self.assertIn("ring buffer", str(cm.exception))
            self.assertEqual(vm.get_map("last_byte")[1], (2).to_bytes(8, "little"))
        jumps = rbpf.Map(rbpf.MAP_PROG_ARRAY, 4, 4, 2)
        with rbpf.RawVm("mov r6, r1\nldxb r3, [r6]\nlddw r2, map 0\nmov r1, r6\ncall bpf_tail_call\nmov r0, 7\nexit") as caller, \
                rbpf.RawVm("mov r0, 42\nexit") as target:
            caller.bind_map(0, jumps)
            jumps.set_program(1, target)
            self.assertEqual(caller.execute(b"\x01"), 42)
            self.assertEqual(caller.execute(b"\x00"), 7)


class ClassicBpf(unittest.TestCase):
    # tcpdump -dd 'ip and tcp dst port 80'
    DD = """{ 0x28, 0, 0, 0x0000000c },
{ 0x15, 0, 8, 0x00000800 },
{ 0x30, 0, 0, 0x00000017 },
{ 0x15, 0, 6, 0x00000006 },
{ 0x28, 0, 0, 0x00000014 },
{ 0x45, 4, 0, 0x00001fff },
{ 0xb1, 0, 0, 0x0000000e },
{ 0x48, 0, 0, 0x00000010 },
{ 0x15, 0, 1, 0x00000050 },
{ 0x6, 0, 0, 0x00040000 },
{ 0x6, 0, 0, 0x00000000 },
"""

    @staticmethod
    def tcp(port, length=64):
        f = bytearray(max(length, 38))
        f[12], f[14], f[23] = 0x08, 0x45, 6
        f[36], f[37] = port >> 8, port & 0xff
        return bytes(f[:length])

    def test_translate_from_every_form(self):
        prog = rbpf.cbpf_translate(self.DD)
        rows = rbpf._parse_cbpf(self.DD)
        ddd = "%d\n" % len(rows) + "\n".join("%d %d %d %d" % r for r in rows)
        self.assertEqual(rbpf.cbpf_translate(ddd), prog)
        self.assertEqual(rbpf.cbpf_translate(rows), prog)
        raw = b"".join(c.to_bytes(2, "little") + bytes([t, f]) + k.to_bytes(4, "little") for c, t, f, k in rows)
        self.assertEqual(rbpf.cbpf_translate(raw), prog)
        with rbpf.RawVm(prog) as vm:
            vm.jit_compile()
            for packet, verdict in ((self.tcp(80), 0x40000), (self.tcp(22), 0), (self.tcp(80, 37), 0)):
                self.assertEqual(vm.execute(packet), verdict)
                self.assertEqual(vm.execute_jit(packet), verdict)
            self.assertEqual(vm.count_verdicts([self.tcp(80), self.tcp(81), self.tcp(80)], 2), [1, 2])

    def test_refusals_say_why(self):
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.cbpf_translate([(0x34, 0, 0, 0), (0x16, 0, 0, 0)])
        self.assertIn("division by the constant 0", str(cm.exception))
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.cbpf_translate([(0x20, 0, 0, 0xfffff000), (0x16, 0, 0, 0)])
        self.assertIn("ancillary", str(cm.exception))
        with self.assertRaises(rbpf.InvalidProgramError):
            rbpf.cbpf_translate("not a filter")
        with self.assertRaises(ValueError):
            rbpf.cbpf_translate([(0x10000, 0, 0, 0)])


class Xdp(unittest.TestCase):
    @staticmethod
    def frame(port, vlan=False):
        f = bytearray(64)
        f[0:6], f[6:12] = bytes(range(0xd0, 0xd6)), bytes(range(0x50, 0x56))
        at = 12
        if vlan:
            f[12:16] = b"\x81\x00\x00\x64"
            at = 16
        f[at], f[at + 2], f[at + 11] = 0x08, 0x45, 17
        f[at + 24], f[at + 25] = port >> 8, port & 0xff
        return f

    def test_kernel_xdp_programs(self):
        obj = os.path.join(ELF_DIR, "xdp_progs.o")
        with rbpf.XdpVm.from_elf(obj, "drop_port") as vm:
            vm.jit_compile()
            for jit in (False, True):
                self.assertEqual(vm.run(self.frame(9999), jit=jit).action, rbpf.XDP_DROP)
                self.assertEqual(vm.run(self.frame(53), jit=jit), rbpf.XdpResult(rbpf.XDP_PASS, 2, 0, 64))
        with rbpf.XdpVm.from_elf(obj, "strip_vlan") as vm:
            buf = bytearray(256) + self.frame(80, vlan=True)
            r = vm.run(buf, headroom=256)
            self.assertEqual((r.action, r.offset, r.length), (rbpf.XDP_PASS, 260, 60))
            self.assertEqual(bytes(buf[r.offset:r.offset + 14]), bytes(range(0xd0, 0xd6)) + bytes(range(0x50, 0x56)) + b"\x08\x00")
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.XdpVm.from_elf(obj, "bad_field")
        self.assertIn("xdp_md", str(cm.exception))
        with rbpf.XdpVm("ldxw r0, [r1+12]\nexit") as vm:
            self.assertEqual(vm.run(bytearray(20), ingress_ifindex=9).value, 9)
            with self.assertRaises(TypeError):
                vm.run(bytes(20))

    def test_captures(self):
        packets = [rbpf.CapturedPacket(bytes(self.frame(p))[:n], 64, i * 1000)
                   for i, (p, n) in enumerate([(9999, 64), (53, 64), (9999, 30), (80, 64)])]
        path = os.path.join(tempfile.mkdtemp(), "in.pcap")
        rbpf.write_pcap(path, packets)
        link, back = rbpf.read_capture(path)
        self.assertEqual((link, [p.data for p in back]), (1, [p.data for p in packets]))
        self.assertEqual(back[3].timestamp, 3000)
        with rbpf.XdpVm.from_elf(os.path.join(ELF_DIR, "xdp_progs.o"), "drop_port") as vm:
            results = vm.run_capture(back, jit=False)
            self.assertEqual([r.action for r, _ in results], [rbpf.XDP_DROP, rbpf.XDP_PASS, rbpf.XDP_PASS, rbpf.XDP_PASS])
            self.assertEqual(results[1][1], packets[1].data)
        with self.assertRaises(rbpf.InvalidArgumentError):
            rbpf.read_capture(b"\xd4\xc3\xb2\xa1" + bytes(30))


class Skb(unittest.TestCase):
    def test_tc_and_socket_filter(self):
        obj = os.path.join(ELF_DIR, "tc_progs.o")
        pkt = bytearray(60)
        pkt[12], pkt[14], pkt[15], pkt[23] = 0x08, 0x45, 0x2e, 1
        with rbpf.SkbVm.from_elf(obj, "classify") as vm:
            vm.jit_compile()
            for jit in (False, True):
                r = vm.run(pkt, ifindex=4, jit=jit)
                self.assertEqual((r.value, r.mark, r.priority, r.tc_classid, r.cb[2]), (2, 0x2e, 60, 0x10001, 4))
        with rbpf.SkbVm.from_elf(obj, "tcp_only") as vm:
            pkt[23] = 6
            self.assertEqual(vm.run(pkt).value, 60)
            pkt[23] = 17
            self.assertEqual(vm.run(pkt).value, 0)
        with self.assertRaises(rbpf.InvalidProgramError) as cm:
            rbpf.SkbVm.from_elf(obj, "reads_data")
        self.assertIn("__sk_buff", str(cm.exception))
        with rbpf.SkbVm(rbpf.PROG_SOCKET_FILTER, "stw [r1+48], 5\nldxw r0, [r1+48]\nexit") as vm:
            self.assertEqual(vm.run(bytes(20)).cb[0], 5)


class MemoryAndVerifier(unittest.TestCase):
    def test_stores_reach_writable_memory(self):
        with rbpf.RawVm(rbpf.assemble("stw [r1+1], 0x11223344\nexit")) as vm:
            mem = bytearray(6)
            vm.execute(mem)
            self.assertEqual(mem, bytearray([0, 0x44, 0x33, 0x22, 0x11, 0]))
            data = bytes(6)
            vm.execute(data)  # read-only input: copied, the original is untouched
            self.assertEqual(data, bytes(6))

    def test_memory_regions(self):
        table = bytearray(range(16))
        with rbpf.NoDataVm() as vm:
            index, address = vm.add_memory_region(table, writable=False)
            self.assertEqual(index, 0)
            vm.set_program(rbpf.assemble("lddw r1, %#x\nldxb r0, [r1+9]\nexit" % address))
            self.assertEqual(vm.execute(), 9)
            vm.set_program(rbpf.assemble("lddw r1, %#x\nstb [r1], 99\nexit" % address))
            with self.assertRaises(rbpf.OutOfBoundsError):
                vm.execute()
            vm.clear_memory_regions()
            vm.add_memory_region(table, writable=True)
            vm.execute()
            self.assertEqual(table[0], 99)

    def test_custom_verifier(self):
        long_prog = rbpf.assemble("mov r0, 1\nmov r0, 2\nexit")
        with rbpf.NoDataVm(ADD) as vm:
            seen = []

            def short_only(prog):
                seen.append(len(prog))
                return len(prog) <= 40

            vm.set_verifier(short_only)
            self.assertEqual(seen, [40])
            with self.assertRaises(rbpf.InvalidProgramError):
                vm.set_program(long_prog + long_prog)
            vm.set_program(long_prog)
            self.assertEqual(vm.execute(), 2)

            def no_calls(prog):
                raise ValueError("calls are not allowed here")

            with self.assertRaises(rbpf.InvalidProgramError) as cm:
                vm.set_verifier(no_calls)
            self.assertIn("rejected the program: calls are not allowed here", cm.exception.message)
            vm.set_verifier(None)
            vm.disable_verifier()
            vm.set_program(b"\xff" + bytes(7))
            with self.assertRaises(rbpf.IllegalInstructionError):
                vm.execute()

    def test_threads_share_a_vm(self):
        prog = rbpf.assemble("ldxdw r0, [r1]\nmul r0, 3\nexit")
        errors = []
        with rbpf.RawVm(prog) as vm:
            def work(n):
                for _ in range(300):
                    if vm.execute(n.to_bytes(8, "little")) != 3 * n:
                        errors.append(n)
            threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])

    def test_execute_jit_while_another_thread_recompiles(self):
        # Calls keep working, on the old code or the new, while the code is replaced under them.
        prog = rbpf.assemble("ldxdw r0, [r1]\nmul r0, 3\nexit")
        errors = []
        with rbpf.RawVm(prog) as vm:
            vm.jit_compile()
            done = threading.Event()
            def work(n):
                while not done.is_set():
                    if vm.execute_jit(n.to_bytes(8, "little")) != 3 * n:
                        errors.append(n)
            threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 3)]
            for t in threads:
                t.start()
            for i in range(200):
                vm.jit_compile(unchecked=(i % 2 == 1))
            done.set()
            for t in threads:
                t.join()
            self.assertEqual(vm.execute_jit((7).to_bytes(8, "little")), 21)
        self.assertEqual(errors, [])

    def test_version(self):
        self.assertEqual(rbpf.version(), rbpf.__version__)


ELF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "elf")



RUNAWAY = "mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit"

# Runs a runaway program in a child Python and says "running" first; the test sends SIGINT.
CHILD = """
import sys, rbpf
vm = rbpf.NoDataVm(rbpf.assemble(%r))
mode = sys.argv[1]
if mode == "helper":
    vm = rbpf.NoDataVm(rbpf.assemble("mov r6, 0\\nloop:\\ncall 7\\nadd r6, 1\\njne r6, 0, loop\\nexit"))
    vm.register_helper(7, lambda *a: 0)
if mode == "jit":
    vm.jit_compile()
print("running", flush=True)
try:
    if mode == "jit":
        vm.execute_jit()
    elif mode == "many":
        vm.execute_many([b""] * 3)
    else:
        vm.execute()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
print("not interrupted", flush=True)
""" % RUNAWAY


class Interrupts(unittest.TestCase):
    def test_interrupt_from_another_thread(self):
        for jit in (False, True):
            with rbpf.NoDataVm(rbpf.assemble(RUNAWAY)) as vm:
                if jit:
                    vm.jit_compile()
                errors = []

                def run():
                    try:
                        vm.execute_jit() if jit else vm.execute()
                    except rbpf.RbpfError as e:
                        errors.append(e)
                t = threading.Thread(target=run)
                t.start()
                while t.is_alive():
                    vm.interrupt()
                    t.join(0.02)
                self.assertEqual(len(errors), 1)
                self.assertIsInstance(errors[0], rbpf.RunInterruptedError)
                self.assertEqual(errors[0].code, -15)
                self.assertIn("interrupted at insn #1", str(errors[0]))

    def test_code_without_interrupt_checks_runs_to_its_end(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 30000000, loop\nexit")) as vm:
            vm.jit_compile(interruptible=False)
            results = []
            t = threading.Thread(target=lambda: results.append(vm.execute_jit()))
            t.start()
            while t.is_alive():
                vm.interrupt()
                t.join(0.005)
            self.assertEqual(results, [30000000])

    def test_interrupt_between_runs_is_lost(self):
        with rbpf.NoDataVm(rbpf.assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 1000, loop\nexit")) as vm:
            vm.interrupt()
            self.assertEqual(vm.execute(), 1000)
        self.assertRaises(rbpf.InvalidHandleError, vm.interrupt)

    @unittest.skipUnless(sys.platform.startswith("linux"), "signals interrupt runs on Linux")
    def test_ctrl_c_raises_keyboard_interrupt(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(rbpf.__file__)), env.get("PYTHONPATH")] if p)
        for mode in ("interp", "jit", "helper", "many"):
            # SIGINT at its default in the child: a test run started in the background of a script
            # inherits it ignored, and Python then leaves it so (no KeyboardInterrupt).
            child = subprocess.Popen([sys.executable, "-c", CHILD, mode], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            try:
                self.assertEqual(child.stdout.readline().strip(), "running")
                time.sleep(0.2)  # well inside the run
                # Again every half second: on a loaded machine the first may come before the run
                # starts (Python then only notes it, and the run has not armed its handler yet).
                out, err = "", "(no exit within 20 seconds of SIGINTs)"
                for attempt in range(40):
                    started = time.monotonic()
                    child.send_signal(signal.SIGINT)
                    try:
                        out, err = child.communicate(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                elapsed = time.monotonic() - started
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            self.assertEqual(child.returncode, 3, "%s: %s %s" % (mode, out, err))
            self.assertIn("KeyboardInterrupt", out)
            self.assertNotIn("Exception ignored", err)
            self.assertLess(elapsed, 5, mode)  # a fraction of a second in practice; generous for loaded machines


class Elf(unittest.TestCase):
    def read(self, name):
        with open(os.path.join(ELF_DIR, name), "rb") as f:
            return f.read()

    def test_packet_filter_on_fixed_mbuff(self):
        packet = bytearray(bytes.fromhex(
            "0123456789abfedcba987654080045" "00003ba6ab400040" "06960f7f0000017f" "0000019999c6cc"
            "d1e5c49dd430b5d2" "80180156fe2f0000"))
        with rbpf.FixedMbuffVm.from_elf(self.read("block_port.o"), ".classifier") as vm:
            vm.set_program(vm.program, 0x40, 0x50)
            self.assertEqual(vm.execute(packet), 0)
            packet[37] = 0x50
            self.assertEqual(vm.execute(packet), 0xffffffff)

    def test_a_program_links_only_the_sections_it_reaches(self):
        # sections.o: "prog/logged" (the default) calls the helper host_log; "prog/scaled" calls
        # a function in .text (4 slots) and loads without that helper.
        obj = self.read("sections.o")
        with self.assertRaises(rbpf.RbpfError) as e:
            rbpf.RawVm.from_elf(obj)
        self.assertIn("host_log", str(e.exception))
        with rbpf.RawVm.from_elf(obj, "prog/scaled") as vm:
            self.assertEqual(len(vm.program), (10 + 4) * 8)
            self.assertEqual(vm.execute(bytes(10)), (10 * 3 + 7) ^ (10 * 5 + 7))
        with rbpf.RawVm() as vm:
            vm.register_helper(9, lambda a, b, c, d, e: a * 100, "host_log")
            vm.load_elf(obj)
            self.assertEqual(len(vm.program), 4 * 8)  # nothing of .text
            self.assertEqual(vm.execute(bytes(12)), 1201)

    def test_counters_and_data_regions(self):
        with rbpf.RawVm.from_elf(self.read("counters.v4.o")) as vm:
            self.assertEqual(vm.execute(bytes(3)), 101 * 1000000 + 3)
            self.assertEqual(vm.execute(bytes(5)), 102 * 1000000 + 8)
            names = sorted(r[0] for r in vm.data_regions)
            self.assertEqual(names, [".bss", ".data"])
            self.assertTrue(all(r[3] for r in vm.data_regions))
        with rbpf.RawVm() as vm:
            self.assertEqual(vm.data_regions, [])

    @staticmethod
    def lex_ini(text):
        """tests/elf/ini_lexer.c in Python."""
        n = dict.fromkeys(("sections", "keys", "values", "quoted", "escapes", "comments", "bad"), 0)
        state = 0  # LINE, SECTION, KEY, AFTER_KEY, VALUE, QUOTED, ESCAPED, COMMENT, BAD
        for c in text:
            name = ((c | 0x20) - 0x61) & 0xff < 26 or (c - 0x30) & 0xff < 10 or c in b"_."
            space = c in b" \t"
            if state == 0:
                if c == ord("["): state, n["sections"] = 1, n["sections"] + 1
                elif c in b";#": state, n["comments"] = 7, n["comments"] + 1
                elif name: state, n["keys"] = 2, n["keys"] + 1
                elif not space and c != 10: state, n["bad"] = 8, n["bad"] + 1
            elif state == 1:
                if c == ord("]"): state = 7
                elif c == 10: state, n["bad"] = 0, n["bad"] + 1
            elif state in (2, 3):
                if c == ord("="): state = 4
                elif state == 2 and space: state = 3
                elif (state == 3 or not name) and not space: state, n["bad"] = (0 if c == 10 else 8), n["bad"] + 1
            elif state == 4:
                if c == ord('"'): state, n["quoted"] = 5, n["quoted"] + 1
                elif c == 10: state = 0
                elif not space: state, n["values"] = 7, n["values"] + 1
            elif state == 5:
                if c == ord("\\"): state = 6
                elif c == ord('"'): state, n["values"] = 7, n["values"] + 1
                elif c == 10: state, n["bad"] = 0, n["bad"] + 1
            elif state == 6:
                state, n["escapes"] = 5, n["escapes"] + 1
            elif c == 10:
                state = 0
        fields = (n["sections"], n["keys"], n["values"], n["quoted"], n["escapes"], n["comments"], n["bad"], state)
        return sum(v << (8 * k) for k, v in enumerate(fields)) & ((1 << 64) - 1)

    def test_state_machine_threaded_by_the_jit(self):
        # clang's switch in a loop: the JIT threads it (copies per state); every engine agrees.
        sample = b'[main]\nkey = "a\\"b"\n; c\nx=1\nbad!\n  y = 22\n[unterminated\n'
        self.assertEqual(self.lex_ini(sample), 0x2010101030402)
        pieces = [b"[s]", b"k", b" = ", b"=", b'"q \\" x"', b'"open', b"v", b"; n", b"\n", b"\t", b"!", b"_a.b", b"]"]
        rng = random.Random(1201)
        texts = [sample, b""] + [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 80))) for _ in range(30)]
        for build in ("ini_lexer.o", "ini_lexer.v4.o"):
            with rbpf.RawVm.from_elf(self.read(build)) as vm:
                vm.jit_compile()
                for text in texts:
                    expected = self.lex_ini(text)
                    self.assertEqual(vm.execute(text), expected, text)
                    self.assertEqual(vm.execute_jit(text), expected, text)
                listing = vm.jit_disassembly()
                self.assertRegex(listing, r"(?m)^; +\d+: \[\d+\] ")  # the copies, each naming the slot it copies

    def test_errors(self):
        with self.assertRaises(rbpf.ElfError) as cm:
            rbpf.RawVm.from_elf(self.read("rodata.o"), "nope")
        self.assertIn("nope", cm.exception.message)
        with self.assertRaises(rbpf.ElfError):
            rbpf.RawVm.from_elf(b"\x7fELF" + bytes(10))
        with rbpf.RawVm() as vm:
            with self.assertRaises(rbpf.ElfError):
                vm.load_elf(self.read("calls.o")[:100])


class HeaderMatchesLibrary(unittest.TestCase):
    """Every function rbpf.h declares is exported by the library, and the library exports nothing else."""

    def test_exports(self):
        header = os.environ.get("RBPF_HEADER") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "rbpf.h")
        if not os.path.exists(header):
            self.skipTest("rbpf.h not found (set RBPF_HEADER)")
        nm = shutil.which("nm")
        if nm is None or not rbpf.library_path.endswith(".so"):
            self.skipTest("needs nm and an ELF librbpf.so")
        declared = set(re.findall(r"RBPF_API\s+[^;(]*?\b(rbpf_\w+)\s*\(", open(header).read()))
        ubpf_header = os.path.join(os.path.dirname(header), "ubpf.h")
        if os.path.exists(ubpf_header):
            text = re.sub(r"/\*.*?\*/", "", open(ubpf_header).read(), flags=re.S)
            declared |= set(name for name in re.findall(r"\b(ubpf_\w+)\s*\(", text)
                            if not re.search(r"typedef[^;]*\(\*\s*" + name, text))
            # uBPF's JIT test hook: uBPF's own vm/test.c declares it, not uBPF's header.
            declared.add("ubpf_set_register_offset")
        out = subprocess.run([nm, "-D", "--defined-only", rbpf.library_path], check=True,
                             capture_output=True, text=True).stdout
        exported = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "T":
                name = parts[2].split("@")[0]
                if name.startswith("rbpf_") or name.startswith("ubpf_"):
                    exported.add(name)
        self.assertGreater(len(declared), 20)
        self.assertEqual(sorted(declared - exported), [], "declared but not exported")
        self.assertEqual(sorted(exported - declared), [], "exported but not declared")


class Install(unittest.TestCase):
    """pip installs the package offline, with the library inside it, and it finds that library."""

    def test_wheel_without_a_built_library_is_refused(self):
        import importlib.util
        import tempfile
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        with tempfile.TemporaryDirectory() as tmp:
            # A copy of the sources with no library beside them (as before ./build.sh).
            shutil.copytree(os.path.join(here, "rbpf"), os.path.join(tmp, "rbpf"),
                            ignore=shutil.ignore_patterns("*.so", "*.dylib", "*.dll", "__pycache__"))
            shutil.copy(os.path.join(here, "_build_backend.py"), tmp)
            spec = importlib.util.spec_from_file_location("backend_copy", os.path.join(tmp, "_build_backend.py"))
            backend = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(backend)
            with self.assertRaises(RuntimeError) as cm:
                backend.build_wheel(tmp)
            self.assertIn("run ./build.sh", str(cm.exception))

    def test_pip_install_bundles_and_finds_the_library(self):
        import sys
        import tempfile
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        lib = os.environ.get("RBPF_LIBRARY")
        if not lib or not lib.endswith(".so"):
            self.skipTest("set RBPF_LIBRARY to the built librbpf.so")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            shutil.copytree(here, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.so"))
            shutil.copy(lib, os.path.join(src, "rbpf", "librbpf.so"))
            target = os.path.join(tmp, "site")
            subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                            "--disable-pip-version-check", "--target", target, src], check=True)
            self.assertTrue(os.path.isfile(os.path.join(target, "rbpf", "librbpf.so")))
            env = dict(os.environ, PYTHONPATH=target)
            env.pop("RBPF_LIBRARY", None)
            out = subprocess.run([sys.executable, "-c",
                                  "import rbpf; vm = rbpf.NoDataVm(rbpf.assemble('mov r0, 7\\nexit')); "
                                  "print(vm.execute(), rbpf.library_path)"],
                                 env=env, cwd=tmp, check=True, capture_output=True, text=True).stdout.split()
            self.assertEqual(out[0], "7")
            self.assertTrue(out[1].startswith(target))


if __name__ == "__main__":
    unittest.main()
