"""Execution providers and the ``HailoExecutionProvider`` options, given the ONNX Runtime way.

``providers=[("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"]`` or
``providers=[...], provider_options=[{...}, {}]``. Option values may be strings, as ONNX Runtime
passes them ("1", "true").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Union

from ..errors import HailoOrtError

HAILO_PROVIDER = "HailoExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

ProviderSpec = Union[str, tuple[str, Mapping[str, Any]]]


class ProviderOptionError(HailoOrtError, ValueError):
    """An unknown or malformed ``HailoExecutionProvider`` option, or a malformed provider list."""


_DEVICES = ("auto", "hailort", "emulator")
_FALLBACKS = ("cpu", "error")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class HailoOptions:
    """Options of the ``HailoExecutionProvider`` (see docs/runtime.md for the table)."""

    device: str = "auto"  # "auto" | "hailort" | "emulator"
    device_id: str | None = None  # HailoRT device id (e.g. PCIe BDF "0000:01:00.0")
    batch_size: int = 1  # frames per device batch
    group_id: str | None = None  # HailoRT VDevice group id, shared between sessions/processes
    multi_process_service: bool = False  # share the device through the HailoRT service
    timeout_ms: int = 10_000  # per device batch
    fallback: str = "cpu"  # "cpu": run float fallback bodies on the CPU; "error": raise
    latency_ms: float = 0.0  # emulator only: modelled fixed latency per batch

    def to_strings(self) -> dict[str, str]:
        """The options as ONNX Runtime reports provider options: every value a string."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                out[f.name] = ""
            elif isinstance(value, bool):
                out[f.name] = "1" if value else "0"
            else:
                out[f.name] = str(value)
        return out


KNOWN_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(HailoOptions))


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ProviderOptionError(f"HailoExecutionProvider option {name}={value!r}: expected a boolean")


def _as_int(name: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ProviderOptionError(
            f"HailoExecutionProvider option {name}={value!r}: expected an integer"
        ) from None
    if isinstance(number, bool) or number < minimum:
        raise ProviderOptionError(
            f"HailoExecutionProvider option {name}={value!r}: expected an integer >= {minimum}"
        )
    return number


def _as_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProviderOptionError(
            f"HailoExecutionProvider option {name}={value!r}: expected a number"
        ) from None
    if number < 0:
        raise ProviderOptionError(f"HailoExecutionProvider option {name}={value!r}: must be >= 0")
    return number


def _as_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ProviderOptionError(
            f"HailoExecutionProvider option {name}={value!r}: expected one of {', '.join(choices)}"
        )
    return text


def _as_optional_str(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def parse_hailo_options(options: Mapping[str, Any] | None) -> HailoOptions:
    """Validate ``HailoExecutionProvider`` options; unknown names raise, listing the known ones."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(KNOWN_OPTIONS))
    if unknown:
        raise ProviderOptionError(
            f"unknown HailoExecutionProvider option(s) {', '.join(map(repr, unknown))}; "
            f"known options: {', '.join(KNOWN_OPTIONS)}"
        )
    kw: dict[str, Any] = {}
    for name, value in options.items():
        if name == "device":
            kw[name] = _as_choice(name, value, _DEVICES)
        elif name == "fallback":
            kw[name] = _as_choice(name, value, _FALLBACKS)
        elif name in ("device_id", "group_id"):
            kw[name] = _as_optional_str(value)
        elif name == "batch_size":
            kw[name] = _as_int(name, value, 1)
        elif name == "timeout_ms":
            kw[name] = _as_int(name, value, 1)
        elif name == "multi_process_service":
            kw[name] = _as_bool(name, value)
        elif name == "latency_ms":
            kw[name] = _as_float(name, value)
    return HailoOptions(**kw)


@dataclass(frozen=True)
class ProviderChoice:
    """A provider list split into the Hailo part and what goes to ONNX Runtime."""

    hailo: HailoOptions | None  # None: HailoExecutionProvider not requested
    ort_providers: list[str]
    ort_provider_options: list[dict[str, Any]]


def _is_spec_with_options(spec: Any) -> bool:
    """Whether ``spec`` is one ``(name, options dict)`` provider entry."""
    return (
        isinstance(spec, (tuple, list))
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    )


def split_providers(
    providers: Sequence[ProviderSpec] | None,
    provider_options: Sequence[Mapping[str, Any]] | None = None,
) -> ProviderChoice:
    """Normalise ONNX Runtime's two forms of providers / options and split off the Hailo one.

    ``providers=None`` means the Hailo provider with default options, then ONNX Runtime's
    default (CPU).
    """
    if providers is None:
        if provider_options:
            raise ProviderOptionError("provider_options given without providers")
        return ProviderChoice(HailoOptions(), [CPU_PROVIDER], [{}])
    if isinstance(providers, str) or _is_spec_with_options(providers):
        providers = [providers]  # one provider given on its own
    if provider_options is not None and len(provider_options) != len(providers):
        raise ProviderOptionError(
            f"provider_options has {len(provider_options)} entries for {len(providers)} providers"
        )
    hailo: HailoOptions | None = None
    names: list[str] = []
    opts: list[dict[str, Any]] = []
    for i, spec in enumerate(providers):
        if isinstance(spec, str):
            name, given = spec, dict(provider_options[i]) if provider_options else {}
        elif _is_spec_with_options(spec):
            if provider_options is not None:
                raise ProviderOptionError(
                    "give provider options either in (name, options) tuples or in "
                    "provider_options, not both"
                )
            name, given = spec[0], dict(spec[1])
        else:
            raise ProviderOptionError(
                f"providers[{i}] = {spec!r}: expected a name or a (name, options dict) tuple"
            )
        if name == HAILO_PROVIDER:
            hailo = parse_hailo_options(given)
        elif name not in names:
            names.append(name)
            opts.append(given)
    if not names:
        names, opts = [CPU_PROVIDER], [{}]
    return ProviderChoice(hailo, names, opts)


def fork_provider_available() -> bool:
    """Whether Hailo's ONNX Runtime fork is installed (its provider is in ORT's list)."""
    import onnxruntime

    return HAILO_PROVIDER in onnxruntime.get_available_providers()


def get_available_providers() -> list[str]:
    """``HailoExecutionProvider`` followed by ONNX Runtime's available providers."""
    import onnxruntime

    return [
        HAILO_PROVIDER,
        *(p for p in onnxruntime.get_available_providers() if p != HAILO_PROVIDER),
    ]
