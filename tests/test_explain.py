"""Tests of ``colnn explain``: the walk's numbers, its text, its errors and its picture.

Expected values come from independent oracles: the arrays printed in the
tutorial (copied verbatim below), plain loops, and PyTorch (forward and
autograd). Picture tests read the written image back.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colnn.apps.cli import main
from colnn.apps.explain import conv_walk, pool_walk, tutorial_input
from colnn.apps.explain.walk import LIMITS
from streams import without_compile_notice

# --- the tutorial's printed arrays, verbatim --------------------------------

TUTORIAL_X = """[[[[1,2,3,0],[0,1,2,4],[1,0,4,2],[3,2,0,1]],
              [[3,0,6,5],[4,2,4,3],[3,0,1,0],[2,3,3,1]],
              [[4,2,1,2],[0,1,0,4],[3,0,6,2],[4,2,4,5]]]]"""

TUTORIAL_STEP_1 = """array([[1., 2., 0., 1., 3., 0., 4., 2., 4., 2., 0., 1.],
       [3., 0., 2., 4., 6., 5., 4., 3., 1., 2., 0., 4.],
       [1., 0., 3., 2., 3., 0., 2., 3., 3., 0., 4., 2.],
       [4., 2., 0., 1., 1., 0., 3., 1., 6., 2., 4., 5.]])"""

TUTORIAL_STEP_1_2 = """array([[1., 2., 0., 1.],
       [3., 0., 4., 2.],
       [4., 2., 0., 1.],
       [3., 0., 2., 4.],
       [6., 5., 4., 3.],
       [1., 2., 0., 4.],
       [1., 0., 3., 2.],
       [3., 0., 2., 3.],
       [3., 0., 4., 2.],
       [4., 2., 0., 1.],
       [1., 0., 3., 1.],
       [6., 2., 4., 5.]])"""

TUTORIAL_STEP_2 = "array([2., 4., 4., 4., 6., 4., 3., 3., 4., 4., 3., 6.])"

TUTORIAL_STEP_3 = """array([[[[2., 4.],
         [3., 4.]],

        [[4., 6.],
         [3., 3.]],

        [[4., 4.],
         [4., 6.]]]])"""

TUTORIAL_STEPS = {  # walk step key -> what the tutorial printed
    "col": TUTORIAL_STEP_1,
    "rows": TUTORIAL_STEP_1_2,
    "reduced": TUTORIAL_STEP_2,
    "output": TUTORIAL_STEP_3,
}


def parse_printed(text: str) -> np.ndarray:
    """An array from NumPy's printed ``array([...])`` form."""
    body = text.strip().removeprefix("array(").removesuffix(")")
    return np.array(ast.literal_eval(body), dtype=float)


def squeeze_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["explain", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- the walk's numbers -----------------------------------------------------


def test_tutorial_input_is_the_tutorials_x() -> None:
    np.testing.assert_array_equal(tutorial_input(), np.array(ast.literal_eval(TUTORIAL_X)))


@pytest.mark.parametrize("key", sorted(TUTORIAL_STEPS))
def test_default_walk_equals_the_tutorials_arrays(key: str) -> None:
    expected = parse_printed(TUTORIAL_STEPS[key])
    step = pool_walk(tutorial_input()).step(key)
    assert step.shape == expected.shape
    np.testing.assert_array_equal(step.array, expected)


def naive_pool(x: np.ndarray, kernel: int, stride: int, pad: int, reduce: str) -> np.ndarray:
    """Pooling by looping over windows; padding is ignored by max and counted as 0 by the mean."""
    n, c, h, w = x.shape
    fill = -np.inf if reduce == "max" else 0.0
    padded = np.full((n, c, h + 2 * pad, w + 2 * pad), fill)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    out_h, out_w = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    out = np.empty((n, c, out_h, out_w))
    for i, j in np.ndindex(out_h, out_w):
        window = padded[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
        out[:, :, i, j] = window.max(axis=(2, 3)) if reduce == "max" else window.mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("kernel, stride, pad", [(2, 2, 0), (3, 1, 0), (3, 1, 1), (2, 2, 1), (3, 2, 1), (1, 1, 0)])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_walk_ends_at_a_naive_loops_answer(kernel: int, stride: int, pad: int, mode: str) -> None:
    x = tutorial_input().astype(float)
    walk = pool_walk(x, kernel, stride, pad, mode)
    expected = naive_pool(x, kernel, stride, pad, "max" if mode == "max" else "mean")
    np.testing.assert_allclose(walk.forward_result, expected, rtol=1e-12)


def test_rows_hold_one_window_of_one_channel_each() -> None:
    """Row r of the reshaped matrix is window r // C of channel r % C (the tutorial's remark)."""
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    walk = pool_walk(x, kernel=3, stride=2, pad=1, mode="avg")
    rows = walk.step("rows").array
    assert rows.shape == (2 * 2 * 3 * 3, 9)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = [(n, i, j) for n in range(2) for i in range(2) for j in range(3)]
    for r, row in enumerate(rows):
        n, i, j = windows[r // 3]
        expected = padded[n, r % 3, 2 * i:2 * i + 3, 2 * j:2 * j + 3].ravel()
        np.testing.assert_array_equal(row, expected)


@pytest.mark.parametrize("kernel, stride, pad", [(2, 2, 0), (3, 1, 1), (2, 1, 0), (3, 2, 1)])
def test_avg_walk_equals_torch(kernel: int, stride: int, pad: int) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=(1, 2, 4, 5))
    walk = pool_walk(x, kernel, stride, pad, "avg")
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), kernel, stride, pad).numpy()
    np.testing.assert_allclose(walk.forward_result, expected, rtol=1e-12)


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (1, 1)])
def test_conv_walk_equals_torch(stride: int, pad: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, weight = rng.normal(size=(1, 3, 5, 5)), rng.normal(size=(3, 3, 2, 2))
    walk = conv_walk(x, weight, stride=stride, pad=pad)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), None, stride, pad).numpy()
    np.testing.assert_allclose(walk.forward_result, expected, rtol=1e-10, atol=1e-12)
    # The steps in between are the matrices of the explanation, not just any route to the answer.
    assert walk.step("col").shape == (expected.shape[2] * expected.shape[3], 12)
    np.testing.assert_array_equal(walk.step("weight_col").array, weight.reshape(3, -1).T)
    assert walk.step("product").shape == (expected.shape[2] * expected.shape[3], 3)


def test_conv_default_weight_sums_windows() -> None:
    walk = conv_walk(tutorial_input(), kernel=2, stride=2)
    out = walk.forward_result
    x = tutorial_input().astype(float)
    window_sums = x.reshape(1, 3, 2, 2, 2, 2).sum(axis=(3, 5))  # (1, C, 2, 2) sums of 2x2 blocks
    np.testing.assert_array_equal(out[0, 0], window_sums[0].sum(axis=0))
    np.testing.assert_array_equal(out[0, 1], window_sums[0, 0])


def torch_input_gradient(op: Callable[[Any, Any], Any], x: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
    """The input's gradient from torch's autograd, for ``op`` applied to ``x``."""
    torch = pytest.importorskip("torch")
    tensor = torch.tensor(x, requires_grad=True)
    op(torch, tensor).backward(torch.from_numpy(grad_output))
    return tensor.grad.numpy()


@pytest.mark.parametrize("kernel, stride, pad", [(2, 2, 0), (3, 1, 1), (2, 1, 0), (3, 2, 1)])
def test_max_backward_equals_torch_autograd(kernel: int, stride: int, pad: int) -> None:
    x = tutorial_input().astype(float)  # ties included: the first maximum takes the gradient
    walk = pool_walk(x, kernel, stride, pad, "max", backward=True)
    grad_output = walk.step("grad_output").array
    expected = torch_input_gradient(
        lambda torch, t: torch.nn.functional.max_pool2d(t, kernel, stride, pad), x, grad_output
    )
    np.testing.assert_array_equal(walk.step("grad_input").array, expected)


def test_max_backward_on_the_tutorial_by_hand() -> None:
    """Each output's gradient lands on the cell its maximum came from (no torch needed)."""
    x = tutorial_input().astype(float)
    walk = pool_walk(x, backward=True)
    grad_output = walk.step("grad_output").array
    expected = np.zeros_like(x)
    for c, i, j in np.ndindex(3, 2, 2):
        block = x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        di, dj = np.unravel_index(np.argmax(block), (2, 2))
        expected[0, c, 2 * i + di, 2 * j + dj] += grad_output[0, c, i, j]
    np.testing.assert_array_equal(walk.step("grad_input").array, expected)
    np.testing.assert_array_equal(walk.step("argmax").array, parse_printed(TUTORIAL_STEP_1_2).argmax(axis=1))


def test_avg_backward_equals_torch_autograd() -> None:
    x = np.random.default_rng(4).normal(size=(1, 2, 4, 5))
    walk = pool_walk(x, 3, 1, 1, "avg", backward=True)
    expected = torch_input_gradient(
        lambda torch, t: torch.nn.functional.avg_pool2d(t, 3, 1, 1), x, walk.step("grad_output").array
    )
    np.testing.assert_allclose(walk.step("grad_input").array, expected, rtol=1e-12)


def test_conv_backward_equals_torch_autograd() -> None:
    rng = np.random.default_rng(5)
    x, weight = rng.normal(size=(2, 2, 4, 4)), rng.normal(size=(2, 2, 3, 3))
    walk = conv_walk(x, weight, stride=1, pad=1, backward=True)
    weight_tensor = pytest.importorskip("torch").from_numpy(weight)
    expected = torch_input_gradient(
        lambda torch, t: torch.nn.functional.conv2d(t, weight_tensor, None, 1, 1), x, walk.step("grad_output").array
    )
    np.testing.assert_allclose(walk.step("grad_input").array, expected, rtol=1e-10, atol=1e-12)


def test_conv_filter_and_bias_gradients_equal_torch_autograd() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, weight = rng.normal(size=(2, 2, 4, 4)), rng.normal(size=(3, 2, 2, 2))
    walk = conv_walk(x, weight, stride=2, pad=1, backward=True)
    weight_tensor = torch.tensor(weight, requires_grad=True)
    bias_tensor = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(torch.from_numpy(x), weight_tensor, bias_tensor, 2, 1)
    out.backward(torch.from_numpy(walk.step("grad_output").array))
    np.testing.assert_allclose(walk.step("grad_weight").array, weight_tensor.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(walk.step("grad_bias").array, bias_tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_product_links_recompute_each_product() -> None:
    """The trace's links of a matrix product: the cells they name, multiplied and summed, give the cell."""
    walk = conv_walk(np.random.default_rng(7).normal(size=(1, 2, 4, 4)), backward=True, pad=1)
    for key in ("product", "grad_col", "grad_weight_col"):
        step = walk.step(key)
        left, right = step.sources
        terms = walk.step(left.key).array.ravel()[left.index] * walk.step(right.key).array.ravel()[right.index]
        np.testing.assert_allclose(terms.sum(axis=-1), step.array, rtol=1e-12, atol=1e-12)


def test_conv_walk_shows_the_filters() -> None:
    weight = np.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    step = conv_walk(tutorial_input(), weight).step("weight")
    assert step.column is not None and step.outer == "filter"
    np.testing.assert_array_equal(step.array, weight)


def test_odd_input_names_the_rows_and_columns_no_window_reaches() -> None:
    x = np.arange(2 * 5 * 5.0).reshape(1, 2, 5, 5)
    walk = pool_walk(x, kernel=2, stride=2)
    unused = walk.step("input").unused
    # An input cell is used iff some window's slice (the naive loop's) contains it.
    used = np.zeros((5, 5), bool)
    for i, j in np.ndindex(2, 2):
        used[2 * i:2 * i + 2, 2 * j:2 * j + 2] = True
    np.testing.assert_array_equal(unused, np.broadcast_to(~used, x.shape))
    assert any("row 5 and column 5" in note for note in walk.notes)
    assert pool_walk(tutorial_input()).step("input").unused is None
    assert not any("no window" in note for note in pool_walk(tutorial_input()).notes)


@pytest.mark.parametrize("mode, pad, noted", [("avg", 1, True), ("avg", 0, False), ("max", 1, False)])
def test_avg_padding_note_says_zeros_count_in_the_divisor(mode: str, pad: int, noted: bool) -> None:
    walk = pool_walk(tutorial_input(), kernel=3, stride=1, pad=pad, mode=mode)
    assert any("count in the divisor" in note for note in walk.notes) == noted
    if noted:  # the claim itself: the corner's mean divides its 4 real cells by 9
        x = tutorial_input().astype(float)
        assert walk.forward_result[0, 0, 0, 0] == pytest.approx(x[0, 0, :2, :2].sum() / 9)


def test_max_padding_is_minus_infinity_and_never_wins() -> None:
    walk = pool_walk(tutorial_input(), kernel=2, stride=2, pad=1)
    col, padded = walk.step("col").array, walk.step("col").padded
    assert padded.any() and np.all(np.isneginf(col[padded])) and np.all(np.isfinite(col[~padded]))
    assert not np.any(walk.step("rows").chosen & walk.step("rows").padded)
    assert any("-inf" in note for note in walk.notes)


# --- the text ---------------------------------------------------------------


def test_cli_prints_the_tutorials_arrays(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys)
    assert status == 0
    for printed in TUTORIAL_STEPS.values():
        # Whole numbers print as integers: "array([[1, 2, 0, ...".
        assert squeeze_spaces(printed.replace(".", "")) in squeeze_spaces(out)


def test_cli_text_gives_each_steps_shape_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys)
    for label, shape in [("Step 1:", "(4, 12)"), ("Step 1b:", "(12, 4)"), ("Step 2:", "(12,)"),
                         ("Step 3:", "(1, 3, 2, 2)")]:
        block = out[out.index(label):]
        _, code_line, reason = block.splitlines()[:3]
        assert code_line.rstrip().endswith(f"shape {shape}")
        assert reason.startswith("    ") and len(reason.split()) > 5
    assert "im2col(x, 2, 2, 2, 0)" in out


def test_cli_backward_text(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "--backward")
    assert status == 0
    assert "winners = rows.argmax(axis=1)" in out and "col2im(dcol" in out


def test_cli_prints_whole_numbers_as_integers_and_fractions_as_floats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_cli(capsys)
    assert "array([[[[1, 2, 3, 0]," in out and "1." not in out.split("Step 1")[0]
    _, avg, _ = run_cli(capsys, "--mode", "avg")
    assert "array([1. , 2.25, 1.75," in squeeze_spaces(avg)  # the means are not whole: floats
    path = tmp_path / "x.npy"
    np.save(path, np.full((1, 2, 2), 0.5))
    _, half, _ = run_cli(capsys, "--input", str(path))
    assert "0.5" in half


def test_cli_padding_note(capsys: pytest.CaptureFixture[str]) -> None:
    _, with_pad, _ = run_cli(capsys, "--pad", "1")
    _, without_pad, _ = run_cli(capsys)
    assert "-inf" in with_pad and "-inf" not in without_pad


def test_cli_reads_a_users_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.npy"
    np.save(path, np.arange(2 * 6 * 6).reshape(2, 6, 6))  # (C, H, W): one image
    status, out, _ = run_cli(capsys, "--input", str(path), "--kernel", "3", "--stride", "3", "--mode", "avg")
    assert status == 0
    assert "shape (1, 2, 6, 6)" in out and "read as one image" in out
    expected = np.arange(72.0).reshape(1, 2, 6, 6).reshape(1, 2, 2, 3, 2, 3).mean(axis=(3, 5))
    np.testing.assert_array_equal(
        pool_walk(np.load(path), 3, 3, mode="avg").forward_result, expected
    )


def test_cli_conv_with_a_weight_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.ones((1, 3, 3, 3)))
    status, out, _ = run_cli(capsys, "--op", "conv", "--weight", str(path))
    assert status == 0
    assert "W_col = W.reshape(1, -1).T" in out and "out_col = col @ W_col" in out


# --- refusals ---------------------------------------------------------------


def assert_refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    status, out, err = run_cli(capsys, *argv)
    assert status == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    return err


@pytest.mark.parametrize("shape, words", [
    ((3, 5, 4, 4), ["batch", str(LIMITS.batch)]),
    ((1, 5, 4, 4), ["channel", str(LIMITS.channels)]),
    ((1, 1, 11, 4), ["height", str(LIMITS.plane)]),
])
def test_large_inputs_are_refused_with_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: tuple[int, ...], words: list[str]
) -> None:
    path = tmp_path / "big.npy"
    np.save(path, np.zeros(shape))
    assert_refused(capsys, ["--input", str(path)], "too large", *words)


def test_too_many_rows_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # 3 channels of 4x4 with a 2x2 window at stride 1: 9 windows * 3 = 27 rows, fine; padding 1 makes 75.
    run_cli(capsys, "--stride", "1")
    assert_refused(capsys, ["--stride", "1", "--pad", "1"], "rows", str(LIMITS.matrix_rows))


@pytest.mark.parametrize("make, words", [
    (lambda path: None, ["no such file"]),
    (lambda path: path.write_text("1 2 3\n"), ["cannot read"]),
    (lambda path: np.save(path, np.zeros((4, 4))), ["3 or 4-D"]),
    (lambda path: np.save(path, np.array([["a", "b"], ["c", "d"]])), ["dtype"]),
    (lambda path: np.save(path, np.array([[[1, None]]], dtype=object)), ["cannot read"]),
    (lambda path: np.save(path, np.full((1, 2, 2), np.nan)), ["finite"]),
])
def test_bad_input_files_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], object], words: list[str]
) -> None:
    path = tmp_path / "input.npy"
    make(path)
    assert_refused(capsys, ["--input", str(path)], "--input", *words)


def test_npz_archives_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(path, x=np.zeros((1, 2, 2)))
    assert_refused(capsys, ["--input", str(path)], ".npz")


@pytest.mark.parametrize("argv, words", [
    (["--pad", "2"], ["--pad", "half", "--kernel"]),
    (["--pad", "5"], ["--pad", "--kernel"]),
    (["--op", "conv", "--kernel", "7"], ["--kernel", "empty"]),
    (["--kernel", "5"], ["empty"]),
    (["--weight", "w.npy"], ["--op conv"]),
    (["--op", "conv", "--mode", "avg"], ["--op pool"]),
])
def test_bad_settings_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
) -> None:
    assert_refused(capsys, argv, *words)


def test_conv_kernel_must_agree_with_the_weight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.ones((2, 3, 2, 2)))
    assert_refused(capsys, ["--op", "conv", "--weight", str(path), "--kernel", "3"], "--kernel 3")
    np.save(path, np.ones((2, 2, 2, 2)))
    assert_refused(capsys, ["--op", "conv", "--weight", str(path)], "channels")


# --- the command as installed -------------------------------------------------


def test_help_stays_free_of_matplotlib_and_module_runs() -> None:
    probe = (
        "import sys; from colnn.apps.cli import build_parser; build_parser(); "
        "print('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    result = subprocess.run([sys.executable, "-m", "colnn", "explain"], capture_output=True, text=True)
    assert result.returncode == 0 and squeeze_spaces(TUTORIAL_STEP_2.replace(".", "")) in squeeze_spaces(result.stdout)


# --- the picture ----------------------------------------------------------------

CHANNEL_RGB = [(0xF5, 0xA0, 0x4A), (0x6C, 0xC2, 0x6C), (0x5B, 0x9B, 0xD5)]  # orange, green, blue
GREY_RGB = (0xD9, 0xD9, 0xD9)


def draw_png(capsys: pytest.CaptureFixture[str], path: Path, *argv: str) -> np.ndarray:
    """Run the command with ``--png path`` and read the image back, RGB in 0..255."""
    image = pytest.importorskip("matplotlib.image")
    status, out, _ = run_cli(capsys, *argv, "--png", str(path))
    assert status == 0 and f"figure written to {path}" in out
    return np.round(image.imread(path)[..., :3] * 255)


def has_color(pixels: np.ndarray, rgb: tuple[int, int, int], min_pixels: int = 800) -> bool:
    """Whether ``rgb`` fills ``min_pixels`` pixels or more: a cell is 36x36 at 100 dpi, and
    antialiased text never covers that much in one exact color."""
    matches = np.all(np.abs(pixels - np.array(rgb)) <= 2, axis=-1)
    return int(matches.sum()) >= min_pixels


def test_png_is_the_expected_size_and_shows_the_channel_colors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from colnn.apps.explain.plot import figure_size

    pixels = draw_png(capsys, tmp_path / "walk.png")
    width, height = figure_size(pool_walk(tutorial_input()))
    assert pixels.shape[:2] == (round(height * 100), round(width * 100))
    assert width * 100 >= 1000  # big enough to read: cells of 36 px at the default dpi
    for rgb in CHANNEL_RGB:
        assert has_color(pixels, rgb)
    assert not has_color(pixels, GREY_RGB)  # no padding, no grey cells


def test_png_marks_padding_grey_and_dpi_scales(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pixels = draw_png(capsys, tmp_path / "padded.png", "--pad", "1", "--dpi", "50")
    from colnn.apps.explain.plot import figure_size

    width, height = figure_size(pool_walk(tutorial_input(), pad=1))
    assert pixels.shape[:2] == (round(height * 50), round(width * 50))
    assert has_color(pixels, GREY_RGB, min_pixels=2000)  # dozens of 18x18 cells at 50 dpi


def test_changing_the_kernel_changes_the_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = draw_png(capsys, tmp_path / "k2.png", "--kernel", "2", "--stride", "1")
    three = draw_png(capsys, tmp_path / "k3.png", "--kernel", "3", "--stride", "1")
    assert two.shape != three.shape or not np.array_equal(two, three)


def test_chosen_cells_are_highlighted_only_for_max(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from colnn.apps.explain.plot import CHANNEL_COLORS, _darker

    chosen_orange = tuple(round(v * 255) for v in _darker(CHANNEL_COLORS[0]))
    assert has_color(draw_png(capsys, tmp_path / "max.png"), chosen_orange)
    assert not has_color(draw_png(capsys, tmp_path / "avg.png", "--mode", "avg"), chosen_orange)


def test_backward_picture_adds_the_gradients_band(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forward = draw_png(capsys, tmp_path / "forward.png")
    backward = draw_png(capsys, tmp_path / "backward.png", "--backward")
    assert backward.shape[1] >= forward.shape[1] and backward.shape[0] > 1.5 * forward.shape[0]


def test_svg_is_valid_xml_with_the_channel_colors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "walk.svg"
    status, _, _ = run_cli(capsys, "--svg", str(path))
    assert status == 0
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = path.read_text().lower()
    for color in ("#f5a04a", "#6cc26c", "#5b9bd5"):
        assert color in text
    assert "im2col(x, 2, 2, 2, 0)" in text  # text stays text


def test_unwritable_figure_path_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    status, _, err = run_cli(capsys, "--png", str(tmp_path / "missing" / "walk.png"))
    assert status == 1 and len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_docs_picture_is_the_default_walk() -> None:
    """docs/explain.png (shown in the README) is what ``colnn explain --png`` draws today."""
    image = pytest.importorskip("matplotlib.image")
    from colnn.apps.explain.plot import figure_size

    path = Path(__file__).resolve().parents[1] / "docs" / "explain.png"
    width, height = figure_size(pool_walk(tutorial_input()))
    assert image.imread(path).shape[:2] == (round(height * 100), round(width * 100))


def test_figure_without_matplotlib_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on an install without it
    monkeypatch.delitem(sys.modules, "colnn.apps.explain.plot", raising=False)
    status, out, err = run_cli(capsys, "--png", str(tmp_path / "walk.png"))
    assert status == 1 and out == ""  # checked before the walk starts
    assert len(err.strip().splitlines()) == 1 and "needs matplotlib" in err and 'pip install "colnn[apps]"' in err
    assert not (tmp_path / "walk.png").exists()


# --- the files written, and what the command says about them -----------------------

# The first bytes of each format, from the formats' specifications (not from matplotlib).
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff", "pdf": b"%PDF-",
         "tiff": (b"II*\x00", b"MM\x00*"), "webp": b"RIFF", "eps": b"%!PS-Adobe", "svg": b"<?xml"}


@pytest.mark.parametrize("flag, suffix", [("--png", "jpg"), ("--png", "JPEG"), ("--png", "pdf"), ("--png", "tiff"),
                                          ("--png", "eps"), ("--png", "svg"), ("--svg", "png"), ("--svg", "webp")])
def test_a_figure_is_written_in_the_format_its_suffix_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, suffix: str
) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / f"walk.{suffix}"
    status, out, err = run_cli(capsys, flag, str(path))
    assert status == 0 and without_compile_notice(err) == "" and out == f"figure written to {path}\n"
    assert path.read_bytes().startswith(MAGIC[suffix.lower()])
    assert sorted(tmp_path.iterdir()) == [path]  # no partial file left beside it


@pytest.mark.parametrize("flag, kind", [("--png", "png"), ("--svg", "svg")])
def test_a_figure_without_a_suffix_is_written_in_its_flags_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, kind: str
) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "walk"
    assert run_cli(capsys, flag, str(path))[0] == 0
    assert path.read_bytes().startswith(MAGIC[kind])


@pytest.mark.parametrize("name", ["walk.txt", "walk.png.bak", "walk.docx"])
def test_an_unknown_figure_suffix_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    pytest.importorskip("matplotlib")
    status, out, err = run_cli(capsys, "--html", str(tmp_path / "walk.html"), "--png", str(tmp_path / name))
    suffix = name.rsplit(".", 1)[1]
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"colnn explain: error: --png {tmp_path / name}: ") and f".{suffix}" in err
    assert ".jpg" in err and ".pdf" in err  # says which suffixes would do
    assert list(tmp_path.iterdir()) == []  # not even the page, whose path was fine


def test_writing_files_prints_one_line_each_and_the_text_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    page, figure = tmp_path / "walk.html", tmp_path / "walk.png"
    status, out, _ = run_cli(capsys, "--html", str(page))
    assert status == 0 and out == f"page written to {page}\n"
    status, out, _ = run_cli(capsys, "--html", str(page), "--png", str(figure))
    assert status == 0 and out == f"page written to {page}\nfigure written to {figure}\n"
    _, text, _ = run_cli(capsys)
    status, out, _ = run_cli(capsys, "--html", str(page), "--text")
    assert status == 0 and out == text + f"page written to {page}\n"
    assert "Step 1:" in text and len(text.splitlines()) > 50  # the walk itself, without a file asked for


def test_a_failing_figure_leaves_the_earlier_file_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from colnn.apps.explain import plot

    path = tmp_path / "walk.png"
    path.write_bytes(b"the earlier figure")

    def fail_halfway(walk: Any, target: Path, **options: Any) -> None:
        Path(target).write_bytes(b"half a figure")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "save_figure", fail_halfway)
    status, _, err = run_cli(capsys, "--png", str(path))
    assert status == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert path.read_bytes() == b"the earlier figure" and sorted(tmp_path.iterdir()) == [path]
