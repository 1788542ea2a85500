"""Image files dropped on the window from a file manager (XDND and friends, through tkdnd)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def enable_file_drop(widgets, on_file: Callable[[str], None]) -> bool:
    """Accept files dropped from a file manager, where the tkdnd Tcl extension is installed
    (Debian/Ubuntu: apt install tkdnd). The standard library has no drag and drop of its own.
    tkdnd delivers a drop to the widget under the pointer, not to its parents, so every
    widget that should take drops is registered. False (and nothing changed) without tkdnd."""
    import tkinter as tk

    tcl = widgets[0].tk
    try:
        tcl.call("package", "require", "tkdnd")
    except tk.TclError:
        return False

    def dropped(data: str) -> str:
        # tkdnd hands over a Tcl list of paths, except that a single path with spaces can
        # arrive unquoted: try the whole string as one path first
        paths = [data] if Path(data).exists() else tcl.splitlist(data)
        if paths:
            on_file(paths[0])
        return "copy"

    command = widgets[0].register(dropped)
    for w in widgets:
        tcl.call("tkdnd::drop_target", "register", w._w, "DND_Files")
        tcl.call("bind", w._w, "<<Drop:DND_Files>>", f"{command} %D")
    return True
