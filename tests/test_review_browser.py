"""The review page in a real headless browser (Debian's chromium driven by playwright):
sign in, see the groups and their thumbnails, decide, reload and see the decision kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ahashdb import HashStore
from tests.imagegen import encode, photo
from tests.test_service import Service, _upload, clean, service  # noqa: F401 - fixtures

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    if not Path(CHROMIUM).exists():
        if os.environ.get("AHASHDB_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing and AHASHDB_REQUIRE_BROWSER is set")
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _group_of_three(clean: Service, name: str) -> None:  # noqa: F811
    picture = photo(11, (320, 240))
    files = [(f"{name}-a.png", picture), (f"{name}-b.png", picture.resize((240, 180))),
             (f"{name}-c.jpg", picture)]
    with clean.client(clean.key1) as c:
        for k, (file, img) in enumerate(files):
            path = clean.media / file
            img.save(path)
            r = _upload(c, path.read_bytes(), file, meta_id=400 + k, source=str(path),
                        store="always")
            assert r.status_code == 200, r.text


def test_sign_in_see_groups_decide_and_the_decision_is_kept(
    clean: Service, store: HashStore, browser, tmp_path: Path,  # noqa: ANN001, F811
) -> None:
    _group_of_three(clean, "g")
    page = browser.new_page()
    page.on("dialog", lambda d: pytest.fail(f"the page said: {d.message}"))
    page.goto(f"{clean.base}/review")
    page.fill("input[name=key]", clean.key1)
    page.click("button[type=submit]")
    page.wait_for_selector(".group")
    assert page.locator(".group").count() == 1
    assert page.locator(".group figure").count() == 3
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    widths = page.eval_on_selector_all(".group img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths) and len(widths) == 3
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    if os.environ.get("AHASHDB_REVIEW_SCREENSHOT"):
        shutil.copy(tmp_path / "review.png", os.environ["AHASHDB_REVIEW_SCREENSHOT"])

    with page.expect_navigation():
        page.click("button[data-action=apart]")
    page.reload()
    assert page.locator(".group").count() == 0
    assert "No duplicate groups." in page.content()
    assert store.count(1) == 3  # nothing deleted; the three are now "not duplicates"

    # A second group: keep one, the others go.
    store.connection.execute("DELETE FROM ahash_decisions")
    page.reload()
    keep_id = int(page.locator(".group figure").nth(1).get_attribute("data-id"))
    with page.expect_navigation():
        page.locator(".group figure").nth(1).locator("button[data-action=keep]").click()
    page.reload()
    assert page.locator(".group").count() == 0
    assert [r[0] for r in store.connection.execute(
        "SELECT id FROM image_hashes WHERE company_id = 1")] == [keep_id]
    page.close()


def test_drop_an_image_and_see_its_matches(clean: Service, browser,  # noqa: ANN001, F811
                                           tmp_path: Path) -> None:
    _group_of_three(clean, "m")
    query = tmp_path / "query.jpg"
    query.write_bytes(encode(photo(11, (320, 240)).resize((160, 120)), "JPEG", quality=70))
    context = browser.new_context(
        extra_http_headers={"Authorization": f"Bearer {clean.key1}"})  # the header works too
    page = context.new_page()
    page.goto(f"{clean.base}/review/match")
    page.set_input_files("#pick", str(query))
    page.wait_for_selector("#matches figure")
    assert page.locator("#matches figure").count() == 3
    assert "3 match(es)" in page.inner_text("#matches")
    context.close()
