"""The marketer's whole journey in a real browser on ``make run``'s default model (the built-in demo
model), one screenshot per step (the README's tour uses them):
brand kit + photos -> one-click training watched to the end -> seed-locked generation with the LoRA,
re-rendered to identical pixels -> a campaign with a master and two copy cells -> review and approval
-> an export pack downloaded, unzipped and checked against its manifest.

Any exception or error shown in the page, any browser console error or uncaught page error, and any
request to a host other than the local server (the studio makes no outside calls) fails the test.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from benchmarks.demo_model import CLASS_NOUN, KIT_PROMPT, TRIGGER, kit_photo
from studio.formats import AD_FORMATS
from tests.e2e.conftest import VIEWPORT, AppServer, BrowserProblems

KIT, NOUN = "Tealpink Bottle", CLASS_NOUN
PHOTOS = 8
SIZE = 64  # the demo model's size
STEPS = 20
COPY_VALUES = ("Iced", "Fresh")
CHANNELS = ("meta_feed_square", "google_banner_300x250")
TRAIN_TIMEOUT_S = 300.0
RUN_START_S = 5.0
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
#: Counts the app's script runs (Streamlit flags the run state on its root element), so an action can
#: wait for the run it caused rather than guess with a sleep.
RUN_COUNTER = """
window.__stRuns = 0;
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.getAttribute("data-test-script-state") === "running") window.__stRuns += 1;
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
"""


class App:
    """Drives the Streamlit app like a user: sidebar navigation, widgets found by label or by the
    ``st-key-<key>`` class Streamlit gives keyed widgets; waits by polling the app's run state."""

    def __init__(self, page: Any, problems: BrowserProblems, shots: Path, server: AppServer) -> None:
        self.page, self.problems, self.shots, self.server = page, problems, shots, server
        self.count, self.started = 0, time.monotonic()
        page.add_init_script(RUN_COUNTER)
        (shots / "steps.txt").write_text("seconds into the journey when each screenshot was taken\n")

    # -- waiting and checking
    def rerun(self, action: Callable[[], object], timeout_s: float = 120.0) -> None:
        """Do ``action`` (a click, a committed field), wait for the script run it causes to start
        (a very fast run may slip past the observer: then after a few seconds at most), then to end."""
        before = self.page.evaluate("() => window.__stRuns")
        action()
        deadline = time.monotonic() + RUN_START_S
        while self.page.evaluate("() => window.__stRuns") == before and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        self.wait_idle(timeout_s)

    def wait_idle(self, timeout_s: float = 120.0, quiet_s: float = 0.3) -> None:
        """Until the script has been idle (``notRunning``, connected) for ``quiet_s`` in a row."""
        app = self.page.locator('[data-testid="stApp"]')
        deadline, quiet_since = time.monotonic() + timeout_s, None
        while True:
            idle = (app.get_attribute("data-test-script-state") == "notRunning"
                    and app.get_attribute("data-test-connection-state") == "CONNECTED")  # fmt: skip
            now = time.monotonic()
            quiet_since = (quiet_since or now) if idle else None
            if quiet_since is not None and now - quiet_since >= quiet_s:
                break
            if now > deadline:
                self.fail(f"the app was still busy after {timeout_s:.0f} s")
            self.page.wait_for_timeout(100)
        self.check()

    def check(self) -> None:
        """No exception or st.error in the page, no console error in the browser."""
        shown = self.page.locator(ERRORS)
        if shown.count():
            self.fail("the page shows an error: " + " | ".join(t.strip() for t in shown.all_inner_texts()))
        if self.problems.messages:
            self.fail("the browser reported: " + " | ".join(self.problems.messages))

    def fail(self, message: str) -> None:
        from playwright.sync_api import Error as PlaywrightError

        try:
            self.shot("failure")
        except PlaywrightError as exc:  # a crashed page: the message matters more than the picture
            message += f"\n(no failure screenshot: {exc})"
        pytest.fail(f"{message}\n(screenshots in {self.shots})\nserver log:\n{self.server.log_tail(2000)}",
                    pytrace=False)  # fmt: skip

    def shot(self, name: str) -> None:
        """Save the whole page: Streamlit scrolls inside its main pane, so grow the window to fit it first."""
        self.count += 1
        tall = self.page.evaluate(
            "() => Math.max(0, ...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
            ".map(e => e.scrollHeight))"
        )  # fmt: skip
        self.page.set_viewport_size({"width": VIEWPORT[0], "height": max(VIEWPORT[1], min(int(tall), 8000))})
        self.page.screenshot(path=self.shots / f"{self.count:02d}-{name}.png", full_page=True)
        self.page.set_viewport_size({"width": VIEWPORT[0], "height": VIEWPORT[1]})
        with (self.shots / "steps.txt").open("a") as log:  # when each step was reached, for slow-CI triage
            log.write(f"{time.monotonic() - self.started:7.1f} s  {self.count:02d}-{name}\n")

    def see(self, locator: Any, timeout_s: float = 60.0) -> Any:
        """Wait until ``locator`` is visible, failing early if an error shows up meanwhile."""
        deadline = time.monotonic() + timeout_s
        while not locator.first.is_visible():
            self.check()
            if time.monotonic() > deadline:
                self.fail(f"not shown within {timeout_s:.0f} s: {locator}")
            self.page.wait_for_timeout(250)
        return locator.first

    # -- navigation and widgets
    def open(self, link: str, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click()
        self.see(self.page.get_by_role("heading", name=title))
        self.wait_idle()

    def keyed(self, key: str) -> Any:
        return self.page.locator(f".st-key-{key}")

    def text(self, text: str) -> Any:
        return self.page.get_by_text(text, exact=False)

    def fill(self, field: Any, value: object) -> None:
        """Type into a text/number input or text area and commit it (blur), then wait for the rerun
        (a field that already holds the value causes none)."""
        if field.input_value() == str(value):
            return
        field.fill(str(value))
        self.rerun(field.blur)

    def choose(self, container: Any, option: str | re.Pattern[str]) -> None:
        """Pick ``option`` in a selectbox or multiselect (``container``: its st-key element)."""
        container.get_by_role("combobox").click()
        self.rerun(self.page.locator('[role="option"]', has_text=option).first.click)
        if self.page.locator('[role="option"]').count():  # a multiselect stays open after a pick
            self.page.locator("h1").first.click()
            self.wait_idle()

    def button(self, name: str, timeout_s: float = 120.0) -> None:
        """Press the first button called ``name`` and wait for the run it causes."""
        self.rerun(self.page.get_by_role("button", name=name, exact=True).first.click, timeout_s)

    def upload(self, key: str, files: list[tuple[str, bytes]], *, in_form: bool = False) -> None:
        """Give the uploader's hidden file input these PNGs and wait until all are uploaded (outside a
        form, also for the run that follows)."""
        box = self.keyed(key)

        def send() -> None:
            box.locator('input[type="file"]').set_input_files(
                [{"name": name, "mimeType": "image/png", "buffer": data} for name, data in files])  # fmt: skip
            deadline = time.monotonic() + 60
            while (box.locator('[data-testid="stFileChip"]').count() < len(files)
                   or box.locator('[data-testid="stFileChipIconSpinner"]').count()):  # fmt: skip
                if time.monotonic() > deadline:
                    self.fail(f"the {len(files)} files did not finish uploading to {key}")
                self.page.wait_for_timeout(200)

        if in_form:
            send()
        else:
            self.rerun(send)


def product_mask(size: int) -> bytes:
    """White where the product is (the middle of the frame), black elsewhere."""
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=255)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_marketer_journey(studio_app: AppServer, browser_page: tuple[Any, BrowserProblems], e2e_artifacts: Path) -> None:
    page, problems = browser_page
    page.set_default_timeout(60_000)
    app = App(page, problems, e2e_artifacts, studio_app)
    page.goto(studio_app.url)
    app.see(page.get_by_role("heading", name="Brand Studio"), timeout_s=120)
    app.wait_idle()
    app.shot("home")

    # 1. Brand kit: name, trigger, class noun and four product photos.
    app.open("Brand kits", "Brand kits")
    page.get_by_label("Kit name", exact=True).fill(KIT)
    page.get_by_label("Trigger token", exact=True).fill(TRIGGER)
    page.get_by_label("Class noun", exact=True).fill(NOUN)
    app.upload("new_kit_photos", [(f"photo_{i}.png", kit_photo(i)) for i in range(PHOTOS)], in_form=True)
    app.shot("kit-form")
    app.button("Create kit")
    app.see(app.text(f"Created kit '{KIT}' with {PHOTOS} photos."))
    app.shot("kit-created")

    # 2. Train: one click with the preset for the demo model (shown in the Settings expander), watched to the end.
    app.open("Train", "Train a brand LoRA")
    page.get_by_text("Settings (preset:").click()
    app.shot("train-settings")
    app.button("Train LoRA")
    app.see(page.locator('[data-testid="stProgress"]').or_(app.text("Trained LoRA '")), timeout_s=60)
    app.shot("train-progress")
    app.see(app.text("Trained LoRA '"), timeout_s=TRAIN_TIMEOUT_S)
    app.shot("train-succeeded")

    # 3. Generate with the kit and its LoRA at seed 42; re-render the recipe to identical pixels.
    app.open("Generate", "Generate")
    app.choose(app.keyed("g_kit"), KIT)
    app.choose(app.keyed("g_loras"), re.compile("tealpink", re.IGNORECASE))
    app.fill(app.keyed("g_prompt").locator("textarea"), KIT_PROMPT)
    for key, value in (("g_seed", 42), ("g_steps", STEPS), ("g_width", SIZE), ("g_height", SIZE)):
        app.fill(app.keyed(key).locator("input"), value)
    app.shot("generate-form")
    app.button("Generate", timeout_s=300)
    app.see(page.locator('[data-testid="stText"]', has_text="Final prompt:"))
    app.see(page.locator('[data-testid="stImage"] img'))
    final_prompt = page.locator('[data-testid="stText"]', has_text="Final prompt:").first.inner_text()
    assert TRIGGER in final_prompt, final_prompt
    app.shot("generated")
    app.button("Re-render this recipe", timeout_s=300)
    app.see(app.text("identical pixels."))
    app.shot("rerendered")

    # 4. A/B variants: a campaign, the generation as master with a product mask, two copy cells.
    app.open("A/B variants", "A/B variants")
    app.fill(app.keyed("ab_name").locator("input"), "Spring launch")
    app.button("Create campaign")
    app.see(app.keyed("ab_gen"))
    app.upload("ab_mask", [("mask.png", product_mask(SIZE))])
    app.fill(app.keyed("ab_headline").locator("input"), "Cold")
    app.fill(app.keyed("ab_cta").locator("input"), "Buy")
    app.shot("ab-master")
    app.button("Add master")
    app.see(app.keyed("ab_factor"))
    app.choose(app.keyed("ab_factor"), "Copy (headline")
    app.fill(app.keyed("ab_values").locator("textarea"), "\n".join(COPY_VALUES))
    app.button("Make cells", timeout_s=300)
    made = app.see(app.text("Made 2 cell(s):"))
    copy_cells = made.inner_text().split(":", 1)[1].strip().split(", ")
    app.shot("ab-cells")

    # 5. Review: send every cell to review, then approve it (with an override where checks failed).
    app.open("Review", "Review")
    app.fill(app.keyed("rv_reviewer").locator("input"), "Dana")
    for label in ("Send to review", "Approve"):
        if label == "Approve":  # cells whose checks failed need a recorded reason
            for field in page.locator('[class*="st-key-rv_override_"] input').all():
                app.fill(field, "copy test: checks judged acceptable by the reviewer")
        for _ in range(10):  # one click per cell; each moves its cell on, so its button goes away
            if not (buttons := page.get_by_role("button", name=label, exact=True)).count():
                break
            app.rerun(buttons.first.click)
        assert not page.get_by_role("button", name=label, exact=True).count(), f"a cell still offers {label!r}"
        app.shot(f"review-{label.lower().replace(' ', '-')}")
    approved = page.locator('[data-testid="stCaptionContainer"]', has_text="status: approved")
    assert approved.count() == 3, "the control cell and both copy cells should be approved"

    # 6. Export: two channel sizes, build the pack, download it and check its manifest.
    app.open("Export", "Export")
    app.choose(app.keyed("ex_channels"), "300x250")
    app.button("Build export pack", timeout_s=300)
    app.see(app.text("files from 3 cells"))
    app.shot("export-built")
    with page.expect_download(timeout=60_000) as download_info:
        app.button("Download the zip")
    download = download_info.value
    pack = e2e_artifacts / download.suggested_filename
    download.save_as(pack)
    app.shot("export-downloaded")
    check_pack(pack.read_bytes(), copy_cells)
    check_records(studio_app.data_dir, pack.read_bytes())
    app.check()


def check_pack(data: bytes, copy_cells: list[str]) -> None:
    """Every cell in every chosen channel, at that channel's size, each file matching its sha256."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["manifest.json"])
    rows = manifest["rows"]
    csv_rows = list(csv.DictReader(io.StringIO(files["manifest.csv"].decode("utf-8-sig"))))
    assert [(r["cell_id"], r["file"], r["sha256"]) for r in csv_rows] == [(r["cell_id"], r["file"], r["sha256"])
                                                                          for r in rows]  # fmt: skip
    cells = {r["cell_id"] for r in rows}
    assert len(cells) == 3 and set(copy_cells) < cells, (cells, copy_cells)
    assert manifest["campaign"]["control_cell_id"] in cells - set(copy_cells)
    assert sorted(r["value"] for r in rows if r["factor"] == "copy") == sorted(COPY_VALUES * len(CHANNELS))
    assert {(r["cell_id"], r["format_key"]) for r in rows} == {(c, f) for c in cells for f in CHANNELS}
    assert set(files) == {r["file"] for r in rows} | {"manifest.csv", "manifest.json"}
    for row in rows:
        image = files[row["file"]]
        assert hashlib.sha256(image).hexdigest() == row["sha256"], row["file"]
        fmt = AD_FORMATS[row["format_key"]]
        assert (int(row["width"]), int(row["height"])) == (fmt.width, fmt.height), row
        with Image.open(io.BytesIO(image)) as img:
            assert img.size == (fmt.width, fmt.height), row["file"]
        assert row["review_status"] == "approved", row


def check_records(data_dir: Path, pack: bytes) -> None:
    """What the browser did is what the studio recorded: the LoRA in the recipe, a re-render of it,
    approved cells, and the downloaded zip byte for byte the stored export."""
    from studio.api import open_studio
    from studio.settings import Settings

    studio = open_studio(Settings(data_dir=data_dir, base_model="builtin:demo"))
    try:
        first, again = sorted(studio.list_generations(limit=10), key=lambda g: g.id)[:2]
        assert (first.seed, first.width, first.height, first.num_inference_steps) == (42, SIZE, SIZE, STEPS)
        assert [x.name for x in first.loras] == [x.name for x in studio.list_loras(first.kit_id)], first.loras
        assert again.parent_id == first.id
        assert [i.pixel_sha256 for i in again.images] == [i.pixel_sha256 for i in first.images]
        (campaign,) = studio.list_campaigns()
        assert {v.status for v in studio.list_variants(campaign.id)} == {"approved"}
        _, stored = studio.export_file(1)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(pack).digest()
    finally:
        studio.close()
