"""Read a PyTorch checkpoint (``model.pt``) without torch, and never run code named in the file.

A ``torch.save`` file is a zip archive: ``<root>/data.pkl`` (a pickle of the saved object) and one
member ``<root>/data/<key>`` of raw bytes per tensor storage. A plain ``pickle.load`` would import and
call whatever the pickle names, so :class:`_SafeUnpickler` resolves every global itself:

* tensor records (``torch._utils._rebuild_tensor_v2`` and kin, over a ``torch.*Storage``) become
  numpy arrays viewing the storage bytes (memory-mapped when the member is stored uncompressed, as
  torch writes it, so a 2 GB checkpoint costs memory only for the tensors used);
* plain containers stay (``dict``, ``list``, ``tuple``; ``OrderedDict`` becomes a ``dict``);
* anything else (an optimizer class, ``argparse.Namespace``, a numpy scalar, ``torch.device``) becomes
  an inert :class:`Opaque` placeholder that records its name and arguments and does nothing.

No PyPI library does this with a maintenance record callsense could rely on, so this is the small
reader the format needs (FunASR's own checkpoints use nothing beyond it).

:func:`select_state` then takes the weights from where FunASR's loader
(``funasr.train_utils.load_pretrained_model``) takes them: ``state_dict``, then ``model_state_dict``,
then ``model``, and drops a DDP ``module.`` prefix.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from callsense.errors import ModelFormatError

# Storage classes as torch pickles them ("torch", "<Name>Storage") -> numpy dtype. bfloat16 has no
# numpy dtype: it is read as uint16 and widened to float32 (its upper 16 bits) by _as_numpy.
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}
# dtype objects (``torch.float32``) as pickled by _rebuild_tensor_v3.
_TORCH_DTYPES: dict[str, str] = {
    "float32": "<f4", "float": "<f4", "float64": "<f8", "double": "<f8", "float16": "<f2", "half": "<f2",
    "bfloat16": "<u2", "int64": "<i8", "long": "<i8", "int32": "<i4", "int": "<i4", "int16": "<i2",
    "int8": "i1", "uint8": "u1", "bool": "?",
}
_REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
               "_rebuild_parameter_with_state"}


class Opaque:
    """Stands in for any object the checkpoint names that is neither a tensor nor a plain container."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any):  # NEWOBJ calls cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<opaque {self.qualname}>"


class _OrderedDict(dict):
    """``collections.OrderedDict`` as a plain dict; its pickled state (``_metadata``) is ignored."""

    def __setstate__(self, state: Any) -> None:
        pass


class _Dtype:
    def __init__(self, name: str):
        self.name = name


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Storage:
    """One storage of the archive: a flat numpy array of its bytes in its dtype."""

    def __init__(self, data: np.ndarray, dtype: str, bf16: bool = False):
        self.data = data
        self.dtype = dtype
        self.bf16 = bf16


def _as_numpy(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
              dtype: str | None = None, bf16: bool | None = None) -> np.ndarray:
    dt = np.dtype(dtype or storage.dtype)
    flat = storage.data if storage.data.dtype == dt else storage.data.view(dt)
    if not size:
        arr = flat[offset:offset + 1].reshape(())
    else:
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                              strides=tuple(s * dt.itemsize for s in stride), writeable=False)
    if storage.bf16 if bf16 is None else bf16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *rest: Any) -> Any:
    if not isinstance(storage, _Storage):
        return Opaque()
    return _as_numpy(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_tensor_v3(storage: Any, offset: int, size: tuple, stride: tuple, requires_grad: Any,
                       hooks: Any, dtype: Any, *rest: Any) -> Any:
    if not isinstance(storage, _Storage) or not isinstance(dtype, _Dtype):
        return Opaque()
    code = _TORCH_DTYPES.get(dtype.name)
    if code is None:
        return Opaque()
    return _as_numpy(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride), code,
                     bf16=dtype.name == "bfloat16")


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: _Archive):
        super().__init__(file)
        self.archive = archive

    def find_class(self, module: str, name: str) -> Any:
        # Nothing named in the file is imported: every answer comes from this module.
        if module == "collections" and name == "OrderedDict":
            return _OrderedDict
        if module == "builtins" and name in ("dict", "list", "tuple"):
            return {"dict": dict, "list": list, "tuple": tuple}[name]
        if module == "torch._utils":
            if name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
                return _rebuild_tensor
            if name == "_rebuild_tensor_v3":
                return _rebuild_tensor_v3
            if name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
                return _rebuild_parameter
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _Dtype(name)
        return type(name, (Opaque,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", storage type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            return Opaque()
        storage_type, key = pid[1], str(pid[2])
        name = storage_type.name if isinstance(storage_type, _StorageType) else "UntypedStorage"
        return self.archive.storage(key, name)


class _Archive:
    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path)
        names = self.zip.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise ModelFormatError("not a PyTorch zip checkpoint (no data.pkl)", source=path,
                                   hint="the download is incomplete or not a model.pt; pull it again")
        self.root = pkl[0].split("/")[0]
        self.pkl = pkl[0]
        order = f"{self.root}/byteorder"
        if order in names and self.zip.read(order).strip() not in (b"", b"little"):
            raise ModelFormatError("big-endian checkpoints are not supported", source=path)
        self.cache: dict[str, _Storage] = {}

    def storage(self, key: str, type_name: str) -> _Storage:
        if key in self.cache:
            return self.cache[key]
        member = f"{self.root}/data/{key}"
        try:
            info = self.zip.getinfo(member)
        except KeyError as e:
            raise ModelFormatError(f"tensor storage {key} is missing from the archive", source=self.path,
                                   hint="the download is incomplete or corrupt; pull it again") from e
        dtype = _STORAGE_DTYPES.get(type_name, "u1")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size:
            # Local header: 30 bytes + name + extra field, then the data (torch aligns it to 64 bytes).
            with self.path.open("rb") as f:
                f.seek(info.header_offset)
                header = f.read(30)
            if header[:4] != b"PK\x03\x04":
                raise ModelFormatError("corrupt zip member header", source=self.path)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            raw = np.memmap(self.path, dtype=np.uint8, mode="r", offset=start, shape=(info.file_size,))
        else:
            raw = np.frombuffer(self.zip.read(member), dtype=np.uint8)
        usable = len(raw) - len(raw) % np.dtype(dtype).itemsize
        st = _Storage(raw[:usable].view(dtype), dtype, bf16=type_name == "BFloat16Storage")
        self.cache[key] = st
        return st

    def load(self) -> Any:
        with self.zip.open(self.pkl) as f:
            return _SafeUnpickler(f, self).load()


def read_checkpoint(path: Path) -> Any:
    """The object a ``torch.save`` zip file holds, with tensors as read-only numpy arrays."""
    path = Path(path)
    try:
        return _Archive(path).load()
    except ModelFormatError:
        raise
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            struct.error, AttributeError, IndexError) as e:
        raise ModelFormatError(f"cannot read the checkpoint: {e}", source=path,
                               hint="the download is incomplete or corrupt; pull it again") from e


def select_state(obj: Any) -> dict[str, Any]:
    """The state dict inside a loaded checkpoint, found where FunASR's loader looks.

    ``state_dict``, then ``model_state_dict``, then ``model`` (each only when present), then a DDP
    ``module.`` prefix is dropped. Entries that are not arrays (step counters, placeholders) are left out.
    """
    state = obj
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelFormatError("the checkpoint holds no state dict")
    return {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, np.ndarray)}


def read_state(path: Path) -> dict[str, np.ndarray]:
    """The model weights of a FunASR ``model.pt`` as numpy arrays (see :func:`select_state`)."""
    try:
        return select_state(read_checkpoint(path))
    except ModelFormatError as e:
        if e.source is None:
            raise ModelFormatError(e.message, source=path, hint=e.hint) from e
        raise
