"""`diffcli plot`: files of the asked type and size whose pixels (PNG) and path data (SVG)
put the curves where the mathematics says they are, computed here by hand."""

import json
import math
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from diffcli.cli import cli
from diffcli.errors import DiffcliError

matplotlib = pytest.importorskip("matplotlib", reason='the plot extra: pip install "diffcli[plot]"')

from diffcli import plot as plotting  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def run(*args):
    return CliRunner().invoke(cli, ["plot", *args])


def png_pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def near(pixels, ax, x, y, colour, reach=3, slack=40) -> bool:
    """Whether a pixel of ``colour`` lies within ``reach`` pixels of data point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    row, col = round(pixels.shape[0] - py), round(px)
    window = pixels[max(row - reach, 0) : row + reach + 1, max(col - reach, 0) : col + reach + 1]
    return bool((np.abs(window - rgb(colour)).sum(axis=2) <= slack).any())


def drawn(tmp_path, expression, grid, name="p.png", **options):
    plot = plotting.compute(expression, grid, **options)
    where = plotting.Picture(str(tmp_path / name), 800, 900, 100)
    fig = plotting.figure(plot, where)
    plotting.save(fig, where)
    return plot, fig, where.out


# -- files of the asked type and size ------------------------------------------------


def test_png_of_the_asked_size(tmp_path):
    out = tmp_path / "a.png"
    result = run("sin(x)", "--grid", "x=-3:3:41", "--out", str(out), "--size", "640x480", "--dpi", "80")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_pixels(out).shape == (480, 640, 3)
    assert f"wrote {out}" in result.output


def test_svg_and_pdf_of_the_asked_size(tmp_path):
    svg, pdf = tmp_path / "a.svg", tmp_path / "a.pdf"
    for out in (svg, pdf):
        assert run("x^3", "--grid", "x=-1:1:21", "--out", str(out), "--size", "640x480", "--dpi", "80").exit_code == 0
    root = ET.parse(svg).getroot()  # well-formed XML
    assert root.tag == f"{SVG}svg"
    # 640 x 480 pixels at 80 dpi: 8 x 6 inches, 576 x 432 points
    assert (root.get("width"), root.get("height")) == ("576pt", "432pt")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert re.search(rb"/MediaBox \[ ?0 0 576 432 ?\]", data)


def test_default_size_grows_with_the_panels(tmp_path):
    sizes = []
    for checks in ("value", "value,grad,hessian"):
        out = tmp_path / f"{checks}.png"
        assert run("x^4", "--grid", "x=-1:1:21", "--checks", checks, "--out", str(out)).exit_code == 0
        sizes.append(png_pixels(out).shape[:2])
    assert sizes[0][1] == sizes[1][1] == plotting.WIDTH
    assert sizes[1][0] > sizes[0][0]


# -- the curves are where they must be -------------------------------------------------


def test_png_pixels_of_autodiff_and_reference_lie_on_the_curves(tmp_path):
    _plot, fig, out = drawn(tmp_path, "sin(x)", "x=-3:3:61", checks=["value", "grad"])
    pixels = png_pixels(out)
    value_axes, grad_axes = fig.axes[0], fig.axes[2]
    xs = np.linspace(-2.9, 2.9, 23)
    blue, black = plotting.ENTRY_COLOURS[0], plotting.REFERENCE_COLOUR
    # autodiff (solid, blue) on sin and cos, by hand; the reference (black dashes) on most of them
    assert all(near(pixels, value_axes, x, math.sin(x), blue) for x in xs)
    assert all(near(pixels, grad_axes, x, math.cos(x), blue) for x in xs)
    assert sum(near(pixels, value_axes, x, math.sin(x), black, slack=120) for x in xs) >= 0.6 * len(xs)
    # and not elsewhere: half a unit off the curve there is no blue
    assert not any(near(pixels, value_axes, x, math.sin(x) + 0.5, blue, reach=1) for x in xs)
    assert not (np.abs(pixels - rgb(plotting.MISMATCH_COLOUR)).sum(axis=2) <= 40).any()  # no mismatch marker


def test_a_mismatch_is_marked_in_red_where_it_is(tmp_path):
    # d/dx x sqrt(x^2) = 2|x|: 0 at x = 0, where torch multiplies an infinite slope by 0 (NaN)
    plot, fig, out = drawn(tmp_path, "x sqrt(x^2)", "x=-1:1:21", checks=["value", "grad"])
    grad = plot.reports[1]
    assert grad.counts() == {"ok": 20, "mismatch": 1}
    pixels = png_pixels(out)
    red = plotting.MISMATCH_COLOUR
    value_axes, grad_axes = fig.axes[0], fig.axes[2]
    assert near(pixels, grad_axes, 0.0, 0.0, red, reach=4)
    assert not any(near(pixels, grad_axes, x, 2 * abs(x), red, reach=2) for x in (-0.8, -0.4, 0.4, 0.8))
    assert not any(near(pixels, value_axes, x, x * abs(x), red, reach=6) for x in np.linspace(-1, 1, 21))
    result = run("x sqrt(x^2)", "--grid", "x=-1:1:21", "--out", str(tmp_path / "m.png"), "-f", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["plot"] == str(tmp_path / "m.png")
    assert [c["summary"]["counts"] for c in doc["checks"]] == [{"ok": 21}, {"ok": 20, "mismatch": 1}]


def test_undefined_stretches_are_shaded(tmp_path):
    # log(x) has no value for x <= 0: the left half of the grid is shaded grey
    plot, fig, out = drawn(tmp_path, "log(x)", "x=-2:2:41", checks=["value"])
    assert plot.reports[0].counts() == {"ok": 20, "undefined": 21}
    pixels = png_pixels(out)
    grey = plotting.UNDEFINED_COLOUR
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    middle = (low + high) / 2
    assert all(near(pixels, ax, x, middle, grey, reach=1, slack=6) for x in (-1.7, -1.3, -0.3))
    assert not any(near(pixels, ax, x, middle, grey, reach=1, slack=6) for x in (0.3, 0.7, 1.3, 1.7))


def _path_vertices(svg_path, gid) -> np.ndarray:
    root = ET.parse(svg_path).getroot()
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == gid)
    path = next(p for p in group.iter(f"{SVG}path") if p.get("d", "").lstrip().startswith("M"))
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.get("d"))]
    return np.array(numbers).reshape(-1, 2)


def test_svg_path_data_hold_the_curve_points(tmp_path):
    # the autodiff line of d/dx x^3 = 3x^2: its vertices are the grid's points, by hand,
    # up to the affine map from data to the page (fitted on two of them)
    _plot, _fig, out = drawn(tmp_path, "x^3", "x=-2:2:41", name="c.svg", checks=["value", "grad"])
    vertices = _path_vertices(out, "autodiff-grad-0")
    xs = np.linspace(-2, 2, 41)
    assert len(vertices) >= 30  # matplotlib may drop collinear vertices; here none are
    (px0, _py0), (px1, _py1) = vertices[0], vertices[-1]
    ax_, bx = np.polyfit([xs[0], xs[-1]], [px0, px1], 1)
    x = (vertices[:, 0] - bx) / ax_
    nearest = xs[np.abs(x[:, None] - xs[None, :]).argmin(axis=1)]
    assert np.allclose(x, nearest, atol=1e-3)
    ay, by = np.polyfit(3 * nearest[[0, len(nearest) // 3]] ** 2, vertices[[0, len(nearest) // 3], 1], 1)
    assert np.allclose(vertices[:, 1], ay * 3 * nearest**2 + by, atol=0.02)
    assert ay < 0  # the page's y runs downwards


def test_heatmaps_have_the_grid_extent_and_values(tmp_path):
    plot, fig, out = drawn(tmp_path, "x y", ["x=-1:1:5", "y=0:2:3"], checks=["value", "grad"])
    assert plot.kind == "heatmaps" and plot.axes == ("x", "y")
    # value, d/dx, d/dy: a heatmap of values and one of errors each
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 6
    for image in images:  # cells of width 0.5 and 1 centred on the grid's points
        assert image.get_extent() == pytest.approx([-1.25, 1.25, -0.5, 2.5])
    values = images[0].get_array()
    assert values.shape == (3, 5)
    ys, xs = np.meshgrid([0.0, 1.0, 2.0], np.linspace(-1, 1, 5), indexing="ij")
    assert np.allclose(values, xs * ys)  # row = y, column = x
    assert np.allclose(images[2].get_array(), ys)  # d/dx xy = y
    assert np.allclose(images[4].get_array(), xs)  # d/dy xy = x
    assert png_pixels(out).shape == (900, 800, 3)


def test_heatmaps_mark_a_mismatch(tmp_path):
    plot, fig, out = drawn(tmp_path, "x y sqrt(x^2 + y^2)", ["x=-1:1:11", "y=-1:1:11"], checks=["grad"])
    assert plot.reports[0].counts() == {"ok": 120, "mismatch": 1}
    marks = [line for ax in fig.axes for line in ax.lines if (line.get_gid() or "").startswith("mismatch")]
    assert marks and all(np.allclose(line.get_xydata(), [[0.0, 0.0]]) for line in marks)
    assert (np.abs(png_pixels(out) - rgb(plotting.MISMATCH_COLOUR)).sum(axis=2) <= 40).any()


def test_taylor_polynomials_by_hand(tmp_path):
    plot, fig, _out = drawn(tmp_path, "exp(x)", "x=-2:2:41", taylor=True, at="x=0", order=3)
    assert plot.kind == "taylor" and plot.centre == 0.0
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    x = np.linspace(-2, 2, 41)
    assert np.allclose(lines["taylor-1"].get_ydata(), 1 + x)
    assert np.allclose(lines["taylor-3"].get_ydata(), 1 + x + x**2 / 2 + x**3 / 6)
    assert np.allclose(lines["autodiff-value-0"].get_ydata(), np.exp(x))
    assert "taylor-4" not in lines


def test_taylor_around_a_point_with_another_variable_fixed(tmp_path):
    # f = sin(x y) around x = 1 with y = 2: P1 = sin 2 + 2 cos 2 (x - 1)
    _plot, fig, _out = drawn(tmp_path, "sin(x y)", "x=0:2:21", taylor=True, at="x=1,y=2", order=2)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    x = np.linspace(0, 2, 21)
    assert np.allclose(lines["taylor-1"].get_ydata(), math.sin(2) + 2 * math.cos(2) * (x - 1))
    assert np.allclose(lines["autodiff-value-0"].get_ydata(), np.sin(2 * x))


def test_vector_expressions_draw_each_component(tmp_path):
    plot, fig, _out = drawn(tmp_path, "[x^2, sin(x)]", "x=-1:1:11")
    assert [r.command for r in plot.reports] == ["value", "jacobian"]
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}
    x = np.linspace(-1, 1, 11)
    assert np.allclose(lines["autodiff-jacobian-0"].get_ydata(), 2 * x)
    assert np.allclose(lines["autodiff-jacobian-1"].get_ydata(), np.cos(x))


def test_a_hessian_draws_its_upper_triangle(tmp_path):
    _plot, fig, _out = drawn(tmp_path, "x^2 y^3", "x=-1:1:5", at="y=2", checks=["hessian"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["∂²f/∂x² (autodiff)", "∂²f/∂x∂y (autodiff)", "∂²f/∂y² (autodiff)"]


# -- input errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--grid", "x=0:1:3", "--out", "a.jpg"], "write a .png, .svg or .pdf file"),
        (["x", "--grid", "x=0:1:3", "--size", "10x10"], "each side from 100"),
        (["x", "--grid", "x=0:1:3", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["x", "--grid", "x=0:1:3", "--dpi", "0"], "--dpi 0"),
        (["x y z", "--grid", "x=0:1:3", "--grid", "y=0:1:3", "--grid", "z=0:1:3"], "one --grid"),
        (["x y", "--grid", "x=0:1:3"], "y"),
        (["x", "--grid", "x=0:1:3", "--checks", "curl"], "--checks"),
        (["x", "--grid", "x=0:1:3", "--taylor"], "--taylor needs the point"),
        (["x", "--grid", "x=0:1:3", "--taylor", "--at", "x=0", "--checks", "grad"], "--checks does not apply"),
        (["x", "--grid", "y=0:1:3", "--taylor", "--at", "x=0"], "no variable 'y'"),
        (["x^2 y^2 z^2 w^2", "--grid", "x=0:1:3", "--at", "y=1,z=1,w=1", "--checks", "hessian"], "10 entries"),
        (["log(", "--grid", "x=0:1:3"], "Error"),
    ],
)
def test_input_errors_exit_2_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["plot", *args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_without_matplotlib_it_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    result = run("x", "--grid", "x=0:1:3", "--out", str(tmp_path / "a.png"))
    assert result.exit_code == 2
    assert 'pip install "diffcli[plot]"' in result.output
    assert not (tmp_path / "a.png").exists()
    with pytest.raises(DiffcliError, match="matplotlib"):
        plotting.require_matplotlib()


def test_an_unwritable_path_is_an_input_error(tmp_path):
    result = run("x", "--grid", "x=0:1:3", "--out", str(tmp_path / "no" / "such" / "a.png"))
    assert result.exit_code == 2
    assert "cannot write" in result.output and "no such directory" in result.output
