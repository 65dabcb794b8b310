"""Smoke tests: the figure builders and ``meanfield figures`` run at tiny settings and write real files."""

import numpy as np
import pytest

from meanfield import figures as F
from meanfield.cli import main


def _is_png(path):
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("net", [F.NETWORKS[1], F.NETWORKS[2], F.NETWORKS[4]], ids=lambda n: n.name)
def test_dynamics_figure_writes_png(net, tmp_path):
    path = F.dynamics_figure(net, F.TINY, str(tmp_path))
    assert _is_png(path) and (tmp_path / path.split("/")[-1]).stat().st_size > 10_000


def test_gradient_and_phase_figures_and_table(tmp_path):
    done = F.build_all(str(tmp_path), F.TINY, only=["tanh_gradients", "phase_diagram", "exponents"], log=None)
    paths = [p for p, _ in done]
    assert [p.split("/")[-1] for p in paths] == ["tanh_gradients.png", "phase_diagram.png", "exponents.md"]
    assert all(_is_png(p) for p in paths[:2])
    table = (tmp_path / "exponents.md").read_text()
    for net in F.NETWORKS:
        assert net.title in table
    assert "--measure --depth" in table


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
