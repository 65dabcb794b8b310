"""The figure builders: smoke tests at tiny settings (``meanfield figures`` writes real files), and the curves
the tanh gradient figure and the tanh RRN panel draw."""

import numpy as np
import pytest

from meanfield import asymptotics as asy
from meanfield import figures as F
from meanfield.cli import main
from meanfield.theory import trajectory


def _is_png(path):
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("net", [F.NETWORKS[1], pytest.param(F.NETWORKS[2], marks=pytest.mark.slow),
                                 pytest.param(F.NETWORKS[4], marks=pytest.mark.slow),
                                 pytest.param(F.BLOCK_NETWORKS[3], marks=pytest.mark.slow)],
                         ids=lambda n: n.name)
def test_dynamics_figure_writes_png(net, tmp_path):
    path = F.dynamics_figure(net, F.TINY, str(tmp_path))
    assert _is_png(path) and (tmp_path / path.split("/")[-1]).stat().st_size > 10_000


@pytest.mark.slow
def test_gradient_and_phase_figures_and_table(tmp_path):
    done = F.build_all(str(tmp_path), F.TINY, only=["tanh_gradients", "phase_diagram", "exponents"], log=None)
    paths = [p for p, _ in done]
    assert [p.split("/")[-1] for p in paths] == ["tanh_gradients.png", "phase_diagram.png", "exponents.md"]
    assert all(_is_png(p) for p in paths[:2])
    table = (tmp_path / "exponents.md").read_text()
    for net in F.NETWORKS:
        assert net.title in table
    assert "--measure --depth" in table


@pytest.fixture(scope="module")
def tanh_frn_curves():
    net = F.NETWORKS[1]
    assert net.params == F.TANH_FRN and net.arch == "frn"
    laws = net.laws()
    return F.tanh_gradient_curves(trajectory(net.spec(2000)), laws), laws


def test_tanh_gradient_curves_count_layers_from_the_top(tanh_frn_curves):
    cur, _ = tanh_frn_curves
    l, growth = cur["l"], cur["growth"]
    assert l[0] == 1 and l[-1] == cur["L"] == 2000
    # backpropagated from the top, every gradient quantity grows with l (the old figure drew it falling)
    for field in ("chi", "chi_b", "chi_w"):
        y = growth[field][2:]
        assert np.all(np.isfinite(y)) and np.all(np.diff(y) > 0), field
    assert np.isnan(growth["chi_b"][0]) and np.isnan(growth["chi_w"][0])  # l = 1: bottom = top
    assert growth["chi"][-1] > 50  # log R(2000) ~ A sqrt(2000) = 66: exp(A sqrt l) growth, not O(1)
    # one network of depth L, l layers from its top: grows with l, meets log R at l = L, follows its law
    top = cur["from_top"]
    assert np.all(np.diff(top) > 0) and top[-1] == pytest.approx(growth["chi"][-1], rel=1e-12)
    assert np.max(np.abs(top[:-1] - cur["from_top_law"][:-1]) / cur["from_top_law"][:-1]) < 0.02


def test_tanh_gradient_law_has_the_predicted_A(tanh_frn_curves):
    cur, laws = tanh_frn_curves
    A = (4 / 3) * np.sqrt(2 / np.pi) * 1.5 * 1.3 / np.sqrt(1.5 + 0.5)  # docs/theory.md, section 5
    assert laws.A == pytest.approx(A, rel=1e-12) and cur["law_A"] == laws.A
    assert laws.A == pytest.approx(1.4669, abs=5e-5)
    l = cur["l"]
    for field, _, _, c_log in F.GRADIENT_FIELDS:
        # dashed law = A sqrt(l) + c_log log l + c: its slope in sqrt(l) is A to rounding
        rest = cur["law"][field] - c_log * np.log(l)
        slope = (rest[-1] - rest[99]) / (np.sqrt(l[-1]) - np.sqrt(l[99]))
        assert slope == pytest.approx(laws.A, rel=1e-12), field
        assert np.ptp(rest - laws.A * np.sqrt(l)) < 1e-9
        assert cur["law"][field][-1] == pytest.approx(cur["growth"][field][-1], rel=1e-12)  # anchored at L
        # and the theory follows it: within 2.5% of the law over the last decade
        tail = slice(199, None)
        assert np.max(np.abs(cur["growth"][field][tail] / cur["law"][field][tail] - 1)) < 0.025, field
    # the growth rate of log R in sqrt(L) approaches A (0.3% at L = 2000)
    value, _ = asy.tail_slope(l, cur["growth"]["chi"], scale="sqrt", depth=2000)
    assert value == pytest.approx(laws.A, rel=3e-3)


def test_log_gradients_agree_with_the_engine():
    net = F.NETWORKS[1]
    t = trajectory(net.spec(40))  # shallow: the engine's chi_b, chi_w are finite in any precision
    logs = F._log_gradients(t.log_chi, t.log_p, net.params["sv2"], net.params["sw2"])
    for field in ("chi_b", "chi_w"):
        np.testing.assert_allclose(logs[field][1:], np.log(getattr(t, field)[1:]), rtol=1e-5)


def test_tanh_rrn_law_labels_name_only_rrn_parameters():
    rrn, frn = F.NETWORKS[0], F.NETWORKS[1]
    assert rrn.arch == "rrn" and frn.arch == "frn"
    for net in (rrn, frn):
        L = 64
        th = F._TheoryView(trajectory(net.spec(L)))
        labels = " ".join(lab for _, lab in F._law_curves(net, net.laws(), np.arange(1.0, L + 1), th).values())
        if net is rrn:  # x <- phi(Wx + b) + x has no V and no a
            assert "σv" not in labels and "σa" not in labels
            assert "(4/3)√(2/π) σw" in labels and f"{(4 / 3) * np.sqrt(2 / np.pi):.3f}" in labels
            assert "law p = l " in labels and "l^(2/π − 1)" in labels
        else:
            assert "(σv²+σa²)" in labels


def test_masker_counts_and_hides_bad_values():
    m = F._Masker()
    y = m(np.array([1.0, np.nan, -2.0, np.inf, 3.0]))
    assert m.dropped == 3
    assert np.isnan(y[[1, 2, 3]]).all() and y[0] == 1.0


def test_build_all_rejects_unknown_figure(tmp_path):
    with pytest.raises(ValueError, match="figure"):
        F.build_all(str(tmp_path), F.TINY, only=["heatmap"])


def test_cli_figures_bad_out(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["figures", "--out", str(target), "--only", "exponents"])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_figure_choices_of_the_command_are_the_builders():
    from meanfield.cli.figures import CHOICES

    assert CHOICES == F.FIGURES


@pytest.mark.slow
def test_branch_scale_figure_writes_png(tmp_path):
    path = F.branch_scale_figure(F.TINY, str(tmp_path))
    assert _is_png(path) and (tmp_path / "branch_scale.png").stat().st_size > 10_000
