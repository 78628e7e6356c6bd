"""Code patches: the difference between a base boot file and a personalized one, authenticated, in a few dozen bytes.

A personalized model is the base boot `.tflite` with only the bytes of its
code tensors (`z_l`, role `"codes"`) changed: every other byte (scales,
generator, heads, backbone) is the base's. A patch carries just those
bytes, so a device holding the base file re-synthesizes the personalized
kernels from it.

Format, version 1 (integers little-endian; every byte counted by
`patch_size`):

    offset  bytes  field
    0       2      magic b"HP"
    2       1      version (1)
    3       8      base id: the first 8 bytes of SHA-256 of the base file
    11      4      counter: uint32, greater than the last counter the device applied
    15      1      record count n (1..255)
    16      3 + L  n records: uint16 buffer index, uint8 length L (1..255), L bytes
    end-8   8      tag: HMAC-SHA256(key, every byte before the tag), first 8 bytes

A record replaces the whole data of one constant buffer of the base
(`model->buffers()->Get(index)->data()` on the device) with as many bytes
as it had, so a patch rewrites a file in place. Only buffers of role
`"codes"` may be named. The key (16 bytes or more) is the user's: one per
device, or one per fleet; it is never in the patch or the file. An 8-byte
tag leaves a forger one chance in 2^64 per attempt; the counter refuses a
replayed patch; the base id refuses a patch made for another file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import struct

from hypertiny_keras.tflite.flatbuffer import buffer_spans
from hypertiny_keras.tflite.inspect import inspect_tflite

MAGIC = b"HP"
VERSION = 1
BASE_ID_BYTES = 8
TAG_BYTES = 8
MIN_KEY_BYTES = 16
_HEADER = struct.Struct("<2sB8sIB")  # magic, version, base id, counter, record count
_RECORD = struct.Struct("<HB")  # buffer index, length
MAX_COUNTER = 2**32 - 1


class PatchError(ValueError):
    """A patch (or its base, key or counter) is refused; nothing was written."""


@dataclasses.dataclass(frozen=True)
class Patch:
    """A parsed, authenticated patch: `records` maps a buffer index to its new bytes."""

    base_id: bytes
    counter: int
    records: dict[int, bytes]
    size: int

    def byte_split(self) -> dict[str, int]:
        """Bytes of the patch by part: header, record headers, values, tag (they sum to `size`)."""
        values = sum(len(v) for v in self.records.values())
        return {"header": _HEADER.size, "record headers": _RECORD.size * len(self.records), "values": values,
                "tag": TAG_BYTES}


def base_id(base: bytes) -> bytes:
    """The 8-byte id of a base file in a patch: the first bytes of its SHA-256."""
    return hashlib.sha256(base).digest()[:BASE_ID_BYTES]


def patch_size(value_bytes: list[int]) -> int:
    """Bytes of a patch whose records hold `value_bytes[i]` values each (header and tag included)."""
    return _HEADER.size + sum(_RECORD.size + n for n in value_bytes) + TAG_BYTES


def code_buffers(base: bytes, name: str = "base") -> dict[int, tuple[int, int]]:
    """`{buffer index: (offset, length)}` of the code tensors of a boot file: the only bytes a patch may change.

    Raises:
        PatchError: the file is not a readable `.tflite`, or holds no code tensor (a frozen
            file, or kernel generators that read no code, e.g. `lowrank`).
    """
    try:
        roles = inspect_tflite(base, name)["buffer_roles"]
        spans = buffer_spans(base)
    except ValueError as error:
        raise PatchError(str(error)) from None
    codes = {index: spans[index] for index, role in sorted(roles.items()) if role == "codes" and index in spans}
    if not codes:
        raise PatchError(f"{name}: no code tensors to patch (a boot file of a kernel generator that reads codes "
                         "is needed: dense, factorized, lowrank_shared, kronecker_shared)")
    return codes


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise PatchError(f"the key must be at least {MIN_KEY_BYTES} bytes")
    return bytes(key)


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]


def make_patch(base: bytes, personalized: bytes, key: bytes, counter: int) -> bytes:
    """The patch that turns `base` into `personalized`, signed with `key`.

    Args:
        base: the base boot file's bytes (the file every device holds).
        personalized: the same file with only code-tensor bytes changed.
        key: the HMAC key, 16 bytes or more.
        counter: 1..2^32-1, greater than any counter the device has applied.

    Raises:
        PatchError: bad key or counter, files of different lengths, a byte changed
            outside the code tensors (named by buffer and offset), or no change at all.
    """
    key = _check_key(key)
    if not 0 < counter <= MAX_COUNTER:
        raise PatchError(f"counter must be in 1..{MAX_COUNTER}, got {counter}")
    codes = code_buffers(base)
    if len(personalized) != len(base):
        raise PatchError(f"the personalized file has {len(personalized):,} bytes, the base {len(base):,}: "
                         "only code bytes may differ")
    changed = [i for i, (a, b) in enumerate(zip(base, personalized)) if a != b]
    inside = {i for offset, length in codes.values() for i in range(offset, offset + length)}
    outside = [i for i in changed if i not in inside]
    if outside:
        raise PatchError(f"the personalized file differs from the base outside the code tensors "
                         f"({len(outside)} byte(s), first at offset {outside[0]:,})")
    records = {index: bytes(personalized[offset:offset + length]) for index, (offset, length) in codes.items()
               if personalized[offset:offset + length] != base[offset:offset + length]}
    if not records:
        raise PatchError("the personalized file equals the base: nothing to patch")
    if len(records) > 255 or any(index > 0xFFFF or len(v) > 255 for index, v in records.items()):
        raise PatchError("a version-1 patch holds at most 255 records of at most 255 bytes, buffer index < 65536")
    body = _HEADER.pack(MAGIC, VERSION, base_id(base), counter, len(records))
    body += b"".join(_RECORD.pack(index, len(v)) + v for index, v in records.items())
    return body + _tag(key, body)


def read_patch(patch: bytes, key: bytes | None) -> Patch:
    """Parse `patch` and check its structure and, with `key`, its tag (not its base or counter: `apply_patch` does).

    `key=None` reads the fields without authenticating them (`describe_patch` of a patch whose key is not at hand).

    Raises:
        PatchError: truncated or trailing bytes, wrong magic or version, or a tag that `key` does not give.
    """
    key = None if key is None else _check_key(key)
    patch = bytes(patch)
    if len(patch) < _HEADER.size + TAG_BYTES:
        raise PatchError(f"the patch is truncated: {len(patch)} bytes, a patch has at least "
                         f"{_HEADER.size + TAG_BYTES}")
    magic, version, base, counter, count = _HEADER.unpack_from(patch)
    if magic != MAGIC:
        raise PatchError(f"not a HyperTinyPW patch (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise PatchError(f"patch version {version} is not supported (this package reads version {VERSION})")
    body, tag = patch[:-TAG_BYTES], patch[-TAG_BYTES:]
    if key is not None and not hmac.compare_digest(_tag(key, body), tag):
        raise PatchError("the patch's tag does not match: wrong key, or the patch was altered or truncated")
    records, position = {}, _HEADER.size
    for _ in range(count):
        if position + _RECORD.size > len(body):
            raise PatchError("the patch is truncated inside its records")
        index, length = _RECORD.unpack_from(body, position)
        position += _RECORD.size
        if length == 0 or position + length > len(body):
            raise PatchError(f"record for buffer {index}: length {length} does not fit the patch")
        if index in records:
            raise PatchError(f"buffer {index} is named twice")
        records[index] = body[position:position + length]
        position += length
    if count == 0 or position != len(body):
        raise PatchError(f"the patch's {count} record(s) do not fill it ({len(body) - position} bytes left over)")
    return Patch(base_id=base, counter=counter, records=records, size=len(patch))


def apply_patch(base: bytes, patch: bytes, key: bytes, last_counter: int = 0) -> bytes:
    """The personalized file: `base` with the patch's code bytes written in place.

    Args:
        base: the base boot file's bytes.
        patch: a patch from `make_patch`.
        key: the HMAC key it was signed with.
        last_counter: the largest counter already applied (0: none); the patch's must exceed it.

    Raises:
        PatchError (one line each): bad tag or structure (`read_patch`), a patch made for
            another base file, a replayed counter, a record naming a buffer that is not a
            code tensor of the base, or of another length than that buffer.
    """
    parsed = read_patch(patch, _check_key(key))  # a key is required here: never an unauthenticated patch
    if parsed.base_id != base_id(base):
        raise PatchError(f"the patch was made for another base file (id {parsed.base_id.hex()}, "
                         f"this file {base_id(base).hex()})")
    if parsed.counter <= last_counter:
        raise PatchError(f"replayed patch: counter {parsed.counter} <= {last_counter}, the last one applied")
    codes = code_buffers(base)
    out = bytearray(base)
    for index, values in parsed.records.items():
        if index not in codes:
            raise PatchError(f"buffer {index} is not a code tensor of the base file: a patch may change codes only")
        offset, length = codes[index]
        if len(values) != length:
            raise PatchError(f"buffer {index} holds {length} bytes, the patch gives {len(values)}")
        out[offset:offset + length] = values
    return bytes(out)


def describe_patch(patch: bytes, key: bytes | None = None) -> dict:
    """A JSON-ready description: counter, base id, records (buffer, bytes, int8 values), byte split, `authenticated`.

    Without `key` the tag is not checked (`authenticated` is None) and nothing read is trusted.
    """
    parsed = read_patch(patch, key)
    authenticated = None if key is None else True
    return {
        "bytes": parsed.size,
        "byte_split": parsed.byte_split(),
        "base_id": parsed.base_id.hex(),
        "counter": parsed.counter,
        "records": [{"buffer": index, "bytes": len(v), "int8": list(struct.unpack(f"<{len(v)}b", v))}
                    for index, v in parsed.records.items()],
        "authenticated": authenticated,
    }
