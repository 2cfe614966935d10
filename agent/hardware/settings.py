"""The ``[gpio]`` section of the agent's TOML config: which BCM pins the LEDs and switches use."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Pins the rest of the installation owns (see firmware_config/boot/firmware/config.txt):
# GPIO14/15 are the GPS UART (TXD/RXD), GPIO18 carries the GPS PPS pulse.
RESERVED_PINS = {14: "GPS UART TXD", 15: "GPS UART RXD", 18: "GPS PPS (dtoverlay=pps-gpio)"}

PinNumber = int | None


class GpioConfig(BaseModel):
    """LEDs, enclosure tamper switch and button; BCM numbers, ``null`` leaves a part unfitted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Use GPIO at all (false off a Raspberry Pi).")
    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "pigpio", "mock"] = Field(
        default="auto",
        description="gpiozero pin factory; auto lets gpiozero choose (lgpio on Pi 5 / bookworm).",
    )
    status_led: PinNumber = Field(
        default=17, ge=2, le=27, description="BCM pin of the status LED (ok/recording/live/error patterns)."
    )
    recording_led: PinNumber = Field(
        default=27, ge=2, le=27, description="BCM pin of the LED lit whenever video is recorded or streamed."
    )
    led_active_high: bool = Field(default=True, description="LEDs light when the pin is high (false: sink wiring).")
    tamper_switch: PinNumber = Field(
        default=22, ge=2, le=27, description="BCM pin of the enclosure tamper switch (to GND)."
    )
    tamper_pull_up: bool = Field(default=True, description="Use the internal pull-up on the tamper switch pin.")
    tamper_open_when: Literal["released", "pressed"] = Field(
        default="released",
        description="Switch state meaning 'enclosure open': released for a lid-held microswitch.",
    )
    tamper_bounce_s: float | None = Field(
        default=0.05, ge=0, le=1, description="Debounce time of the tamper switch in seconds (null: none)."
    )
    button: PinNumber = Field(default=23, ge=2, le=27, description="BCM pin of the push button (to GND).")
    button_action: Literal["snapshot", "mark"] = Field(
        default="snapshot", description="What a button press asks for: a sealed still, or a mark in the record."
    )
    button_bounce_s: float | None = Field(
        default=0.05, ge=0, le=1, description="Debounce time of the button in seconds (null: none)."
    )

    @model_validator(mode="after")
    def _pins_distinct_and_free(self) -> GpioConfig:
        used: dict[int, str] = {}
        for name in ("status_led", "recording_led", "tamper_switch", "button"):
            pin = getattr(self, name)
            if pin is None:
                continue
            if pin in RESERVED_PINS:
                raise ValueError(f"{name}: GPIO{pin} is reserved for the {RESERVED_PINS[pin]}")
            if pin in used:
                raise ValueError(f"{name}: GPIO{pin} is already used by {used[pin]}")
            used[pin] = name
        return self
