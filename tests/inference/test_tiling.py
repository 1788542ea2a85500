import numpy as np
import pytest

from aerialseg.inference.tiling import ALIGN, Tiling, count_windows, strided

SIZES = [(1, 1), (64, 2000), (700, 700), (1024, 1024), (1058, 1126), (2061, 1817), (5000, 333),
         (10_000, 10_000), (4200, 1900)]  # fmt: skip


def old_strided_plan(tiling: Tiling, length: int) -> list[int]:
    """Windows of the full size strided from the start, the last flush with the end."""
    ramp = int(tiling.window * tiling.overlap)
    return strided(length, tiling.window, tiling.window - ramp)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("tiling", [Tiling(), Tiling(window=256, overlap=0.25), Tiling(window=96)])
def test_windows_cover_the_image_and_overlap_by_at_least_a_ramp(hw, tiling):
    rows, cols, win_h, win_w, ramp = tiling.plan(*hw)
    for starts, win, length in ((rows, win_h, hw[0]), (cols, win_w, hw[1])):
        length += 2 * tiling.border
        cover = np.zeros(length, int)
        for s in starts:
            cover[s : s + win] += 1
        assert cover.min() >= 1 and starts[-1] + win == length  # covered, nothing beyond
        if len(starts) > 1:
            assert win <= tiling.window and (win % ALIGN == 0 or win == tiling.window)
            gaps = np.diff(starts)
            assert (gaps[:-1] == win - ramp).all()  # where column chunks may meet: one ramp
            assert 0 < gaps[-1] <= win - ramp  # the last one, flush with the end
            # no more windows than full-size ones strided across would take
            assert len(starts) <= len(old_strided_plan(tiling, length))


def test_windows_are_sized_to_the_image():
    """Tile 7's 1817 x 2061 image: 6 windows of 1024² covered 1.68x its pixels."""
    tiling = Tiling(window=1024)
    h, w = 2061, 1817
    rows, cols, win_h, win_w, _ = tiling.plan(h, w)
    assert len(rows) * len(cols) * win_h * win_w < 1.35 * h * w
    assert count_windows(h, w, tiling) == len(rows) * len(cols) == 6
    rows, cols, win_h, win_w, _ = Tiling().plan(h, w)  # the default: 2 x 2 windows
    assert len(rows) * len(cols) == 4 and len(rows) * len(cols) * win_h * win_w < 1.3 * h * w


def test_small_images_still_go_in_one_pass():
    assert Tiling().plan(900, 1000) == ([0], [0], 964, 1064, 0)
    assert Tiling().plan(1024, 1024) == ([0], [0], 1088, 1088, 0)  # a 1024² capture
    assert Tiling(batch_size=2).plan(1024, 1024) == ([0], [0], 1088, 1088, 0)
