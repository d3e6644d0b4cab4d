#!/usr/bin/env python3
"""bitnet-gguf against the Python `gguf` package, both directions.

usage: gguf_interop.py check-ours FILE.gguf EXPECTED.json
       gguf_interop.py write-theirs FILE.gguf
       gguf_interop.py check-theirs DUMP.json

check-ours: gguf.GGUFReader opens the file our writer made (crates/bitnet-gguf/examples/
interop.rs), every key has the type and value written, and every tensor dequantised by
gguf.quants.dequantize equals the values our example printed (F32, F16 and TQ2_0 exactly).
write-theirs / check-theirs: gguf.GGUFWriter writes keys of several types and F32/F16 tensors;
our reader's JSON dump must give back the same types and values.
"""

import json
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as V
from gguf.quants import dequantize

OURS = {
    "general.architecture": (V.STRING, "interop"),
    "t.u8": (V.UINT8, 200),
    "t.i8": (V.INT8, -100),
    "t.u16": (V.UINT16, 60000),
    "t.i16": (V.INT16, -30000),
    "t.u32": (V.UINT32, 4_000_000_000),
    "t.i32": (V.INT32, -2_000_000_000),
    "t.f32": (V.FLOAT32, np.float32(0.1)),
    "t.bool": (V.BOOL, True),
    "t.string": (V.STRING, "héllo 🦀"),
    "t.u64": (V.UINT64, 1 << 60),
    "t.i64": (V.INT64, -(1 << 60)),
    "t.f64": (V.FLOAT64, 0.1),
    "t.arr_i32": (V.ARRAY, [-1, 0, 7]),
    "t.arr_f32": (V.ARRAY, [0.5, -1.25]),
    "t.arr_str": (V.ARRAY, ["a", "Ġb"]),
    "t.arr_u8": (V.ARRAY, [1, 2, 3]),
}

failures = []


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def field_value(field):
    if field.types[0] == V.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    if field.types[0] == V.ARRAY:
        if field.types[-1] == V.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i][0].item() for i in field.data]
    return field.parts[field.data[0]][0]


def check_ours(path, expected_path):
    expected = json.load(open(expected_path))
    r = gguf.GGUFReader(path)
    for key, (ty, value) in OURS.items():
        f = r.fields.get(key)
        check(f"key {key} present", f is not None)
        if f is None:
            continue
        check(f"key {key} type {ty.name}", f.types[0] == ty)
        got = field_value(f)
        if isinstance(value, list) and value and isinstance(value[0], float):
            check(f"key {key} value", np.array_equal(np.array(got, np.float32), np.array(value, np.float32)))
        else:
            check(f"key {key} value {got!r}", got == value)
    tensors = {t.name: t for t in r.tensors}
    for name, values in expected.items():
        t = tensors.get(name)
        check(f"tensor {name} present", t is not None)
        if t is None:
            continue
        deq = dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
        check(f"tensor {name} ({t.tensor_type.name}) values equal", np.array_equal(deq, np.array(values, np.float32)))


def write_theirs(path):
    w = gguf.GGUFWriter(path, "theirs")
    w.add_uint8("p.u8", 7)
    w.add_int16("p.i16", -7)
    w.add_uint32("p.u32", 123456)
    w.add_int64("p.i64", -(1 << 40))
    w.add_float32("p.f32", 1.5)
    w.add_float64("p.f64", 2.25)
    w.add_bool("p.bool", False)
    w.add_string("p.string", "naïve")
    w.add_array("p.arr_str", ["x", "yz"])
    w.add_array("p.arr_i32", [3, -4])
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b", (np.arange(8, dtype=np.float32) / 4).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_theirs(dump_path):
    d = json.load(open(dump_path))
    m = d["metadata"]
    want = {
        "general.architecture": ("string", "theirs"),
        "p.u8": ("u8", 7),
        "p.i16": ("i16", -7),
        "p.u32": ("u32", 123456),
        "p.i64": ("i64", -(1 << 40)),
        "p.f32": ("f32", 1.5),
        "p.f64": ("f64", 2.25),
        "p.bool": ("bool", False),
        "p.string": ("string", "naïve"),
        "p.arr_str": ("array:string", ["x", "yz"]),
        "p.arr_i32": ("array:i32", [3, -4]),
    }
    for key, (ty, value) in want.items():
        got = m.get(key)
        check(f"our reader: {key} = {value!r} ({ty})", got == {"type": ty, "value": value})
    t = d["tensors"]
    check("our reader: tensor a F32 [3, 2]", t["a"]["type"] == "F32" and t["a"]["dims"] == [3, 2])
    check("our reader: tensor a values", t["a"]["values"] == [float(x) for x in range(6)])
    check("our reader: tensor b F16 values", t["b"]["type"] == "F16" and t["b"]["values"] == [x / 4 for x in range(8)])


cmd = sys.argv[1]
if cmd == "check-ours":
    check_ours(sys.argv[2], sys.argv[3])
elif cmd == "write-theirs":
    write_theirs(sys.argv[2])
elif cmd == "check-theirs":
    check_theirs(sys.argv[2])
else:
    sys.exit(f"unknown command {cmd}")
if failures:
    sys.exit(f"{len(failures)} interop check(s) failed")
