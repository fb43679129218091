"""Raspberry Pi config.txt settings (overclocking), only when the inventory asks for them.

Settings go into the file's final `[all]` section (appended when the file ends in a
conditional section such as `[cm4]`), so they apply to every board model. A key set again
replaces its value there; `dtoverlay` entries are added once each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runbooks.core.steps.files import Edit


def _section(line: str) -> str | None:
    stripped = line.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return stripped[1:-1].strip().lower()
    return None


def merge_config_txt(content: str | None, settings: Mapping[str, str],
                     overlays: Sequence[str] = ()) -> str:
    """config.txt with `settings` (key=value) and `overlays` (dtoverlay=name) under [all]."""
    lines = (content or "").splitlines()
    headers = [i for i, line in enumerate(lines) if _section(line) is not None]
    if headers and _section(lines[headers[-1]]) != "all":
        lines += ["", "[all]"] if lines and lines[-1].strip() else ["[all]"]
        start = len(lines)
    else:
        start = headers[-1] + 1 if headers else 0
    region = lines[start:]
    for key, value in settings.items():
        wanted = f"{key}={value}"
        hits = [i for i, line in enumerate(region)
                if line.split("#", 1)[0].strip().replace(" ", "").startswith(f"{key}=")]
        if hits:
            region[hits[0]] = wanted
            for i in reversed(hits[1:]):
                del region[i]
        else:
            region.append(wanted)
    for overlay in overlays:
        wanted = f"dtoverlay={overlay}"
        if all(line.strip().replace(" ", "") != wanted for line in region):
            region.append(wanted)
    merged = lines[:start] + region
    if content is not None and merged == content.splitlines():
        return content
    return "\n".join(merged) + "\n"


def config_txt_step(path: str, settings: Mapping[str, str], overlays: Sequence[str]) -> Edit:
    """The step that keeps the overclock settings in config.txt (takes effect at reboot)."""
    described = ", ".join([f"{k}={v}" for k, v in settings.items()]
                          + [f"dtoverlay={o}" for o in overlays])
    return Edit(path, lambda current: merge_config_txt(current, settings, overlays),
                name=f"Ensure {described} in {path}", reboot=True, notify=["reboot"])
