"""Cut an ONNX model file into sub-models at named tensors, streaming the weights file to file.

``onnx.utils.Extractor`` (or ``onnx.load`` and a copy) holds the parsed model, a copy per part and each
part's serialisation at once: about three times the file (1 GB for emotion2vec+ large int8's 330 MB,
measured), which is more than the analysis it serves. :func:`cut` reads the file's protobuf wire format
instead: only the graph's nodes and value infos are parsed (small); each initializer is found by its name
and copied as its original bytes with ``os.copy_file_range`` (in the kernel; chunked reads where that is
missing), so deriving the parts costs a few MB of memory whatever the model's size.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# field numbers of onnx.proto
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INIT, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 2, 5, 11, 12, 13
_TENSOR_NAME = 8


@dataclass(frozen=True)
class Part:
    """One sub-model: the nodes that ``outputs`` need, fed with ``inputs`` (graph inputs or inner tensors)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``buf[pos]``: ``(value, position after it)``; ValueError when malformed.
    (Also sensevoice/validate.py's reader of SenseVoice's metadata: one varint decoder.)"""
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


_varint = read_varint


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: Any, start: int, end: int):
    """``(number, first byte of the field, first byte of its value, end)`` for each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        key, p = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, q = _varint(buf, p)
        elif wire == 1:
            q = p + 8
        elif wire == 2:
            n, p = _varint(buf, p)
            q = p + n
        elif wire == 5:
            q = p + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        yield number, pos, p, q
        pos = q


def _tensor_name(buf: Any, start: int, end: int) -> str:
    for number, _, p, q in _fields(buf, start, end):
        if number == _TENSOR_NAME:
            return bytes(buf[p:q]).decode("utf-8")
    return ""


def _needed(nodes: Sequence[Any], outputs: Sequence[str], stop: set[str]) -> tuple[list[int], set[str]]:
    """Indices (graph order) of the nodes ``outputs`` depend on, not looking past ``stop``; and the names
    they read that none of them produces (graph inputs, initializers, ``stop``)."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    chosen: set[int] = set()
    leaves: set[str] = set()
    todo = list(outputs)
    while todo:
        name = todo.pop()
        if name in stop or name not in producer:
            leaves.add(name)
            continue
        i = producer[name]
        if i not in chosen:
            chosen.add(i)
            todo.extend(x for x in nodes[i].input if x)
    return sorted(chosen), leaves


def _write(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy(src: int, dst: int, offset: int, count: int) -> None:
    """``count`` bytes of file ``src`` from ``offset`` appended to ``dst``, without holding them in memory."""
    while count > 0:
        try:
            n = os.copy_file_range(src, dst, count, offset)
        except (AttributeError, OSError):  # not on this OS, or not between these file systems
            n = 0
        if n <= 0:  # 1 MB reads
            n = min(count, 1 << 20)
            _write(dst, os.pread(src, n, offset))
        offset, count = offset + n, count - n


def cut(model_file: Path, parts: Sequence[Part], dst: Sequence[Path],
        types: Mapping[str, tuple[int, Sequence[str]]]) -> bool:
    """Write each of ``parts`` of ``model_file`` to the matching ``dst`` file; False (nothing written) when a
    part's output is not in the graph or a part would need a tensor that is neither an initializer nor
    one of its inputs. ``types``: element type and dims of each inner tensor used as a part's input or
    output (graph inputs and outputs keep their own)."""
    from onnx import GraphProto, NodeProto, ValueInfoProto, helper

    model_file = Path(model_file)
    with open(model_file, "rb") as src, mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        size = len(buf)
        head: list[tuple[int, int]] = []  # the model's other fields, kept as they are
        graph = None
        for number, at, p, q in _fields(buf, 0, size):
            if number == _MODEL_GRAPH:
                graph = (p, q)
            else:
                head.append((at, q))
        if graph is None:
            return False
        nodes: list[Any] = []
        inits: dict[str, tuple[int, int]] = {}
        values: dict[str, Any] = {}  # graph inputs, outputs and value infos by name
        graph_io: dict[int, list[str]] = {_GRAPH_INPUT: [], _GRAPH_OUTPUT: []}
        for number, at, p, q in _fields(buf, *graph):
            if number == _GRAPH_NODE:
                nodes.append(NodeProto.FromString(bytes(buf[p:q])))
            elif number == _GRAPH_INIT:
                inits[_tensor_name(buf, p, q)] = (at, q)
            elif number in (_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO):
                v = ValueInfoProto.FromString(bytes(buf[p:q]))
                values.setdefault(v.name, v)
                if number in graph_io:
                    graph_io[number].append(v.name)
            # other graph fields (doc string, annotations, sparse initializers) are not carried over
        produced = {o for n in nodes for o in n.output}
        plans = []
        for part in parts:
            if any(o not in produced for o in part.outputs):
                return False
            if any(x not in graph_io[_GRAPH_INPUT] and not (x in produced and x in types) for x in part.inputs):
                return False  # an input the model does not have (an older export without ``lengths``)
            chosen, leaves = _needed(nodes, part.outputs, set(part.inputs))
            if leaves - set(inits) - set(part.inputs):
                return False
            plans.append(chosen)

        def info(name: str) -> Any:
            if name in values and (name in graph_io[_GRAPH_INPUT] or name in graph_io[_GRAPH_OUTPUT]):
                return values[name]
            elem, dims = types[name]
            return helper.make_tensor_value_info(name, elem, list(dims))

        for part, chosen, path in zip(parts, plans, dst):
            picked = [nodes[i] for i in chosen]
            reads = {x for n in picked for x in n.input}
            ranges = [r for name, r in inits.items() if name in reads]
            small = GraphProto(name=part.name, node=picked, input=[info(x) for x in part.inputs],
                               output=[info(x) for x in part.outputs]).SerializeToString()
            body = len(small) + sum(b - a for a, b in ranges)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for a, b in head:
                    _write(fd, buf[a:b])
                _write(fd, _enc_varint(_MODEL_GRAPH << 3 | 2) + _enc_varint(body) + small)
                for a, b in ranges:  # each initializer field as its original bytes (tag, length, tensor)
                    _copy(src.fileno(), fd, a, b - a)
            finally:
                os.close(fd)
    return True
