"""The desktop app (``aerialseg gui``) and its window-less capture (``aerialseg capture``).

    capture.py         rectangles, screen-to-screenshot mapping, grabbing the screen (no Tk)
    worker.py          the background thread that keeps the window responsive; Result
    overlay.py         the full-screen overlay on which a rectangle is dragged
    views.py           image and segmentation side by side, opacity slider, legend
    drop.py            files dropped on the window (tkdnd)
    correct.py         Correct mode's painting model: brush, erase, polygon, undo; saving (no Tk)
    correct_mode.py    Correct mode in the window: keys, mouse, corrections drawn over the views
    tuning.py          Improve model's fine-tune in a child process (no Tk)
    improve.py         Improve model, before/after, Save model…, the Model… menu
    window.py          the App window and ``run_app``, which ``aerialseg gui`` calls
    virtual_screen.py  Xvfb + xdotool driver for the app's tests and latency benchmark

Importing any of them imports neither tkinter nor torch: both are imported when the app runs.
"""
