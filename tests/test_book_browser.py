"""Open every chapter in a real browser (Debian's chromium + chromedriver through selenium) with
every host but the local server unreachable (as offline): every image loads, every formula
renders (MathJax is served from the book), the console has no errors, search finds "Grad-CAM";
screenshots are saved under _build/screenshots/."""
import base64
import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from .book_build import ROOT, require_build, toc_pages

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    html = require_build()
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    handler = partial(SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # offline but for the book
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        driver.quit()
        server.shutdown()


def _console_errors(driver):
    """Severe console entries, except failed loads from other hosts (thebe's live-code scripts
    come from a CDN, which the offline browser cannot reach; online readers get them)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and not (entry["source"] == "network" and "127.0.0.1" not in entry["message"].split(" ")[0])]


@pytest.mark.parametrize("page", toc_pages())
def test_chapter_loads_with_images_and_no_console_errors(browser, page):
    driver, base = browser
    driver.get(f"{base}/{page}.html")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
    assert broken == [], f"{page}: images that did not load: {broken}"
    assert _console_errors(driver) == []
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / f"{page.replace('/', '_')}.png"))


def test_search_finds_gradcam(browser):
    driver, base = browser
    driver.get(f"{base}/search.html?q=Grad-CAM")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li") or "Search finished" in d.page_source
        or "found" in d.find_element(By.ID, "search-results").text)
    results = driver.find_elements(By.CSS_SELECTOR, "#search-results li a")
    assert any("first_look" in r.get_attribute("href") for r in results), [r.get_attribute("href") for r in results]
    assert _console_errors(driver) == []


def _math_state(driver):
    """After MathJax has typeset the page: (formulas on the page, rendered, MathJax errors,
    formulas still showing raw TeX, where MathJax was loaded from)."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const report = () => {
          const math = Array.from(document.querySelectorAll('.math'));
          done([math.length, document.querySelectorAll('mjx-container').length,
                document.querySelectorAll('mjx-merror').length,
                math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
                Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax') || s.includes('tex-'))]);
        };
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
          MathJax.startup.promise.then(report, report);
        } else { report(); }
    """)


@pytest.mark.parametrize("page", toc_pages())
def test_every_formula_renders_offline(browser, page):
    driver, base = browser
    driver.set_script_timeout(60)
    driver.get(f"{base}/{page}.html")
    formulas, rendered, errors, raw, sources = _math_state(driver)
    assert all(src.startswith(base) for src in sources), f"{page}: MathJax not served by the book: {sources}"
    assert errors == 0, f"{page}: {errors} formulas with MathJax errors"
    assert raw == [], f"{page}: formulas left as raw TeX: {raw[:3]}"
    assert rendered >= formulas


# --- the offline method explorer (book/explorer.md) ---------------------------------------------------------

EXPLORER_RESULT = ROOT / "benchmarks" / "results" / "explorer-v1"
#: Control changes from Grad-CAM at the last feature map, one at a time, each of which must change
#: what is shown: the target, the layer, the image, a method without a layer (the layer control is
#: disabled), a signed map.
EXPLORER_STEPS = (("explorer-target", "runner_up"), ("explorer-layer", "features.blocks.10"),
                  ("explorer-image", "last"), ("explorer-method", "saliency"),
                  ("explorer-method", "input_x_gradient"))


def _explorer_records() -> dict:
    lines = (EXPLORER_RESULT / "records.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[1:]]
    return {(r["image"], r["base_method"], r["layer"] or "", r["kind"]): r for r in records}


def _explorer_shown(driver) -> dict:
    """What the explorer shows now: its state, the map canvas's pixels, the numbers, the curves."""
    return driver.execute_script("""
        const root = document.getElementById('xai-explorer');
        const canvas = document.getElementById('explorer-map');
        const data = JSON.parse(document.getElementById(root.dataset.source).textContent);
        const text = id => document.getElementById('explorer-' + id).textContent;
        return {state: Object.assign({}, root.dataset), clip: data.clip,
                size: [canvas.height, canvas.width],
                pixels: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data),
                numbers: Object.fromEntries(['target-class', 'probability', 'deletion-auc', 'insertion-auc', 'forward',
                                             'backward', 'seconds', 'cpu-seconds'].map(id => [id, text(id)])),
                plot: JSON.parse(document.getElementById('explorer-curves').getAttribute('data-plot')),
                deletion: document.getElementById('explorer-deletion-line').getAttribute('points'),
                insertion: document.getElementById('explorer-insertion-line').getAttribute('points'),
                photo: document.getElementById('explorer-photo').src,
                layer_disabled: document.getElementById('explorer-layer').disabled,
                images: Array.from(document.getElementById('explorer-image').options).map(o => o.value)};
    """)


def _expected_colors(record: dict, clip: float) -> np.ndarray:
    """The map's colors as the book draws maps: viridis on [0, L] (unsigned), the diverging map on
    [-L, L] (signed), L the clip-th percentile of |map| (computed here independently of the page)."""
    from matplotlib import colormaps

    from xai_lab.plot import SIGNED_CMAP, UNSIGNED_CMAP

    m = record["map"]
    q = np.frombuffer(base64.b64decode(m["data"]), dtype=np.uint8).reshape(m["size"])
    values = m["min"] + q.astype(np.float64) * (m["max"] - m["min"]) / 255
    limit = float(np.percentile(np.abs(values), clip)) or 1.0
    t = (values + limit) / (2 * limit) if record["signed"] else values / limit
    index = np.floor(np.clip(t, 0, 1) * 255 + 0.5).astype(int)
    lut = colormaps[SIGNED_CMAP if record["signed"] else UNSIGNED_CMAP](np.linspace(0, 1, 256))[:, :3]
    return np.round(lut[index] * 255).astype(int), limit


def _check_explorer_shows(shown: dict, records: dict) -> dict:
    """The record the explorer's state names, and everything shown equals it."""
    s = shown["state"]
    record = records[s["image"], s["method"], s["layer"], s["target"]]
    assert s["shown"] == "yes" and s["signed"] == ("yes" if record["signed"] else "no")
    colors, limit = _expected_colors(record, shown["clip"])
    assert shown["size"] == record["map"]["size"]
    assert float(s["limit"]) == pytest.approx(limit, rel=1e-9)
    pixels = np.array(shown["pixels"]).reshape(*record["map"]["size"], 4)
    assert (pixels[..., 3] == 255).all()
    off = np.abs(pixels[..., :3] - colors).max(-1)
    assert (off > 0).mean() <= 0.01 and off.max() <= 12, f"{s}: the map's colors differ from the record's"
    n = shown["numbers"]
    assert n["target-class"] == record["target_label"]
    assert float(n["probability"]) == pytest.approx(record["target_probability"], abs=6e-4)
    assert float(n["deletion-auc"]) == pytest.approx(record["deletion"]["auc"], abs=6e-4)
    assert float(n["insertion-auc"]) == pytest.approx(record["insertion"]["auc"], abs=6e-4)
    assert int(n["forward"]) == record["forward_passes"] and int(n["backward"]) == record["backward_passes"]
    assert float(n["seconds"]) == pytest.approx(record["seconds"], rel=6e-3)
    assert float(n["cpu-seconds"]) == pytest.approx(record["explain_cpu_seconds"], rel=6e-3)
    p = shown["plot"]
    for name in ("deletion", "insertion"):
        points = np.array([[float(v) for v in pair.split(",")] for pair in shown[name].split()])
        assert np.allclose((points[:, 0] - p["left"]) / p["width"], record["fractions"], atol=1e-3)
        assert np.allclose(1 - (points[:, 1] - p["top"]) / p["height"], record[name]["curve"], atol=1e-3)
    return record


def test_explorer_controls_change_the_map_and_numbers_to_the_precomputed_values(browser):
    """Open the explorer offline, change each control in turn (selenium's Select fires the change
    events a reader's click does) and check after each change that the picture and the numbers
    changed and equal the committed result's record for the state the page says it shows."""
    if "book/explorer" not in toc_pages():
        pytest.skip("the explorer page is not in the table of contents")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, base = browser
    records = _explorer_records()
    driver.get(f"{base}/book/explorer.html")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "const r = document.getElementById('xai-explorer'); return r && r.dataset.ready === 'yes';"))
    shown = _explorer_shown(driver)
    assert set(shown["images"]) == {image for image, *_ in records}
    _check_explorer_shows(shown, records)  # the first method, image, layer and target
    Select(driver.find_element(By.ID, "explorer-method")).select_by_value("gradcam")
    shown = _explorer_shown(driver)
    before = _check_explorer_shows(shown, records)
    assert shown["state"]["layer"] == "features" and shown["state"]["target"] == "predicted"
    for control, value in EXPLORER_STEPS:
        choice = Select(driver.find_element(By.ID, control))
        choice.select_by_value(shown["images"][-1] if value == "last" else value)
        now = _explorer_shown(driver)
        record = _check_explorer_shows(now, records)
        assert record is not before, f"{control} = {value} did not change the record shown"
        assert now["pixels"] != shown["pixels"], f"{control} = {value} did not change the picture"
        assert now["numbers"] != shown["numbers"], f"{control} = {value} did not change the numbers"
        if control == "explorer-image":
            assert now["photo"] != shown["photo"] and now["photo"].startswith("data:image/jpeg;base64,")
        assert now["layer_disabled"] == (record["layer"] is None)
        shown, before = now, record
    assert before["signed"], "the last step shows a signed map (input x gradient)"
    assert _console_errors(driver) == []
