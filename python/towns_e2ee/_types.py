"""Small value types shared by the modules."""

from __future__ import annotations

import enum
import json
from typing import NamedTuple, Optional


class Algorithm(enum.IntEnum):
    """towns_algorithm: the two group encryption algorithms."""
    GROUP_ENCRYPTION = 0  #: megolm, "r.group-encryption.v1.aes-sha2"
    HYBRID_GROUP_ENCRYPTION = 1  #: "grpaes"

    @property
    def wire_name(self) -> str:
        """The algorithm's name on the wire and in session key JSON."""
        return _WIRE_NAMES[self]


_WIRE_NAMES = {Algorithm.GROUP_ENCRYPTION: "r.group-encryption.v1.aes-sha2",
               Algorithm.HYBRID_GROUP_ENCRYPTION: "grpaes"}


class DeviceKeys(NamedTuple):
    """A device's published keys (unpadded base64)."""
    device_key: str
    fallback_key: str


class Miniblock(NamedTuple):
    """The miniblock a new hybrid (grpaes) session is bound to."""
    num: int
    hash: bytes


class Decrypted(NamedTuple):
    """A decrypted event: the payload bytes (for version 0, the UTF-8 text) and
    the megolm message index (None for grpaes)."""
    plaintext: bytes
    message_index: Optional[int]


def device_entry(d, name: str) -> dict:
    if isinstance(d, dict):
        if not isinstance(d.get("deviceKey"), str) or not isinstance(d.get("fallbackKey", ""), str):
            raise TypeError(f"{name} must have a str deviceKey and fallbackKey")
        return {"deviceKey": d["deviceKey"], "fallbackKey": d.get("fallbackKey", "")}
    if isinstance(d, tuple) and len(d) == 2 and all(isinstance(x, str) for x in d):
        return {"deviceKey": d[0], "fallbackKey": d[1]}
    raise TypeError(f"{name} must be DeviceKeys, a (device_key, fallback_key) tuple or a dict, "
                    f"not {type(d).__name__}")


def devices_json(devices, name: str = "devices") -> str:
    """[{"deviceKey", "fallbackKey"}...] from DeviceKeys, tuples or dicts."""
    if isinstance(devices, (str, bytes, dict)) or isinstance(devices, DeviceKeys):
        raise TypeError(f"{name} must be a sequence of devices, not one {type(devices).__name__}")
    return json.dumps([device_entry(d, f"{name}[{i}]") for i, d in enumerate(devices)])


def str_list_json(items, name: str) -> str:
    if isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of str, not one {type(items).__name__}")
    items = list(items)
    for i, x in enumerate(items):
        if not isinstance(x, str):
            raise TypeError(f"{name}[{i}] must be str, not {type(x).__name__}")
    return json.dumps(items)
