"""GPIO parts driven through gpiozero's own MockFactory: LED patterns, indicator, tamper, button."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from agent.core.clock import ManualClock
from agent.hardware.gpio import PATTERNS, ButtonEvent, DeviceIO, GpioError, TamperEvent, make_pin_factory
from agent.hardware.settings import GpioConfig

CFG = GpioConfig(
    enabled=True,
    status_led=17,
    recording_led=27,
    tamper_switch=22,
    button=23,
    tamper_bounce_s=None,
    button_bounce_s=None,
)


@pytest.fixture()
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture()
def events() -> list[Any]:
    return []


@pytest.fixture()
def device(factory: MockFactory, events: list[Any]) -> Iterator[DeviceIO]:
    dev = DeviceIO(CFG, ManualClock(), on_tamper=events.append, on_button=events.append, pin_factory=factory)
    dev.start()
    yield dev
    dev.close()


def _wait_states(pin: Any, n: int, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(pin.states) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return list(pin.states[:n])


def test_status_pattern_follows_priority(device: DeviceIO) -> None:
    seen = [device.pattern]
    device.set_recording(True)
    seen.append(device.pattern)
    device.set_live(True)
    seen.append(device.pattern)
    device.set_error(True)
    seen.append(device.pattern)
    device.set_error(False)
    device.set_live(False)
    seen.append(device.pattern)
    assert seen == ["ok", "recording", "live", "error", "recording"]


@pytest.mark.parametrize("pattern", ["error", "live"])
def test_status_led_blinks_with_the_pattern_timing(device: DeviceIO, factory: MockFactory, pattern: str) -> None:
    on_s, off_s = PATTERNS[pattern]  # type: ignore[misc]
    pin = factory.pin(17)
    if pattern == "live":
        device.set_live(True)
    else:
        device.set_error(True)
    pin.clear_states()
    states = _wait_states(pin, 6)
    seq = [s.state for s in states[1:]]
    assert seq[:5] in ([True, False, True, False, True], [False, True, False, True, False])
    # each interval lasted at least (most of) its nominal time; no upper bound on a busy machine
    for prev, cur in itertools.pairwise(states[1:]):
        nominal = on_s if prev.state else off_s
        assert cur.timestamp >= 0.7 * nominal


def test_ok_pattern_is_a_short_heartbeat(factory: MockFactory) -> None:
    pin = factory.pin(17)
    dev = DeviceIO(CFG, ManualClock(), pin_factory=factory)
    dev.start()
    try:
        states = _wait_states(pin, 3)
        assert [s.state for s in states] == [False, True, False]
        assert states[2].timestamp >= 0.07  # lit ~0.1 s, then dark ~1.9 s
    finally:
        dev.close()
    assert pin.state is False or pin.state == 0  # LEDs off after close


def test_recording_indicator_lit_while_recording_or_streaming(device: DeviceIO, factory: MockFactory) -> None:
    pin = factory.pin(27)
    assert not pin.state
    device.set_recording(True)
    assert pin.state
    device.set_live(True)
    device.set_recording(False)
    assert pin.state  # still streaming
    device.set_live(False)
    assert not pin.state
    pin.assert_states([False, True, False])


def test_tamper_open_and_close_produce_events(device: DeviceIO, factory: MockFactory, events: list[Any]) -> None:
    pin = factory.pin(22)
    pin.drive_low()  # lid closed: microswitch pressed to GND (pull-up)
    assert device.tamper_open is False
    events.clear()
    pin.drive_high()  # lid opened
    pin.drive_low()  # lid closed again
    assert [e.state for e in events] == ["open", "closed"]
    ev = events[0]
    assert isinstance(ev, TamperEvent) and ev.pin == 22 and not ev.at_start
    assert ev.wall_ns == ManualClock().wall_ns()
    assert ev.as_extra() == {"switch": "enclosure", "state": "open", "pin": 22, "at_start": False}


def test_enclosure_already_open_at_start_is_reported(factory: MockFactory) -> None:
    got: list[TamperEvent] = []
    dev = DeviceIO(CFG, ManualClock(), on_tamper=got.append, pin_factory=factory)
    dev.start()  # pull-up leaves the pin high = switch released = lid open
    dev.close()
    assert [(e.state, e.at_start) for e in got] == [("open", True)]


def test_button_press_asks_for_the_configured_action(factory: MockFactory) -> None:
    got: list[ButtonEvent] = []
    cfg = CFG.model_copy(update={"button_action": "mark"})
    with DeviceIO(cfg, ManualClock(), on_button=got.append, pin_factory=factory):
        pin = factory.pin(23)
        pin.drive_low()
        pin.drive_high()
    assert [(e.action, e.pin) for e in got] == [("mark", 23)]


def test_failing_callback_does_not_break_the_switch(factory: MockFactory) -> None:
    def boom(event: object) -> None:
        raise RuntimeError("queue full")

    with DeviceIO(CFG, ManualClock(), on_tamper=boom, pin_factory=factory) as dev:
        factory.pin(22).drive_low()
        assert dev.tamper_open is False


def test_unfitted_parts_and_idempotent_close(factory: MockFactory) -> None:
    cfg = GpioConfig(enabled=True, status_led=None, recording_led=None, tamper_switch=None, button=None)
    dev = DeviceIO(cfg, ManualClock(), pin_factory=factory)
    dev.start()
    dev.set_recording(True)
    assert dev.tamper_open is None and dev.pattern == "recording"
    dev.close()
    dev.close()


def test_config_rejects_reserved_and_shared_pins() -> None:
    with pytest.raises(ValidationError, match="GPIO18 is reserved for the GPS PPS"):
        GpioConfig(button=18)
    with pytest.raises(ValidationError, match="GPIO17 is already used by status_led"):
        GpioConfig(recording_led=17)
    with pytest.raises(ValidationError, match="pin_colour"):
        GpioConfig.model_validate({"pin_colour": "red"})
    assert all(f.description for f in GpioConfig.model_fields.values())


def test_disabled_gpio_claims_nothing(factory: MockFactory) -> None:
    got: list[object] = []
    with DeviceIO(GpioConfig(enabled=False, pin_factory="lgpio"), ManualClock(), on_tamper=got.append) as dev:
        dev.set_recording(True)
        assert dev.tamper_open is None
    assert got == [] and factory.pins == {}


def test_pin_factory_by_name() -> None:
    assert make_pin_factory("auto") is None
    factory = make_pin_factory("mock")
    assert isinstance(factory, MockFactory)
    factory.close()
    with pytest.raises(GpioError, match="'nosuch' is not installed"):
        make_pin_factory("nosuch")
