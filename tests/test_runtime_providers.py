"""HailoExecutionProvider options, given the ONNX Runtime way."""

from __future__ import annotations

import onnxruntime
import pytest

import hailo_ort
from hailo_ort.errors import HailoOrtError
from hailo_ort.runtime.providers import (
    KNOWN_OPTIONS,
    HailoOptions,
    ProviderOptionError,
    parse_hailo_options,
    split_providers,
)


def test_string_values_are_parsed_as_ort_passes_them() -> None:
    opts = parse_hailo_options(
        {
            "device": "Emulator",
            "batch_size": "4",
            "multi_process_service": "true",
            "timeout_ms": "250",
            "fallback": "error",
            "group_id": "SHARED",
            "device_id": "0000:01:00.0",
            "latency_ms": "1.5",
        }
    )
    assert opts == HailoOptions(
        device="emulator",
        device_id="0000:01:00.0",
        batch_size=4,
        group_id="SHARED",
        multi_process_service=True,
        timeout_ms=250,
        fallback="error",
        latency_ms=1.5,
    )
    assert parse_hailo_options({"multi_process_service": "0"}).multi_process_service is False
    assert parse_hailo_options({"multi_process_service": 1}).multi_process_service is True


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ProviderOptionError) as err:
        parse_hailo_options({"devcie": "emulator"})
    assert isinstance(err.value, HailoOrtError)
    for name in KNOWN_OPTIONS:
        assert name in str(err.value)
    assert "devcie" in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("device", "gpu"),
        ("fallback", "maybe"),
        ("batch_size", "0"),
        ("batch_size", "two"),
        ("timeout_ms", "-5"),
        ("multi_process_service", "perhaps"),
        ("latency_ms", "-1"),
    ],
)
def test_bad_values_are_rejected_naming_the_option(name: str, value: str) -> None:
    with pytest.raises(ProviderOptionError, match=name):
        parse_hailo_options({name: value})


def test_both_ort_forms_give_the_same_split() -> None:
    tuple_form = split_providers(
        [("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"]
    )
    list_form = split_providers(
        ["HailoExecutionProvider", "CPUExecutionProvider"], [{"device": "emulator"}, {}]
    )
    assert tuple_form == list_form
    assert tuple_form.hailo is not None and tuple_form.hailo.device == "emulator"
    assert tuple_form.ort_providers == ["CPUExecutionProvider"]


def test_provider_lists_without_hailo_and_defaults() -> None:
    assert split_providers(["CPUExecutionProvider"]).hailo is None
    default = split_providers(None)
    assert default.hailo == HailoOptions()
    assert default.ort_providers == ["CPUExecutionProvider"]
    only_hailo = split_providers(["HailoExecutionProvider"])
    assert only_hailo.ort_providers == ["CPUExecutionProvider"]


def test_a_tuple_of_names_is_a_provider_list_as_in_onnxruntime() -> None:
    names = ("HailoExecutionProvider", "CPUExecutionProvider")
    assert split_providers(names) == split_providers(list(names))
    assert split_providers(("CPUExecutionProvider",)).ort_providers == ["CPUExecutionProvider"]
    single = split_providers(("HailoExecutionProvider", {"device": "emulator"}))
    assert single.hailo is not None and single.hailo.device == "emulator"


def test_malformed_provider_lists() -> None:
    with pytest.raises(ProviderOptionError, match="entries"):
        split_providers(["HailoExecutionProvider", "CPUExecutionProvider"], [{}])
    with pytest.raises(ProviderOptionError, match="not both"):
        split_providers([("HailoExecutionProvider", {})], [{}])
    with pytest.raises(ProviderOptionError):
        split_providers([42])  # type: ignore[list-item]


def test_available_providers() -> None:
    providers = hailo_ort.get_available_providers()
    assert providers[0] == "HailoExecutionProvider"
    assert set(onnxruntime.get_available_providers()) <= set(providers)
    assert providers.count("HailoExecutionProvider") == 1
