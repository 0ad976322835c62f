"""Open every chapter in a real browser (Debian's chromium + chromedriver through selenium) with
every host but the local server unreachable (as offline): every image loads, every formula
renders (MathJax is served from the book), the console has no errors, search finds "Grad-CAM";
screenshots are saved under _build/screenshots/."""
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

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
