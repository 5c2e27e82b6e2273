"""Hailo target architectures: names, families, HEF arch codes and device compatibility.

Facts from HailoRT (``device_internal``) and the DFC: a Hailo-8 device runs HEFs built for
Hailo-8, 8P, 8R and 8L; a Hailo-8L device runs only Hailo-8L HEFs; HEF arch 103 runs on
Hailo-15H and Hailo-10H.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ArchError


@dataclass(frozen=True)
class Arch:
    """A DFC target architecture."""

    name: str  # the DFC ``hw_arch`` string, e.g. "hailo8l"
    family: str  # support-table family: "hailo8" (DFC 3.x) or "hailo15" (DFC 5.x)
    device_name: str  # as HailoRT prints it, e.g. "HAILO8L"
    toolchain: str  # "DFC 3.x + HailoRT 4.x" or "DFC 5.x + HailoRT 5.x"
    tops: float | None = None


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("hailo8", "hailo8", "HAILO8", "DFC 3.x + HailoRT 4.x", 26.0),
        Arch("hailo8r", "hailo8", "HAILO8R", "DFC 3.x + HailoRT 4.x", 26.0),
        Arch("hailo8l", "hailo8", "HAILO8L", "DFC 3.x + HailoRT 4.x", 13.0),
        Arch("hailo15h", "hailo15", "HAILO15H", "DFC 5.x + HailoRT 5.x"),
        Arch("hailo15m", "hailo15", "HAILO15M", "DFC 5.x + HailoRT 5.x"),
        Arch("hailo15l", "hailo15", "HAILO15L", "DFC 5.x + HailoRT 5.x"),
        Arch("hailo10h", "hailo15", "HAILO10H", "DFC 5.x + HailoRT 5.x"),
    )
}

#: HEF header ``hw_arch`` enum values → names (HailoRT 5.x names 103 HAILO1XH; older 5 = HAILO10H).
HEF_ARCH_NAMES: dict[int, str] = {
    0: "HAILO8",
    1: "HAILO8P",
    2: "HAILO8R",
    3: "HAILO8L",
    4: "HAILO15M",
    5: "HAILO10H",
    6: "HAILO15L",
    103: "HAILO15H",
}

# Device (as HailoRT names it) → HEF arch names it can run.
_DEVICE_RUNS: dict[str, frozenset[str]] = {
    "HAILO8": frozenset({"HAILO8", "HAILO8P", "HAILO8R", "HAILO8L"}),
    "HAILO8R": frozenset({"HAILO8", "HAILO8P", "HAILO8R", "HAILO8L"}),
    "HAILO8L": frozenset({"HAILO8L"}),
    "HAILO15H": frozenset({"HAILO15H"}),
    "HAILO10H": frozenset({"HAILO15H", "HAILO10H"}),
    "HAILO15M": frozenset({"HAILO15M"}),
    "HAILO15L": frozenset({"HAILO15L"}),
}

# Device name → the --arch to compile for it.
_DEVICE_TO_ARCH = {a.device_name: a.name for a in ARCHS.values()}


def get_arch(name: str) -> Arch:
    """Return the :class:`Arch` called ``name`` (case-insensitive); ArchError lists valid names."""
    key = str(name).strip().lower().replace("-", "")
    if key not in ARCHS:
        raise ArchError(f"unknown arch {name!r}; valid archs: {', '.join(ARCHS)}")
    return ARCHS[key]


def hef_arch_name(code: int) -> str:
    """Name of a HEF ``hw_arch`` enum value, e.g. 1 → "HAILO8P"; unknown codes → "UNKNOWN(n)"."""
    return HEF_ARCH_NAMES.get(int(code), f"UNKNOWN({int(code)})")


def hef_runs_on(hef_arch: str, device_arch: str) -> bool:
    """Whether a HEF built for ``hef_arch`` (HEF name) runs on a ``device_arch`` device."""
    device = device_arch.upper()
    if device == "HAILO1XH":
        device = "HAILO15H"
    hef = "HAILO15H" if hef_arch.upper() == "HAILO1XH" else hef_arch.upper()
    return hef in _DEVICE_RUNS.get(device, frozenset({device}))


def check_hef_compatible(hef_arch: str, device_arch: str) -> None:
    """Raise ArchError, in the words a user needs, when the HEF cannot run on the device."""
    if hef_runs_on(hef_arch, device_arch):
        return
    target = _DEVICE_TO_ARCH.get(device_arch.upper(), device_arch.lower())
    raise ArchError(
        f"HEF built for {hef_arch.upper()}, this device is {device_arch.upper()}: "
        f"recompile with --arch {target}"
    )
