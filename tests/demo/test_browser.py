"""A real browser (Playwright driving Debian's chromium) uses the fill-mask and classifier demos like a person
would."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfssl.demo.text import predict_masked

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TEXT = "Open the [MASK] and return a file object."
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (scripts/install-browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'hfssl[demo]' for playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _open(browser, url: str):
    """(context, page) on `url`; the page may only talk to the app: any other request (fonts, CDNs, telemetry) is
    refused."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url.rstrip("/"))
                  else route.abort())
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded")
    return context, page


@pytest.fixture
def page(browser, mlm_url):
    context, page = _open(browser, mlm_url)
    yield page
    context.close()


def test_fill_mask_in_a_real_browser(page, loaded_mlm, tmp_path):
    from playwright.sync_api import expect

    best = predict_masked(loaded_mlm.model, loaded_mlm.tokenizer, TEXT, top_k=5)[0][0]
    box = page.locator("#fill-mask-text textarea")
    expect(box).to_have_value("Return the [MASK] of the list.")  # pre-filled: one click gives a result
    box.fill(TEXT)
    page.locator("#fill-mask-button").click()
    expect(page.locator("#fill-mask-message")).to_contain_text("Top 5 for 1 mask(s)")
    expect(page.locator("#fill-mask-label")).to_contain_text(best.token)
    expect(page.locator("#fill-mask-table")).to_contain_text(best.text)
    screenshot = tmp_path / "fill-mask.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_one_click_on_an_example_gives_a_result(page):
    from playwright.sync_api import expect

    page.get_by_text("Raise an [MASK] if the value is not valid.").click()
    expect(page.locator("#fill-mask-text textarea")).to_have_value("Raise an [MASK] if the value is not valid.")
    expect(page.locator("#fill-mask-message")).to_contain_text("Top 5 for 1 mask(s)")
    expect(page.locator("#fill-mask-table")).to_contain_text("if the value is not valid.")


def test_input_limits_show_a_message_in_the_page(page, tmp_path):
    from playwright.sync_api import expect

    box = page.locator("#fill-mask-text textarea")
    box.fill("There is no mask token here.")
    page.locator("#fill-mask-button").click()
    expect(page.locator("#fill-mask-message")).to_contain_text("Write [MASK] where a word is missing")
    box.fill("x" * 201 + " [MASK]")
    page.locator("#fill-mask-button").click()
    expect(page.locator("#fill-mask-message")).to_contain_text("accepts at most 200")
    expect(page.get_by_text("accepts at most 200").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "fill-mask-limit.png"), full_page=True)


def test_a_finetuned_classifier_in_a_real_browser(browser, launch, tmp_path):
    from playwright.sync_api import expect

    from hfssl.demo import load_demo_model
    from hfssl.demo.classify import classify

    from ..cards import make_finetune_run

    loaded = load_demo_model(make_finetune_run(tmp_path, "finetune-text", "alice/tiny-mlm").path)
    context, page = _open(browser, launch(loaded))
    try:
        best = next(iter(classify(loaded, "A dull and tired film.").scores))
        page.locator("#classify-input textarea").fill("A dull and tired film.")
        page.locator("#classify-button").click()
        expect(page.locator("#classify-message")).to_contain_text(f"Top class {best}")
        expect(page.locator("#classify-label")).to_contain_text("negative")
        expect(page.locator("#classify-label")).to_contain_text("positive")
        page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
    finally:
        context.close()
