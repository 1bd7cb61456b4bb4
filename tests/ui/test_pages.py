"""Every page through Streamlit's AppTest, running the real app on a real data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures import product_photo

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
TIMEOUT = 180  # pages that train or generate run real pipelines


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page:
        at.switch_page(f"studio/ui/pages/{page}.py")
    return at.run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_home_explains_the_placeholder_model(fresh: Path) -> None:
    at = _app()
    _no_errors(at)
    assert at.title[0].value == "Brand Studio"
    assert any("placeholder model" in i.value for i in at.info)
    assert [m.label for m in at.metric] == ["Brand kits", "LoRAs", "Latest generation"]


def test_kits_page_creates_a_kit_with_uploaded_photos(fresh: Path) -> None:
    at = _app("kits")
    at.text_input[0].input("Acme <b>Bottle</b>")
    at.text_input[1].input("acm_bottle")
    at.text_input[2].input("bottle")
    for i in range(2):
        at.file_uploader[0].upload(f"p{i}.png", product_photo(i), "image/png")
    at.button[0].click().run()
    _no_errors(at)
    # The kit name is user text: shown escaped, so markdown/HTML in it stays inert.
    assert r"Created kit 'Acme \<b\>Bottle\</b\>' with 2 photos." in at.success[0].value
    grid = [t.value for t in at.text if t.value.startswith("p") and "\n" in t.value]
    assert grid == ["p0.png\n96x96\na photo of acm_bottle bottle", "p1.png\n96x96\na photo of acm_bottle bottle"]


def test_kits_page_refuses_a_bad_upload_and_stores_nothing(fresh: Path) -> None:
    at = _app("kits")
    at.text_input[0].input("Acme")
    at.text_input[1].input("acm_bottle")
    at.text_input[2].input("bottle")
    at.file_uploader[0].upload("x.png", b"\x89PNG but not really", "image/png")
    at.button[0].click().run()
    assert not at.exception
    assert r"not a valid image" in at.error[0].value and "nothing was stored" in at.error[0].value
    assert any("No brand kits yet" in i.value for i in at.info)


def test_train_page_queues_a_job_that_a_background_worker_trains(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import signal
    import time

    # one validation image per checkpoint keeps the worker's job short (samples are tested below)
    monkeypatch.setenv("BRAND_STUDIO_VALIDATION_IMAGES", "1")
    at = _app("train")
    _no_errors(at)
    at.number_input[0].set_value(5)
    at.button[0].click().run()
    _no_errors(at)
    assert "Started a background worker for training." in [c.value for c in at.caption]
    try:
        deadline = time.monotonic() + 300  # a guard against a hung worker, not a timing check
        while not at.success:  # the page polls the job row, as the fragment does every second
            assert time.monotonic() < deadline, "the worker did not finish the job"
            time.sleep(1.0)
            at.run()
            _no_errors(at)
        assert r"Trained LoRA 'acme\-bottle\-v2'" in at.success[0].value
        assert "step 5/5" in at.success[0].value
    finally:
        for alive in (trained / "workers").glob("*.json"):
            os.kill(json.loads(alive.read_text())["pid"], signal.SIGTERM)


def test_train_page_shows_checkpoint_samples_picks_one_and_offers_both_formats(trained: Path) -> None:
    at = _app("train")
    _no_errors(at)
    assert len(at.get("image")) >= 1  # the validation samples of each checkpoint
    assert [b.label for b in at.button if b.key and b.key.startswith("pick_")] == ["Use this checkpoint"] * 4
    downloads = [b.label for b in at.get("download_button")]
    assert downloads == ["Download (diffusers / PEFT)", "Download for A1111 / ComfyUI (kohya)"]
    next(b for b in at.button if b.key and b.key.endswith("_14")).click().run()
    _no_errors(at)
    assert r"Registered 'acme\-bottle\-v1\-step14' from step 14" in at.success[0].value
    assert any("from step 14" in t.value for t in at.text)
    next(b for b in at.button if b.key and b.key.startswith("plan_")).click().run()
    _no_errors(at)
    assert any("GB usable" in i.value for i in at.info)


def test_history_page_lists_and_rerenders(trained: Path) -> None:
    from studio.api import open_studio
    from studio.schemas import GenerateRequest
    from studio.settings import Settings

    studio = open_studio(Settings(data_dir=trained))
    studio.generate(GenerateRequest.of(prompt="history <script>alert(1)</script>", seed=3, num_inference_steps=4))
    studio.close()
    at = _app("history")
    _no_errors(at)
    assert "history <script>alert(1)</script>" in [t.value for t in at.text]
    [b for b in at.button if b.label == "Re-render"][0].click().run()
    _no_errors(at)
    assert "identical pixels" in at.success[0].value


def test_history_page_pages_with_next_previous_and_filters(fresh: Path) -> None:
    from studio.api import open_studio
    from studio.schemas import GenerateRequest
    from studio.settings import Settings

    studio = open_studio(Settings(data_dir=fresh))
    for i in range(6):
        studio.generate(GenerateRequest.of(prompt=f"prompt {i} a*b", seed=i, num_inference_steps=2, width=64, height=64))
    studio.close()
    at = _app("history")
    _no_errors(at)

    def shown() -> list[str]:
        return [t.value for t in at.text if t.value.startswith("prompt ")]

    def page_caption() -> str:
        return next(c.value for c in at.caption if c.value.startswith("Page "))

    def button(label: str):  # noqa: ANN202
        return next(b for b in at.button if b.label == label)

    assert len(shown()) == 6 and button("Next").disabled and button("Previous").disabled
    next(s for s in at.selectbox if s.label == "Per page").set_value(5).run()
    assert shown() == [f"prompt {i} a*b" for i in (5, 4, 3, 2, 1)] and page_caption().startswith("Page 1 · 6 generations")
    button("Next").click().run()
    _no_errors(at)
    assert shown() == ["prompt 0 a*b"] and page_caption().startswith("Page 2") and button("Next").disabled
    button("Previous").click().run()
    assert shown()[0] == "prompt 5 a*b" and page_caption().startswith("Page 1")
    next(t for t in at.text_input if t.label == "Prompt contains").input("PROMPT 3 a*b").run()
    _no_errors(at)
    assert shown() == ["prompt 3 a*b"]
    assert r"contains “PROMPT 3 a\*b”" in page_caption()  # user text shown inert
    next(s for s in at.selectbox if s.label == "Mode").set_value("img2img").run()
    assert shown() == [] and "No generations match these filters." in [i.value for i in at.info]
