"""The report site in a real browser: headless Chromium driven by Selenium (Debian's ``chromium`` and
``chromium-driver``; set LTBENCH_CHROMIUM / LTBENCH_CHROMEDRIVER to use others).

The site is served over HTTP from a local server, as a reader would browse it. Checked: the index links to every
table page and every link, image and stylesheet answers 200 with no browser error; a ✓ and a ✗ cell get the
expected, different colours; no page is wider than a 1280 px window; and screenshots of the index and of PCB
Table 2 are saved (full page) to a folder the test prints (LTBENCH_SCREENSHOTS, default
``<tmp>/ltbench-screenshots``).

Runs (never skips) wherever chromium, chromedriver and selenium are installed (CI: .ci/run installs them); skips
with the reason otherwise.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

from ltbench import paths
from ltbench.report.site import COLOURS

from support.report import half_finished_campaign

WIDTH = 1280
PAPERS = ["pcb", "disalign", "bags", "simcal"]


def _binary(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((found for found in (shutil.which(n) for n in names) if found), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    chromium = _binary("LTBENCH_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver_bin = _binary("LTBENCH_CHROMEDRIVER", "chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("chromium / chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={WIDTH},900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def _serve(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _real_smoke_results() -> tuple[Path, Path] | None:
    """The repository's own smoke results (``make main``), when PCB Table 2 has records there."""
    from ltbench.plan import build_plan

    records = paths.RESULTS_DIR / "records"
    if not records.is_dir():
        return None
    runs = build_plan(targets=["tables/pcb_table2.md"], scale="smoke").runs
    if not any((records / run_id).is_dir() for run_id in runs):
        return None
    return paths.RESULTS_DIR, paths.work_root()


def _build_site(tmp: Path, results: Path, work: Path, source: str):
    from ltbench.audit.report import write_audit

    md = tmp / "tables" / "audit.md"
    write_audit(PAPERS, md=md, html=md.with_suffix(".html"), scale="smoke", results_dir=results, work_dir=work)
    server, url = _serve(md.parent)
    return server, {"root": md.parent / "site", "url": url, "site_url": url + "site/", "source": source, "md": md}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The report site of all four papers on a fabricated half-finished PCB Table 2 campaign (done, running,
    stalled, failed and pending runs; cells within, above and below the paper's numbers)."""
    import time

    tmp = tmp_path_factory.mktemp("site")
    campaign = half_finished_campaign(tmp / "campaign", time.time())
    server, info = _build_site(tmp, campaign["results"], campaign["work"], "a fabricated half-finished campaign")
    yield info
    server.shutdown()


@pytest.fixture(scope="module")
def smoke_site(tmp_path_factory, site):
    """The site on the repository's smoke results (``make main``) when there are some, else the fabricated one."""
    real = _real_smoke_results()
    if real is None:
        yield site
        return
    server, info = _build_site(tmp_path_factory.mktemp("smoke_site"), real[0], real[1], f"the smoke results in {real[0]}")
    yield info
    server.shutdown()


def _status(url: str) -> int:
    with urllib.request.urlopen(url) as response:  # raises HTTPError on 4xx/5xx
        return response.status


def _open(driver, url: str):
    driver.get(url)
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, f"{url}: browser errors {errors}"


def _local_targets(driver, attr: str, selector: str) -> list[str]:
    values = driver.execute_script(
        f"return Array.from(document.querySelectorAll('{selector}')).map(e => e['{attr}'])")
    return [v.split("#", 1)[0] for v in values if v and v.startswith("http://127.0.0.1")]


def _table_pages() -> set[str]:
    from ltbench.render.tables import reproduced_table_ids

    return {f"{paper}_table{t}.html" for paper in PAPERS for t in reproduced_table_ids(paper)}


def test_index_links_to_every_table_page_and_nothing_is_broken(browser, site):
    for index_url in (site["site_url"] + "index.html", site["url"] + "audit.html"):  # the site's and tables/audit.html
        _open(browser, index_url)
        links = _local_targets(browser, "href", "a[href]")
        tables = {u.rsplit("/", 1)[-1] for u in links if re.search(r"_table[0-9A-Za-z]+\.html$", u)}
        assert tables == _table_pages(), index_url
    visited = set()
    pages = [site["site_url"] + "index.html"]
    while pages:  # every page reachable from the index, its links, images and stylesheet
        url = pages.pop()
        if url in visited:
            continue
        visited.add(url)
        assert _status(url) == 200, url
        _open(browser, url)
        assert browser.find_element("css selector", "nav.top"), url
        for target in _local_targets(browser, "src", "img") + _local_targets(browser, "href", "link[rel=stylesheet]"):
            assert _status(target) == 200, f"{url}: {target}"
        for target in _local_targets(browser, "href", "a[href]"):
            if target.endswith(".html"):
                pages.append(target)
            else:
                assert _status(target) == 200, f"{url}: {target}"  # downloads
    assert {u.rsplit("/", 1)[-1] for u in visited} >= _table_pages() | {"index.html", "status.html", "claims.html"}


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


def test_verdict_colours(browser, site):
    _open(browser, site["site_url"] + "pcb_table2.html")
    style = "return getComputedStyle(arguments[0])"
    colours = {}
    for cls in ("v-within", "v-worse", "v-better", "g-reproduces"):
        cells = browser.find_elements("css selector", f"table.paper td.c.{cls}")
        assert cells, f"no {cls} cell on PCB Table 2 ({site['source']})"
        computed = browser.execute_script(style + ".backgroundColor", cells[0])
        assert computed == _rgb(COLOURS[cls][0]), cls
        assert browser.execute_script(style + ".color", cells[0]) == _rgb(COLOURS[cls][1]), cls
        colours[cls] = computed
    assert colours["v-within"] != colours["v-worse"] != colours["v-better"]
    ticks = browser.find_elements("css selector", "table.paper td.c.v-within .m i")
    crosses = browser.find_elements("css selector", "table.paper td.c.v-worse .m i")
    assert ticks[0].text == "✓" and crosses[0].text == "✗"
    # text reads left to right: attribute cells and the page body are left-aligned, numbers right-aligned
    assert browser.execute_script(style + ".textAlign", browser.find_element("css selector", "td.attr")) in ("left", "start")
    assert browser.execute_script(style + ".textAlign", ticks[0].find_element("xpath", "./../..")) == "right"


def test_no_page_overflows_at_1280_px(browser, site):
    pages = sorted(p.name for p in site["root"].glob("*.html"))
    assert len(pages) >= len(_table_pages()) + 5
    wide = {}
    for name in pages:
        _open(browser, site["site_url"] + name)
        width = browser.execute_script("return document.scrollingElement.scrollWidth")
        if width > WIDTH:
            wide[name] = width
    _open(browser, site["url"] + "audit.html")
    if browser.execute_script("return document.scrollingElement.scrollWidth") > WIDTH:
        wide["audit.html"] = browser.execute_script("return document.scrollingElement.scrollWidth")
    assert not wide, f"pages wider than {WIDTH} px: {wide}"


def _full_page_png(driver, out: Path) -> None:
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    height = int(metrics["cssContentSize"]["height"])
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    out.write_bytes(base64.b64decode(shot["data"]))


def test_screenshots_of_the_index_and_pcb_table2(browser, smoke_site, capsys):
    import numpy as np
    from PIL import Image

    site = smoke_site

    folder = Path(os.environ.get("LTBENCH_SCREENSHOTS") or Path(tempfile.gettempdir()) / "ltbench-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, page in (("index.png", "index.html"), ("pcb_table2.png", "pcb_table2.html")):
        _open(browser, site["site_url"] + page)
        out = folder / name
        _full_page_png(browser, out)
        with Image.open(out) as image:
            assert image.width == WIDTH and image.height > 600, (name, image.size)
            colours = image.convert("RGB").resize((WIDTH // 8, image.height // 8)).getcolors(maxcolors=1 << 16)
            assert colours is not None and len(colours) > 50, f"{name} looks blank"
        saved.append(out)
    with Image.open(saved[1]) as image:
        pixels = np.asarray(image.convert("RGB"))
    for cls in ("v-within", "v-worse"):  # the verdict colours are on the screenshot (cells or, at least, the legend)
        colour = np.array([int(COLOURS[cls][0][i:i + 2], 16) for i in (1, 3, 5)])
        assert (pixels == colour).all(axis=-1).sum() > 200, cls
    with capsys.disabled():
        print(f"\nreport screenshots ({site['source']}): " + ", ".join(str(p) for p in saved))
