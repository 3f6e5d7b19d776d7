"""vidcolor studio end to end in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium):
open the page, click a point, pick a colour, see the preview change, reload and find the point again, render.

Skipped, with the reason, where no browser is installed (`apt-get install chromium chromium-driver`; .ci/run does).
The screenshot it takes is README's picture: VIDCOLOR_STUDIO_SCREENSHOT=docs/studio.png writes it there too.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media import read_video, still, write_image

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
except ImportError:
    selenium = None
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(selenium is None, reason="selenium is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="no headless browser: apt-get install chromium chromium-driver"),
]
SAMPLE = Path(__file__).parents[1] / "samples" / "motion-gray.mp4"
CLIP_FRAMES = 15
WAIT_S = 20
POINT = (300, 150)  # pixel of the 568x320 frame: the table in the sample clip
COLOUR = "#4a7ac8"  # a blue of the default palette


def first_frames(src: Path, dst: Path, count: int) -> Path:
    """The first frames of a real clip, re-encoded: a short video that still looks like film in the screenshot."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 568, 320, "yuv420p"
        for i, frame in enumerate(source.decode(video=0)):
            if i == count:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dst


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="vidcolor-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,860", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def preview_pixel(driver, x: int, y: int) -> list[int]:
    """RGB of the colorized preview at a pixel of the picture, as the page shows it."""
    return driver.execute_script("""
        const image = document.getElementById('colour');
        const canvas = document.createElement('canvas');
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0);
        return Array.from(context.getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3));
    """, x, y)


def click_picture(driver, x: int, y: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    gray = driver.find_element(By.ID, "gray")
    rect = gray.rect
    # Selenium's offsets are from the element's centre.
    dx = (x + 0.5) / 568 * rect["width"] - rect["width"] / 2
    dy = (y + 0.5) / 320 * rect["height"] - rect["height"] / 2
    ActionChains(driver).move_to_element_with_offset(gray, int(round(dx)), int(round(dy))).click().perform()


def drag_point(driver, frame_pixels: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    width = driver.find_element(By.ID, "gray").rect["width"]
    point = driver.find_element(By.CSS_SELECTOR, ".point")
    ActionChains(driver).drag_and_drop_by_offset(point, int(round(frame_pixels * width / 568)), 0).perform()


def saved_points(folder: Path) -> list[dict]:
    return json.loads((folder / "0.json").read_text())["points"]


def ready(driver) -> bool:
    return driver.execute_script("return document.body.dataset.ready === 'true' && "
                                 "document.getElementById('colour').dataset.version !== undefined")


def test_place_a_point_see_it_reload_and_render(browser, tmp_path, hinted_colorizer):
    from selenium.webdriver.common.by import By

    from vidcolor.guidance import list_keyframes
    from vidcolor.studio.project import Project
    from vidcolor.studio.server import Studio
    from test_studio import shows_colour  # one definition of "shows this colour"

    import numpy as np

    video = first_frames(SAMPLE, tmp_path / "film.mp4", CLIP_FRAMES)
    with Studio(Project.open(video), hinted_colorizer, size=64) as studio:
        browser.get(studio.url)
        wait_for(browser, ready, "the page and its first preview")
        assert "token" not in browser.current_url  # moved to the cookie
        assert browser.find_element(By.ID, "frameCount").text == str(CLIP_FRAMES - 1)

        # Click: a point with the network's colour there; then pick a colour from the palette.
        click_picture(browser, *POINT)
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".point")) == 1, "the new point")
        wait_for(browser, lambda d: "saved 1 point" in d.find_element(By.ID, "message").text, "the point saved")
        before = np.array(preview_pixel(browser, *POINT), np.uint8).reshape(1, 1, 3)
        assert not shows_colour(before, 0, 0, COLOUR)  # random weights: anything but that blue
        browser.find_element(By.CSS_SELECTOR, f'.swatch[data-color="{COLOUR}"]').click()

        def blue(driver):
            return shows_colour(np.array(preview_pixel(driver, *POINT), np.uint8).reshape(1, 1, 3), 0, 0, COLOUR)

        wait_for(browser, blue, f"the preview to show {COLOUR} at the point")
        folder = tmp_path / "film.mp4.vidcolor" / "keyframes"
        assert list(list_keyframes(folder)) == [0]

        # Drag it 40 frame pixels to the right and back: saved where it was dropped.
        drag_point(browser, 40)
        wait_for(browser, lambda d: abs(saved_points(folder)[0]["x"] - (POINT[0] + 40)) <= 2,
                 f"the moved point saved (saved: {saved_points(folder)})")
        drag_point(browser, -40)
        wait_for(browser, lambda d: abs(saved_points(folder)[0]["x"] - POINT[0]) <= 2, "the point moved back")

        # Reload: the point is still there, where it was, with its colour.
        browser.refresh()
        wait_for(browser, ready, "the page after a reload")
        points = browser.find_elements(By.CSS_SELECTOR, ".point")
        assert [p.get_attribute("data-color") for p in points] == [COLOUR]
        saved = saved_points(folder)[0]
        assert f"({saved['x']}, {saved['y']})" in points[0].get_attribute("title")
        assert abs(saved["x"] - POINT[0]) <= 2 and abs(saved["y"] - POINT[1]) <= 2
        assert "on" in browser.find_element(By.ID, "keyframeButton").get_attribute("class")

        screenshot = tmp_path / "studio.png"
        browser.find_element(By.CSS_SELECTOR, ".point").click()  # selected: the point editor shows
        time.sleep(0.3)
        assert browser.save_screenshot(str(screenshot))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("VIDCOLOR_STUDIO_SCREENSHOT"):
            shutil.copy(screenshot, os.environ["VIDCOLOR_STUDIO_SCREENSHOT"])

        # Render: progress, then the output's path in the page.
        browser.find_element(By.ID, "renderButton").click()
        wait_for(browser, lambda d: d.find_element(By.ID, "renderStatus").get_attribute("data-state")
                 in ("done", "failed", "cancelled"), "the render to end")
        status = browser.find_element(By.ID, "renderStatus")
        assert status.get_attribute("data-state") == "done", status.text
        output = tmp_path / "film.colour.mp4"
        assert str(output) in status.text
        assert len(read_video(output)["y"]) == CLIP_FRAMES

        # A colour image of the wrong shape for the keyframe: refused, and the page says why.
        square = write_image(tmp_path / "square.png", still(64, 64, colour=True))
        browser.execute_script("document.getElementById('keyframeImage').hidden = false")
        browser.find_element(By.ID, "keyframeImage").send_keys(str(square))
        message = browser.find_element(By.ID, "message")
        wait_for(browser, lambda d: "aspect ratio" in message.text, "the refusal in the page")
        assert message.get_attribute("class") == "error"
        assert list(list_keyframes(folder)) == [0] and (folder / "0.json").exists()
