"""The Gradio demo (app.py), driven as a person would: a real server on 127.0.0.1 and headless Chromium.

Needs the ``demo`` extra (gradio), Playwright's Python package and a Chromium binary (Debian's ``chromium``;
``.ci/run`` installs it). The page serves a tiny untrained pipeline; ``DEMO_PIPELINE=outputs/digits/pipeline`` serves
a trained one instead and ``DEMO_SCREENSHOT=docs/images/demo.png`` keeps the screenshot taken after sampling:

    DEMO_PIPELINE=outputs/digits/pipeline DEMO_SCREENSHOT=docs/images/demo.png pytest tests/test_app.py -k browser
"""

import os
import shutil
import socket
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import REPO_ROOT

from hf_dualmcmc import (
    DualMCMCEncoderModel,
    DualMCMCEnergyModel,
    DualMCMCGeneratorModel,
    DualMCMCPipeline,
    configs_for_image_size,
)

gr = pytest.importorskip("gradio", reason="the demo needs the demo extra: pip install -e '.[demo]'")
sys.path.insert(0, str(REPO_ROOT))
import app  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if os.environ.get("DEMO_PIPELINE"):
        return app.load_demo(os.environ["DEMO_PIPELINE"], max_upload_mb=0.01)
    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=8)
    pipe = DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_inference_steps=6
    )
    folder = tmp_path_factory.mktemp("pipeline")
    pipe.save_pretrained(folder)
    (folder / "training_config.yaml").write_text("data: {source: 'sklearn:digits', split: train}\n")
    return app.load_demo(str(folder), max_upload_mb=0.01)


def test_callbacks(demo, tmp_path):
    images, strip, plot, status = demo.sample(3, 4, 6, progress=lambda *a, **k: None)
    assert len(images) == 4 and images[0].size == (96, 96)
    assert "after 6 Langevin steps" in status and "Strip columns: proposal, step 1, step 2, step 3, step 4" in status
    assert strip.size == (7 * 8 * 24, 4 * 8 * 24) and plot is not None  # 4 samples x (proposal + 6 snapshots)
    assert (
        "proposal, step 20, step 40, step 60, step 80, step 100, step 120, step 140."
        in demo.sample(0, 2, 140, progress=lambda *a, **k: None)[3]
    )
    assert demo.sample(0, 2, 0, progress=lambda *a, **k: None)[3] == "2 generator proposals (0 Langevin steps)."
    again = demo.sample(3, 4, 6, progress=lambda *a, **k: None)[0]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again))
    # the training data's energies (from the pipeline's training_config.yaml) give percentiles
    assert demo.reference == "sklearn:digits, split train" and len(demo.energies) == 1000
    good = tmp_path / "big.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(good)
    shown, recon, text = demo.score(str(good))
    assert shown is not None and recon is not None
    assert "**Energy** E(x) = " in text and "**Percentile**" in text and "of 1000 training images" in text
    assert "Resized from 20x30 to 8x8" in text and "Converted from RGB to L" in text
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert demo.score(str(bad)) == (None, None, demo.score(str(bad))[2])
    assert "`notes.png` is not an image file" in demo.score(str(bad))[2]
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * 20_000)
    assert "the limit is 0.01 MB" in demo.score(str(huge))[2]
    assert demo.score(None)[2] == "Upload an image first."
    assert demo.interpolate(0, 1, 5, 2).size == (5 * 96, 96)  # 5 points of 8 px, upscaled 12x


@pytest.mark.parametrize("method", ["short_run", "cooperative", "inference_only"])
def test_callbacks_on_baseline_pipelines_say_what_they_cannot_do(method, tmp_path):
    """Issue #22: every tab works or says in the page what a pipeline without a component cannot do (no traceback);
    the app writes nothing into the pipeline folder or next to it."""
    from bad_inputs_entry_points import save_baseline

    folder = save_baseline(method, tmp_path / "pipe")
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    demo = app.load_demo(str(folder))
    page = app.build_demo(demo)
    upload = tmp_path / "x.png"
    PIL.Image.new("L", (8, 8), 128).save(upload)
    images, _, _, status = demo.sample(0, 2, 0, progress=lambda *a, **k: None)
    assert len(images) == 2 and "0 Langevin steps" in status
    images, _, plot, status = demo.sample(0, 2, 2, progress=lambda *a, **k: None)
    shown, recon, text = demo.score(str(upload))
    assert shown is not None and (recon is not None) == (method == "inference_only")
    if method == "inference_only":  # no energy model
        assert images == [] and plot is None and "no energy model" in status and "set the steps to 0" in status
        assert "no energy model (an inference-only baseline): it cannot score images" in text
        with pytest.raises(gr.Error, match="no Langevin steps"):
            demo.interpolate(0, 1, 3, 2)
        assert demo.interpolate(0, 1, 3, 0).size == (3 * 96, 96)
    else:
        assert len(images) == 2 and plot is not None and "**Energy** E(x) = " in text
    if method == "short_run":  # no generator
        with pytest.raises(gr.Error, match="no generator .*no latents to interpolate"):
            demo.interpolate(0, 1, 3, 2)
    elif method == "cooperative":
        assert demo.interpolate(0, 1, 3, 2).size == (3 * 96, 96)
    assert page is not None
    upload.unlink()
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_page_in_a_browser(demo, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package (dev extra)")
    if CHROMIUM is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    port = _free_port()
    page_app = app.build_demo(demo, f"Dual-MCMC EBM: {os.environ.get('DEMO_PIPELINE', 'test')}").queue()
    page_app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size="1mb"
    )
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.get_by_role("button", name="Sample", exact=True).click()
            status = page.locator("#sample-status")
            status.get_by_text("Langevin steps").wait_for(timeout=120_000)
            assert "mean energy" in status.inner_text()
            assert page.locator("#samples img").count() == 16
            page.locator("#strip img").wait_for(timeout=60_000)
            shot = os.environ.get("DEMO_SCREENSHOT") or str(tmp_path / "demo.png")
            page.screenshot(path=shot, full_page=True)
            assert PIL.Image.open(shot).size[0] == 1280

            page.get_by_role("tab", name="Score an image").click()
            bad = tmp_path / "notes.png"
            bad.write_text("not an image")
            page.locator("input[type=file]").set_input_files(str(bad))
            page.locator("#score-status").get_by_text("is not an image file").wait_for(timeout=60_000)
            good = tmp_path / "photo.png"
            PIL.Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(good)
            page.locator("input[type=file]").set_input_files(str(good))
            page.locator("#score-status").get_by_text("Percentile").wait_for(timeout=60_000)
            text = page.locator("#score-status").inner_text()
            assert "Resized from 30x40 to 8x8" in text and "Traceback" not in page.content()
            browser.close()
    finally:
        page_app.close()


# ----------------------------------------------------------------------------------------------------------------
# The Space: space/ + app.py, started as a Space starts it (environment only, no flags) on a Hub-hosted pipeline
# ----------------------------------------------------------------------------------------------------------------


def _front_matter(path) -> dict:
    import yaml

    text = path.read_text()
    assert text.startswith("---\n"), f"{path} must start with Space front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_space_files_describe_a_gradio_space_that_installs_this_package():
    from hf_dualmcmc.hub import install_line

    meta = _front_matter(REPO_ROOT / "space" / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["license"] == "apache-2.0"
    assert meta["sdk_version"].split(".")[0] == gr.__version__.split(".")[0], (meta["sdk_version"], gr.__version__)
    requirements = (REPO_ROOT / "space" / "requirements.txt").read_text().split()
    assert install_line() == f'pip install "{" ".join(requirements)}"', (
        "space/requirements.txt: the card's install line"
    )


def test_space_starts_from_the_environment_on_a_hub_pipeline(online_hub, tmp_path):
    import subprocess
    import time

    from hub_server import hub_subprocess_env

    from hf_dualmcmc.hub import push_pipeline_to_hub

    torch.manual_seed(0)
    e, g, i = configs_for_image_size(8, 1, latent_dim=4, ngf=8, ndf=8, nif=8)
    folder = tmp_path / "pipeline"
    DualMCMCPipeline(
        DualMCMCEnergyModel(e), DualMCMCGeneratorModel(g), DualMCMCEncoderModel(i), num_inference_steps=6
    ).save_pretrained(folder)
    (folder / "training_config.yaml").write_text("data: {source: 'sklearn:digits', split: train}\n")
    push_pipeline_to_hub(folder, "org/space-ebm")
    space = tmp_path / "space-repo"  # what the Space repository holds: space/* and app.py
    space.mkdir()
    for name in ("README.md", "requirements.txt"):
        shutil.copyfile(REPO_ROOT / "space" / name, space / name)
    shutil.copyfile(REPO_ROOT / "app.py", space / "app.py")

    port, host = _free_port(), "127.0.0.2"  # not the default 127.0.0.1: the page must come from the environment
    env = hub_subprocess_env(online_hub, tmp_path)
    env.update(
        DUALMCMC_PIPELINE="org/space-ebm",
        GRADIO_SERVER_NAME=host,
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "space.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"the Space exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            with socket.socket() as probe:
                if probe.connect_ex((host, port)) == 0:
                    break
            assert time.monotonic() < deadline, f"the Space did not serve {host}:{port}:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package (dev extra)")
        if CHROMIUM is None:
            pytest.skip("the Space serves; no Chromium binary to drive it (apt-get install chromium)")
        flags = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://{host}:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.get_by_text("Dual-MCMC EBM: org/space-ebm").first.wait_for(timeout=60_000)  # the variable's pipeline
            page.get_by_role("button", name="Sample", exact=True).click()
            page.locator("#sample-status").get_by_text("Langevin steps").wait_for(timeout=120_000)
            assert page.locator("#samples img").count() == 16
            page.get_by_role("tab", name="Score an image").click()
            upload = tmp_path / "upload.png"
            PIL.Image.fromarray(np.full((8, 8), 128, np.uint8)).save(upload)
            page.locator("input[type=file]").set_input_files(str(upload))
            page.locator("#score-status").get_by_text("Percentile").wait_for(timeout=60_000)
            assert "of 1000 training images" in page.locator("#score-status").inner_text()  # training_config.yaml
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert online_hub.unhandled == []


def test_score_reads_16_bit_and_alpha_uploads_like_the_training_data(demo, tmp_path):
    from hf_dualmcmc.data import to_mode

    dark = tmp_path / "dark16.png"  # a 16-bit grey of 1/8 of the range: PIL's convert("L") would make it white
    PIL.Image.fromarray(np.full((8, 8), 8192, np.uint16)).save(dark)
    with PIL.Image.open(dark) as image:
        assert image.mode.startswith("I") and np.asarray(to_mode(image, "L")).max() == 32
    shown, _, text = demo.score(str(dark))
    assert "**Energy**" in text and np.asarray(shown).max() < 64, text
    clear = tmp_path / "clear.png"  # fully transparent: composited on white, as the training data is
    PIL.Image.new("LA", (8, 8), (0, 0)).save(clear)
    shown, _, text = demo.score(str(clear))
    assert "**Energy**" in text and np.asarray(shown).min() == 255
    lab = tmp_path / "lab.tif"
    PIL.Image.new("LAB", (8, 8)).save(lab)
    assert "cannot be used: LAB images are not supported" in demo.score(str(lab))[2]
