"""The report verb's settings. Imports neither torch nor click."""

from __future__ import annotations

from dataclasses import dataclass

from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, setting


@dataclass(frozen=True)
class ReportOptions(StageOptions):
    check: bool = setting(False, "Open the page in headless Chromium; fail if a picture does "
                                 "not load or a raw dict shows outside the collapsed parts.",
                          flag="")
    screenshot: str | None = setting(None, "With --check, also save a PNG of the whole page "
                                           "here.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.screenshot and not self.check:
            raise InputError("--screenshot needs --check")
