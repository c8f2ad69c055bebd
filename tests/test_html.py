"""`diffcli batch --html`: one self-contained page, checked as text and in a real browser
(headless Chromium, Debian's `chromium` package, driven by Playwright from a file on disk)."""

import json
import os
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

from diffcli.cli import cli

SUITE = """
[[case]]
name = "kink times x"
expr = "x sqrt(x^2)"
at = [{ x = 0.0 }, { x = 0.5 }]
sample = { box = { x = [-1, 1] }, n = 30 }
checks = ["value", "grad"]

[[case]]
name = "log"
expr = "log(x) + y^2"
at = [{ x = 1, y = 2 }, { x = -1, y = 2 }]
checks = ["grad", "hessian"]

[[case]]
name = "does not parse"
expr = "sin(x"
at = [{ x = 1 }]
checks = ["value"]

[[case]]
name = "vector"
expr = "[x^2 y, sin(y)]"
at = [{ x = 1, y = 2 }]
checks = ["jacobian", "vjp"]

[[case]]
name = "expect <b>escaped</b>"
expr = "x^3"
at = [{ x = 2 }]
checks = ["grad"]
expect = { grad = [[12.0]] }
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The suite's batch: the page, its JSON Lines, and the exit status."""
    where = tmp_path_factory.mktemp("html")
    suite = where / "awkward.toml"
    suite.write_text(SUITE)
    page = where / "report.html"
    result = CliRunner().invoke(cli, ["batch", str(suite), "-f", "json", "--html", str(page)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return page, lines[:-1], result.exit_code


class _Records(HTMLParser):
    def __init__(self):
        super().__init__()
        self.records, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "tbody" and attrs.get("class") == "record":
            self.records.append(attrs["data-status"])
        for name in ("src", "href", "action", "srcset"):
            assert name not in attrs, (tag, attrs)


def test_the_page_has_a_row_per_record_and_asks_for_nothing(run):
    page, records, status = run
    assert status == 1  # a mismatch and a case error
    text = page.read_text()
    parser = _Records()
    parser.feed(text)
    assert parser.records == [r["status"] for r in records]
    assert [r["status"] for r in records] == ["ok", "mismatch", "undefined", "undefined", "error", "ok", "ok", "ok"]
    assert not {"script", "link", "img", "iframe", "object"} & parser.tags
    assert "default-src 'none'" in text  # and a policy that would refuse any request
    assert "<b>escaped</b>" not in text and "&lt;b&gt;escaped&lt;/b&gt;" in text
    assert "8 checks of 5 cases: 5 ok, 2 undefined, 1 mismatch, 1 error" not in text  # 8 records, counted right:
    assert "8 checks of 5 cases: 4 ok, 2 undefined, 1 mismatch, 1 error" in text


def test_the_mismatch_lists_its_worst_point_and_draws_its_curve(run):
    page, _, _ = run
    text = page.read_text()
    (mismatch,) = [part for part in text.split('<tbody class="record"')[1:] if 'data-status="mismatch"' in part]
    # d/dx x|x| = 2|x| is 0 at x = 0, where torch says NaN
    assert re.search(r"<td>x=0</td><td>∂f/∂x</td><td><code>nan</code></td><td><code>0.0</code></td>", mismatch)
    assert mismatch.count('<svg class="curve"') == 1 and 'class="mismatch"' in mismatch
    assert "<math" in mismatch  # the formula x sign(x) + |x|, typeset


def _browser():
    for name in (os.environ.get("DIFFCLI_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = name and shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    executable = _browser()
    if executable is None:
        pytest.skip("no Chromium: apt-get install chromium (Debian), or set DIFFCLI_CHROMIUM to a Chrome binary")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def loaded(run, browser):
    page_path, records, _ = run
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    page = context.new_page()
    messages, requests = [], []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    yield page, records, messages, requests
    context.close()


def test_in_chromium_rows_and_statuses_match_the_json_lines(loaded):
    page, records, messages, requests = loaded
    assert messages == []  # no console errors (nor any console output)
    assert requests == [page.url]  # the file itself, nothing else
    rows = page.locator("tbody.record")
    assert rows.count() == len(records)
    shown = [rows.nth(i).locator("td.status").inner_text() for i in range(rows.count())]
    assert shown == [r["status"] for r in records]
    checks = [rows.nth(i).locator("td.check").inner_text() for i in range(rows.count())]
    assert checks == [r["check"] for r in records]
    assert page.locator("#summary").inner_text().startswith("8 checks of 5 cases")


def test_in_chromium_mathml_renders_with_a_size(loaded):
    page, *_ = loaded
    maths = page.locator("td.expression math")
    assert maths.count() >= 6  # every case that parses
    for i in range(maths.count()):
        box = maths.nth(i).bounding_box()
        assert box is not None and box["width"] > 5 and box["height"] > 5
    # a fraction renders as a fraction: its numerator sits above its denominator (1/x)
    fraction = page.locator("tbody.record[data-status=undefined] mfrac").first
    numerator, denominator = (fraction.locator(":scope > *").nth(i).bounding_box() for i in (0, 1))
    assert numerator["y"] + numerator["height"] <= denominator["y"] + 1


def test_in_chromium_the_filters_work_without_a_script(loaded):
    page, records, *_ = loaded
    visible = page.locator("tbody.record:visible")
    assert visible.count() == len(records)
    for status in ("mismatch", "undefined", "error", "ok"):
        page.locator(f"label[for=show-{status}]").click()
        assert visible.count() == sum(r["status"] == status for r in records), status
        assert all(visible.nth(i).get_attribute("data-status") == status for i in range(visible.count()))
    page.locator("label[for=show-all]").click()
    assert visible.count() == len(records)


def test_in_chromium_a_screenshot_is_not_blank(loaded, tmp_path):
    page, *_ = loaded
    from PIL import Image

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert image.size[0] == 1200 and image.size[1] > 600
    ink = (pixels < 200).any(axis=1).mean()  # text, rules, badges, curves
    assert 0.01 < ink < 0.5
    colours = {tuple(c) for c in pixels[:: max(len(pixels) // 200_000, 1)]}
    assert len(colours) > 50  # text antialiased, a curve, status colours: not a flat page
