"""The enclosure's GPIO: status LED, recording indicator, tamper switch and button (gpiozero).

Every gpiozero device is built with an explicit pin factory (never gpiozero's class-level
default), so tests pass gpiozero's own ``MockFactory`` and drive pins. Switch callbacks run on
gpiozero's threads: they only build a small frozen event and hand it to the caller's callback,
which must not block (queue it; the caller seals the ``tamper`` record, also while offline).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from agent.core.clock import Clock
from agent.core.errors import AgentError
from agent.hardware.settings import GpioConfig

log = logging.getLogger(__name__)

Pattern = Literal["off", "ok", "recording", "live", "error"]
# (on seconds, off seconds); None = steady off. Distinguishable at a glance from across a yard.
PATTERNS: dict[str, tuple[float, float] | None] = {
    "off": None,
    "ok": (0.1, 1.9),  # heartbeat blip
    "recording": (1.0, 1.0),  # slow blink
    "live": (0.25, 0.25),  # fast blink
    "error": (0.08, 0.12),  # rapid flicker
}
# gpiozero's hold thread waits hold_time while a switch is pressed, which delays close() (the tamper
# switch is pressed whenever the lid is shut); we use no hold events, so keep that wait short.
_HOLD_S = 0.1


class GpioError(AgentError):
    """GPIO hardware or pin factory unavailable, or a pin cannot be claimed."""


@dataclass(frozen=True)
class TamperEvent:
    """The enclosure switch changed (or was found open at start); the caller seals it as ``tamper``."""

    state: Literal["open", "closed"]
    wall_ns: int
    mono_ns: int
    pin: int
    at_start: bool = False

    def as_extra(self) -> dict[str, Any]:
        return {"switch": "enclosure", "state": self.state, "pin": self.pin, "at_start": self.at_start}


@dataclass(frozen=True)
class ButtonEvent:
    """The push button was pressed; ``action`` says what the installer configured it for."""

    action: Literal["snapshot", "mark"]
    wall_ns: int
    mono_ns: int
    pin: int


def make_pin_factory(name: str) -> Any:
    """A gpiozero pin factory by entry-point name; None for "auto" (gpiozero's own choice)."""
    if name == "auto":
        return None
    try:
        return entry_points(group="gpiozero_pin_factories")[name].load()()
    except KeyError:
        raise GpioError(f"gpiozero pin factory {name!r} is not installed") from None
    except Exception as exc:
        raise GpioError(f"gpiozero pin factory {name!r} is unavailable on this machine: {exc}") from exc


class DeviceIO:
    """Owns the GPIO parts; status shown is the most urgent of error > live > recording > ok."""

    def __init__(
        self,
        config: GpioConfig,
        clock: Clock,
        *,
        on_tamper: Callable[[TamperEvent], None] | None = None,
        on_button: Callable[[ButtonEvent], None] | None = None,
        pin_factory: Any = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._on_tamper = on_tamper
        self._on_button = on_button
        self._factory = pin_factory
        self._lock = threading.Lock()
        self._devices: list[Any] = []
        self._status: Any = None
        self._rec_led: Any = None
        self._tamper: Any = None
        self._button: Any = None
        self._recording = self._live = self._error = False
        self._pattern: Pattern | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Claim the pins; report an enclosure that is already open as a tamper event.

        With ``enabled = false`` nothing is claimed and every setter is a cheap no-op, so the agent
        can always own a DeviceIO.
        """
        if not self.config.enabled:
            return
        if self._factory is None:
            self._factory = make_pin_factory(self.config.pin_factory)
        try:
            from gpiozero import LED, Button
        except ImportError as exc:
            raise GpioError(f"gpiozero is not installed: {exc}; pip install '.[pi]'") from None
        cfg, kw = self.config, {"pin_factory": self._factory}
        try:
            if cfg.status_led is not None:
                self._status = self._keep(LED(cfg.status_led, active_high=cfg.led_active_high, **kw))
            if cfg.recording_led is not None:
                self._rec_led = self._keep(LED(cfg.recording_led, active_high=cfg.led_active_high, **kw))
            if cfg.tamper_switch is not None:
                self._tamper = self._keep(
                    Button(
                        cfg.tamper_switch,
                        pull_up=cfg.tamper_pull_up,
                        bounce_time=cfg.tamper_bounce_s,
                        hold_time=_HOLD_S,
                        **kw,
                    )
                )
                self._tamper.when_pressed = lambda: self._tamper_changed(cfg.tamper_open_when == "pressed")
                self._tamper.when_released = lambda: self._tamper_changed(cfg.tamper_open_when == "released")
            if cfg.button is not None:
                self._button = self._keep(
                    Button(cfg.button, pull_up=True, bounce_time=cfg.button_bounce_s, hold_time=_HOLD_S, **kw)
                )
                self._button.when_pressed = self._button_pressed
        except Exception as exc:
            self.close()
            raise GpioError(f"cannot set up GPIO: {exc}") from exc
        self._refresh()
        if self.tamper_open:
            self._emit_tamper(True, at_start=True)

    def close(self) -> None:
        """Turn the LEDs off and release every pin; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            devices, self._devices = self._devices, []
        for dev in reversed(devices):
            try:
                dev.close()  # an LED's close() stops its blink thread and drives it off
            except Exception:
                log.exception("closing %r failed", dev)

    def __enter__(self) -> DeviceIO:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    # -- what the agent is doing -----------------------------------------------------
    def set_recording(self, active: bool) -> None:
        self._recording = active
        self._refresh()

    def set_live(self, active: bool) -> None:
        self._live = active
        self._refresh()

    def set_error(self, active: bool) -> None:
        self._error = active
        self._refresh()

    @property
    def pattern(self) -> Pattern | None:
        """The status pattern currently shown (None before start)."""
        return self._pattern

    @property
    def tamper_open(self) -> bool | None:
        """True when the enclosure is open now; None without a tamper switch."""
        if self._tamper is None:
            return None
        pressed = bool(self._tamper.is_pressed)
        return pressed if self.config.tamper_open_when == "pressed" else not pressed

    def _wanted(self) -> Pattern:
        if self._error:
            return "error"
        if self._live:
            return "live"
        return "recording" if self._recording else "ok"

    def _refresh(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._rec_led is not None:
                # steady on whenever video is recorded or streamed: people in view must see it
                self._rec_led.value = self._recording or self._live
            wanted = self._wanted()
            if wanted == self._pattern:
                return  # do not restart a running blink
            self._pattern = wanted
            if self._status is not None:
                timing = PATTERNS[wanted]
                if timing is None:
                    self._status.off()
                else:
                    self._status.blink(on_time=timing[0], off_time=timing[1])

    # -- switch callbacks (gpiozero threads) -----------------------------------------
    def _tamper_changed(self, is_open: bool) -> None:
        self._emit_tamper(is_open, at_start=False)

    def _emit_tamper(self, is_open: bool, at_start: bool) -> None:
        assert self.config.tamper_switch is not None
        event = TamperEvent(
            state="open" if is_open else "closed",
            wall_ns=self.clock.wall_ns(),
            mono_ns=self.clock.mono_ns(),
            pin=self.config.tamper_switch,
            at_start=at_start,
        )
        log.warning("enclosure tamper switch: %s", event.state)
        _call(self._on_tamper, event)

    def _button_pressed(self) -> None:
        assert self.config.button is not None
        event = ButtonEvent(
            action=self.config.button_action,
            wall_ns=self.clock.wall_ns(),
            mono_ns=self.clock.mono_ns(),
            pin=self.config.button,
        )
        _call(self._on_button, event)


def _call(callback: Callable[[Any], None] | None, event: object) -> None:
    """Run a user callback without letting its exception kill gpiozero's event thread."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        log.exception("GPIO event callback failed for %r", event)
