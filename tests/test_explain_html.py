"""Tests of ``colnn explain --html``: the page's data against the walk, then the page in a real browser.

The browser tests drive Debian's headless Chromium through Selenium (no
browser download); they skip with a message where either is missing. The
cells a trace must highlight and the window a row must outline are computed
here from the window geometry, independently of the walk's links.
"""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colnn.apps.cli import main
from colnn.apps.explain import conv_walk, pool_walk, tutorial_input
from colnn.apps.explain.command import render_text
from colnn.apps.explain.html import render_html
from colnn.apps.explain.walk import BAND_TITLES

# Every option combination of the text walk: (argv, the walk the same options build).
ODD_INPUT = np.arange(2 * 5 * 5).reshape(1, 2, 5, 5) % 7


def _options() -> list[tuple[list[str], Any]]:
    combos: list[tuple[list[str], Any]] = []
    for mode in ("max", "avg"):
        for kernel, stride, pad in ((2, 2, 0), (3, 1, 1), (2, 1, 0), (3, 2, 1)):
            for backward in (False, True):
                argv = ["--mode", mode, "--kernel", str(kernel), "--stride", str(stride), "--pad", str(pad)]
                combos.append((argv + (["--backward"] if backward else []),
                               (pool_walk, (tutorial_input(), kernel, stride, pad, mode, backward))))
    for stride, pad in ((1, 0), (2, 1)):
        for backward in (False, True):
            argv = ["--op", "conv", "--stride", str(stride), "--pad", str(pad)]
            combos.append((argv + (["--backward"] if backward else []),
                           (conv_walk, (tutorial_input(), None, 2, stride, pad, backward))))
    return combos


OPTIONS = _options()
OPTION_IDS = [" ".join(argv) for argv, _ in OPTIONS]


def embedded_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="walk-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


def decoded(values: list[Any]) -> np.ndarray:
    return np.array([float(v) for v in values])  # "-inf" and "inf" parse as floats


def write_page(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str], name: str = "walk.html") -> Path:
    path = tmp_path / name
    assert main(["explain", *argv, "--html", str(path)]) == 0
    capsys.readouterr()
    return path


# --- the page's data is the walk's --------------------------------------------


@pytest.mark.parametrize("argv, build", OPTIONS, ids=OPTION_IDS)
def test_page_data_holds_the_walks_arrays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], build: Any
) -> None:
    function, arguments = build
    walk = function(*arguments)
    data = embedded_data(write_page(tmp_path, argv, capsys).read_text(encoding="utf-8"))
    assert [step["key"] for step in data["steps"]] == [step.key for step in walk.steps]
    text = render_text(walk)
    for shown, step in zip(data["steps"], walk.steps):
        assert tuple(shown["shape"]) == step.shape
        np.testing.assert_array_equal(decoded(shown["values"]).reshape(step.shape), step.array)
        assert (shown["label"], shown["title"], shown["code"], shown["why"]) == (
            step.label, step.title, step.code, step.why)
        assert step.code in text  # the page and the text walk show the same code
        if step.channel is not None:
            np.testing.assert_array_equal(np.reshape(shown["channel"], step.shape), step.channel)


@pytest.mark.parametrize("argv, build", OPTIONS, ids=OPTION_IDS)
def test_copy_links_point_at_equal_values(argv: list[str], build: Any) -> None:
    """A property of the links the trace follows: a copied cell equals the cell it copies."""
    function, arguments = build
    data = json.loads(json.dumps(embedded_data(render_html(function(*arguments)))))
    steps = {step["key"]: step for step in data["steps"]}
    for step in data["steps"]:
        for link in step["sources"]:
            if not link["copy"]:
                continue
            values, source = decoded(step["values"]), decoded(steps[link["key"]]["values"])
            for cell, (index,) in enumerate(link["index"]):
                if index >= 0:
                    assert values[cell] == source[index], (step["key"], cell)


def test_page_is_self_contained() -> None:
    page = render_html(conv_walk(tutorial_input(), backward=True))
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page, re.I)
    assert "<script>" in page and "<style>" in page


def test_odd_input_marks_unused_cells_and_says_so() -> None:
    walk = pool_walk(ODD_INPUT)
    data = embedded_data(render_html(walk))
    unused = np.reshape(data["steps"][0]["unused"], ODD_INPUT.shape).astype(bool)
    expected = np.zeros(ODD_INPUT.shape, bool)
    expected[..., 4, :] = expected[..., :, 4] = True  # 2x2 windows at stride 2 stop at row and column 4
    np.testing.assert_array_equal(unused, expected)
    assert any("row 5 and column 5" in note for note in data["notes"])


def test_repr_html_is_the_page_in_an_iframe() -> None:
    walk = pool_walk(tutorial_input())
    inline = walk._repr_html_()
    found = re.fullmatch(r'<iframe srcdoc="(.*?)".*</iframe>', inline, re.S)
    assert found and html_module.unescape(found.group(1)) == render_html(walk)


def test_page_files_are_package_data() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    listed = pyproject["tool"]["setuptools"]["package-data"]["colnn.apps.explain"]
    here = Path(__file__).resolve().parents[1] / "src" / "colnn" / "apps" / "explain"
    assert {path.name for path in here.glob("page.*")} <= set(listed)


def test_unwritable_page_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["explain", "--html", str(tmp_path / "missing" / "walk.html")])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1 and "cannot write" in err


# --- the page in a browser ----------------------------------------------------

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="colnn-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_page(browser: Any, path: Path, show_all: bool = True) -> None:
    browser.get(path.resolve().as_uri())
    browser.get_log("performance")  # start each page's network log afresh
    if show_all:
        browser.find_element("id", "show-all").click()


def highlighted(browser: Any) -> set[tuple[str, int]]:
    return {(cell.get_attribute("data-step"), int(cell.get_attribute("data-i")))
            for cell in browser.find_elements("css selector", "td.hl, td.hl-self")}


def flat(shape: tuple[int, ...], *position: int) -> int:
    return int(np.ravel_multi_index(position, shape))


def windows_covering(i: int, j: int, kernel: int, stride: int, pad: int, out: int) -> Iterator[tuple[int, ...]]:
    """``(oy, ox, ky, kx)`` of every window (from the geometry) that covers input cell ``(i, j)``."""
    for oy, ox in np.ndindex(out, out):
        ky, kx = i - (oy * stride - pad), j - (ox * stride - pad)
        if 0 <= ky < kernel and 0 <= kx < kernel:
            yield oy, ox, ky, kx


def expected_trace(keys: tuple[str, ...], c: int, i: int, j: int, kernel: int, stride: int, pad: int
                   ) -> set[tuple[str, int]]:
    """Cell (0, c, i, j) of the input (or dx), and per window covering it: its im2col cell (or
    dcol's), its cell of rows (drows), the row's value (its gradient) and the output cell (dout).

    ``keys`` names those five steps; the tutorial's 3-channel 4x4 input.
    """
    channels, size = 3, 4
    out = (size + 2 * pad - kernel) // stride + 1
    area = kernel * kernel
    start, col, rows, reduced, output = keys
    cells = {(start, flat((1, channels, size, size), 0, c, i, j))}
    for oy, ox, ky, kx in windows_covering(i, j, kernel, stride, pad, out):
        window = oy * out + ox
        row = window * channels + c
        cells |= {(col, flat((out * out, channels * area), window, c * area + ky * kernel + kx)),
                  (rows, flat((out * out * channels, area), row, ky * kernel + kx)),
                  (reduced, row),
                  (output, flat((1, channels, out, out), 0, c, oy, ox))}
    return cells


FORWARD = ("input", "col", "rows", "reduced", "output")
BACKWARD = ("grad_input", "grad_col", "grad_rows", "grad_reduced", "grad_output")


def test_step_forward_and_back(browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, write_page(tmp_path, [], capsys), show_all=False)

    def shown() -> list[str]:
        return [section.get_attribute("data-key") for section in browser.find_elements("css selector", "section.step")
                if section.is_displayed()]

    assert shown() == ["input"]
    browser.find_element("id", "next").click()
    browser.find_element("id", "next").click()
    assert shown() == ["input", "col", "rows"]
    browser.find_element("id", "prev").click()
    assert shown() == ["input", "col"]
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.ARROW_RIGHT)
    body.send_keys(Keys.ARROW_RIGHT)
    assert shown() == ["input", "col", "rows", "reduced"]
    body.send_keys(Keys.ARROW_LEFT)
    assert shown() == ["input", "col", "rows"]
    browser.find_element("id", "show-all").click()
    assert shown() == ["input", "col", "rows", "reduced", "output"]
    assert "Step 1b" in browser.find_element("css selector", 'section[data-key="rows"] h2').text


@pytest.mark.parametrize("kernel, stride, pad, cell", [(2, 2, 0, (0, 1, 1)), (2, 2, 0, (2, 3, 0)),
                                                       (3, 1, 1, (1, 1, 2)), (2, 1, 0, (0, 1, 1))])
def test_hovering_an_input_cell_highlights_exactly_its_route(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    kernel: int, stride: int, pad: int, cell: tuple[int, int, int],
) -> None:
    from selenium.webdriver import ActionChains

    argv = ["--kernel", str(kernel), "--stride", str(stride), "--pad", str(pad)]
    open_page(browser, write_page(tmp_path, argv, capsys))
    c, i, j = cell
    target = browser.find_element("css selector", f'td[data-step="input"][data-i="{flat((1, 3, 4, 4), 0, c, i, j)}"]')
    ActionChains(browser).move_to_element(target).perform()
    assert highlighted(browser) == expected_trace(FORWARD, c, i, j, kernel, stride, pad)
    assert "hl-self" in target.get_attribute("class")
    # Each max it entered says whether it won: it did iff it is the first maximum of its window.
    padded = np.pad(tutorial_input().astype(float), ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    out = (4 + 2 * pad - kernel) // stride + 1
    for oy, ox, ky, kx in windows_covering(i, j, kernel, stride, pad, out):
        values = padded[0, c, oy * stride:oy * stride + kernel, ox * stride:ox * stride + kernel].ravel()
        row = (oy * out + ox) * 3 + c
        marks = browser.find_element("css selector", f'td[data-step="reduced"][data-i="{row}"]').get_attribute("class")
        assert ("won" if int(np.argmax(values)) == ky * kernel + kx else "lost") in marks.split()


def test_focusing_a_cell_with_the_keyboard_traces_it(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, write_page(tmp_path, [], capsys))
    first = browser.find_element("css selector", 'td[data-step="input"][data-i="0"]')
    browser.execute_script("arguments[0].focus()", first)
    first.send_keys(Keys.TAB)  # to the next cell, input[0, 0, 0, 1]
    assert browser.switch_to.active_element.get_attribute("data-i") == "1"
    assert highlighted(browser) == expected_trace(FORWARD, 0, 0, 1, 2, 2, 0)


def test_hovering_a_gradient_cell_shows_its_route_back(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver import ActionChains

    argv = ["--mode", "avg", "--kernel", "3", "--stride", "1", "--pad", "1", "--backward"]
    open_page(browser, write_page(tmp_path, argv, capsys))
    cell = flat((1, 3, 4, 4), 0, 1, 1, 2)
    target = browser.find_element("css selector", f'td[data-step="grad_input"][data-i="{cell}"]')
    ActionChains(browser).move_to_element(target).perform()
    assert highlighted(browser) == expected_trace(BACKWARD, 1, 1, 2, 3, 1, 1)
    # The overlapping windows' shares are summed in the open: nine terms for an inner cell.
    assert browser.find_element("id", "status").text.count(" + ") == 8


def test_clicking_an_im2col_row_outlines_its_window(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_page(browser, write_page(tmp_path, ["--kernel", "3", "--stride", "1", "--pad", "1"], capsys))
    kernel, stride, pad, out = 3, 1, 1, 4
    for row in (0, 6):
        browser.find_element("css selector", f'section[data-key="col"] tr[data-row="{row}"] th').click()
        top, left = (row // out) * stride - pad, (row % out) * stride - pad
        outlined = {(int(td.get_attribute("data-c")), int(td.get_attribute("data-y")), int(td.get_attribute("data-x")))
                    for td in browser.find_elements("css selector", 'td.win[data-step="input"]')}
        expected = {(c, y, x) for c in range(3) for y in range(top, top + kernel) for x in range(left, left + kernel)}
        assert outlined == expected
        assert "picked" in browser.find_element(
            "css selector", f'section[data-key="col"] tr[data-row="{row}"]').get_attribute("class")


@pytest.mark.parametrize("argv, build", OPTIONS, ids=OPTION_IDS)
def test_every_option_combination_opens_without_errors_or_network(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], build: Any
) -> None:
    function, arguments = build
    walk = function(*arguments)
    open_page(browser, write_page(tmp_path, argv, capsys))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    sections = browser.find_elements("css selector", "section.step")
    shown = [section.get_attribute("data-key") for section in sections if section.is_displayed()]
    bands = list(BAND_TITLES)  # grouped by band, in the walk's order within a band
    assert shown == [step.key for step in sorted(walk.steps, key=lambda step: bands.index(step.band))]
    cells = browser.find_elements("css selector", "td[data-i]")
    assert len(cells) == sum(step.array.size for step in walk.steps)
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    requests = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = [event["params"]["request"]["url"] for event in requests if event["method"] == "Network.requestWillBeSent"]
    assert [url for url in urls if not url.startswith(("file:", "data:", "about:"))] == []


def test_odd_input_page_crosses_out_what_no_window_reaches(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odd.npy"
    np.save(path, ODD_INPUT[0])
    open_page(browser, write_page(tmp_path, ["--input", str(path), "--backward"], capsys))
    crossed = {(int(td.get_attribute("data-c")), int(td.get_attribute("data-y")), int(td.get_attribute("data-x")))
               for td in browser.find_elements("css selector", 'td.unused[data-step="input"]')}
    assert crossed == {(c, y, x) for c in range(2) for y in range(5) for x in range(5) if y == 4 or x == 4}
    assert "row 5 and column 5" in browser.find_element("id", "notes").text
    legend = browser.find_element("id", "legend").text
    assert "crossed: in no window" in legend and "pale: zero gradient" in legend


def test_screenshot(browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = pytest.importorskip("matplotlib.image")
    open_page(browser, write_page(tmp_path, ["--backward"], capsys))
    path = tmp_path / "page.png"
    assert browser.save_screenshot(str(path))
    pixels = image.imread(path)
    assert pixels.shape[0] >= 600 and pixels.shape[1] >= 1000
    orange = np.all(np.abs(np.round(pixels[..., :3] * 255) - (0xF5, 0xA0, 0x4A)) <= 2, axis=-1)
    assert orange.sum() > 1000  # channel 1's cells are drawn in the tutorial's orange
