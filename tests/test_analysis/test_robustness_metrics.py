"""Relative and effective robustness on curves computed by hand."""
import pytest

from mmfusion.analysis import effective_robustness, relative_robustness


def test_relative_robustness():
    flat = relative_robustness([0, 0.5, 1], [80, 80, 80])
    assert flat == {'auc': pytest.approx(80.0), 'rr': pytest.approx(1.0)}
    # linear fall from 80 to 40: area 60 on the unit axis, RR 0.75
    lin = relative_robustness([0, 0.25, 0.5, 0.75, 1], [80, 70, 60, 50, 40])
    assert lin['auc'] == pytest.approx(60.0) and lin['rr'] == pytest.approx(0.75)
    # the axis is normalised: eps 0..8/255 counts like levels 0..10
    assert relative_robustness([0, 4, 8], [80, 60, 40])['rr'] == pytest.approx(0.75)


def test_effective_robustness():
    # model: 90 -> 60 (keeps area 75, RR 5/6); reference: 60 -> 30 (area 45, RR 0.75)
    er = effective_robustness([0, 1], [90, 60], [0, 1], [60, 30])
    assert er['er'] == pytest.approx(5 / 6 - 0.75)
    # both lose 15 on average: no absolute advantage
    assert er['er_abs'] == pytest.approx(0.0)
    same = effective_robustness([0, 1], [90, 60], [0, 1], [90, 60])
    assert same == {'er': pytest.approx(0.0), 'er_abs': pytest.approx(0.0)}
    with pytest.raises(ValueError):
        relative_robustness([0, 1], [1.0])
