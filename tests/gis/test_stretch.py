import pytest

from aerialseg.errors import AerialSegError
from aerialseg.gis.stretch import Scale, parse_bands


def test_band_numbers_and_stretches_parse_or_say_which_option_is_wrong():
    assert parse_bands("3,2,1") == (3, 2, 1) and parse_bands("2") == (2, 2, 2)
    assert parse_bands(None) is None
    assert Scale.parse("p2,p98") == Scale(percentiles=(2.0, 98.0))
    assert Scale.parse("0,3000") == Scale(values=(0.0, 3000.0))
    assert Scale.parse("none") == Scale() and Scale.parse(None) is None
    for bad in ("3,2", "a,b,c", "0,1,2"):
        with pytest.raises(AerialSegError, match="--bands"):
            parse_bands(bad)
    for bad in ("p98,p2", "x", "5,5", "p2,p101"):
        with pytest.raises(AerialSegError, match="--stretch"):
            Scale.parse(bad)
