"""The web app driven like a person would, in headless Chromium: upload, type, run, look, download.

Screenshots of each tab go to a temporary folder, or to docs/screenshots/ with BLIPDIFF_UPDATE_SCREENSHOTS=1
(the README shows those; the app then serves the trained toy model). The subject is a toy-world reference and the
words are the toy world's. Skipped, saying why, only where no Chromium/chromedriver can be found.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from tests.helpers import REPO_ROOT

from .browser import find_browser, start_driver

BROWSER, DRIVER, WHY_NOT = find_browser()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY_NOT), reason=f"browser tests need headless Chromium: {WHY_NOT}")]

TIMEOUT = 60  # seconds to wait for one result; a generation on the tiny model takes about one
UPDATING_SCREENSHOTS = os.environ.get("BLIPDIFF_UPDATE_SCREENSHOTS") == "1"
STEPS = 25 if UPDATING_SCREENSHOTS else 3  # the screenshots show the trained model's images at its usual step count


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    session = start_driver(BROWSER, DRIVER, str(downloads))
    session.downloads = downloads
    yield session
    session.quit()


@pytest.fixture(scope="module")
def page(browser, running_app):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(running_app.url)
    WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_elements("css selector", "#gen-run"))
    return browser


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory):
    if UPDATING_SCREENSHOTS:
        folder = REPO_ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


# ----------------------------------------------------------------------------------- helpers
def find(page, css):
    return page.find_element("css selector", css)


def shown(element) -> bool:
    """Whether ``element`` is on screen; one that the page removed meanwhile (a toast closing itself) is not."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return element.is_displayed()
    except StaleElementReferenceException:
        return False


def wait_for(page, condition, timeout=TIMEOUT):
    """``condition(page)`` once truthy; on timeout the page's screenshot path is in the error."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(page, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        shot = Path(page.downloads).parent / "timeout.png"
        page.save_screenshot(str(shot))
        toasts = [" ".join(toast.text.split()) for toast in page.find_elements("css selector", "[data-testid=toast-body]") if shown(toast)]
        raise TimeoutException(f"waited {timeout} s; the page then: {shot}; its messages: {toasts}") from None


def type_into(page, css, text, *, clear=True):
    from selenium.webdriver.common.keys import Keys

    element = find(page, css)
    if clear:
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
    element.send_keys(text)
    if element.tag_name == "input":
        element.send_keys(Keys.TAB)  # sliders and numbers commit on blur


def upload(page, container, *paths):
    find(page, f"{container} input[type=file]").send_keys("\n".join(str(p) for p in paths))
    name = Path(paths[-1]).name
    # a file list shows the name (split over lines), an image input shows the picture
    wait_for(page, lambda b: name in find(b, container).text.replace("\n", "") or find(b, container).find_elements("css selector", "img"))


def open_tab(page, title):
    tab = next(b for b in page.find_elements("css selector", "button[role=tab]") if b.text.strip() == title)
    tab.click()
    wait_for(page, lambda b: tab.get_attribute("aria-selected") == "true")


def open_settings(page, container):
    """Open the closed "Settings" accordion of a tab (its label is a button-like div)."""
    for element in page.find_elements("xpath", "//*[normalize-space(text())='Settings']"):
        if element.is_displayed():
            element.click()
            break
    wait_for(page, lambda b: find(b, container).is_displayed())


def page_message(page, text):
    """The visible element holding ``text`` (an error toast, a status line), or None."""
    for element in page.find_elements("xpath", f"//*[contains(text(), {json.dumps(text)})]"):
        if shown(element):
            return element
    return None


def save_screenshot(page, folder: Path, name: str) -> Path:
    """The page as a PNG under 200 KB (256-colour palette), written atomically."""
    from blipdiff_plugins.utils.atomic import write_png

    raw = folder / f".{name}-raw.png"
    page.execute_script("window.scrollTo(0, 0)")
    page.save_screenshot(str(raw))
    image = PIL.Image.open(raw).convert("RGB").quantize(colors=256, method=PIL.Image.Quantize.MEDIANCUT)
    raw.unlink()
    path = folder / f"{name}.png"
    write_png(path, image)
    assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size} bytes"
    return path


def natural_widths(page, css):
    return [page.execute_script("return arguments[0].naturalWidth", image) for image in page.find_elements("css selector", css)]


def shown_sizes(page, css):
    """(natural width, width on the page, image-rendering) of each image in ``css``."""
    return [tuple(page.execute_script("const i = arguments[0]; return [i.naturalWidth, i.getBoundingClientRect().width, "
                                      "getComputedStyle(i).imageRendering]", image))
            for image in page.find_elements("css selector", css)]


def overflow(page, css):
    """What of the element ``css`` does not show whole: images reaching outside it, and inner scrollbars."""
    return page.execute_script(
        """const panel = document.querySelector(arguments[0]), box = panel.getBoundingClientRect();
        const outside = [...panel.querySelectorAll('img')].map(i => i.getBoundingClientRect())
            .filter(r => r.top < box.top || r.bottom > box.bottom || r.left < box.left || r.right > box.right)
            .map(r => [r.left, r.top, r.right, r.bottom]);
        const scrolled = [panel, ...panel.querySelectorAll('*')]
            .filter(e => e.scrollHeight > e.clientHeight + 1 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))
            .map(e => e.className);
        return {outside: outside, scrolled: scrolled};""",
        css,
    )


# ----------------------------------------------------------------------------------- tests
def test_generate_gallery_and_sidecar_download(page, running_app, subject_png, screenshot_dir):
    upload(page, "#gen-images", subject_png)
    type_into(page, "#gen-subject textarea", "crescent")
    type_into(page, "#gen-prompts textarea", "on grass at the left, large")
    open_settings(page, "#gen-steps")
    type_into(page, "#gen-steps input[type=number]", str(STEPS))
    type_into(page, "#gen-seed input", "5")
    find(page, "#gen-run").click()

    # one small result is shown whole at a useful size with sharp pixels (the page's CSS), without an inner scrollbar;
    # the image served is the result itself, at its generated size
    wait_for(page, lambda b: len(b.find_elements("css selector", "#gen-gallery img")) == 1)
    side = running_app.service.default_size
    wait_for(page, lambda b: natural_widths(b, "#gen-gallery img") == [side])
    wait_for(page, lambda b: find(b, "#gen-gallery img").size["width"] >= 200)
    assert shown_sizes(page, "#gen-gallery img")[0][2] == "pixelated"
    assert overflow(page, "#gen-gallery") == {"outside": [], "scrolled": []}
    # the gallery's own download button gives that image, as generated (the file list's PNG, pixel for pixel)
    find(page, "#gen-gallery .thumbnail-item").click()
    before = set(page.downloads.iterdir())
    wait_for(page, lambda b: find(b, "#gen-gallery button[aria-label=Download]")).click()
    fetched = wait_for(page, lambda b: [p for p in set(page.downloads.iterdir()) - before if p.suffix == ".png" and p.stat().st_size] or None)[0]
    generated = downloaded(page, "#gen-files", ".png")
    assert PIL.Image.open(fetched).size == (side, side)
    assert np.array_equal(np.asarray(PIL.Image.open(fetched).convert("RGB")), np.asarray(PIL.Image.open(generated).convert("RGB")))
    find(page, "#gen-gallery button[aria-label=Close]").click()

    # two prompts: two images side by side, each whole
    type_into(page, "#gen-prompts textarea", "on grass at the left, large\non sand at the right, small")
    find(page, "#gen-run").click()
    wait_for(page, lambda b: len(b.find_elements("css selector", "#gen-gallery img")) == 2)
    assert overflow(page, "#gen-gallery") == {"outside": [], "scrolled": []}
    links = wait_for(page, lambda b: [a for a in b.find_elements("css selector", "#gen-files a") if a.get_attribute("download")] or None)
    wait_for(page, lambda b: len([a for a in b.find_elements("css selector", "#gen-files a") if a.get_attribute("download")]) == 4)
    links = {a.get_attribute("download"): a for a in page.find_elements("css selector", "#gen-files a") if a.get_attribute("download")}
    assert sorted(links) == [
        "000-on-grass-at-the-left-large.json", "000-on-grass-at-the-left-large.png", "001-on-sand-at-the-right-small.json",
        "001-on-sand-at-the-right-small.png",
    ]
    assert "2 image(s) from the subject images." in find(page, "#gen-status").text

    links["001-on-sand-at-the-right-small.json"].click()  # the sidecar download, as a person would
    sidecar_file = page.downloads / "001-on-sand-at-the-right-small.json"
    wait_for(page, lambda b: sidecar_file.exists() and sidecar_file.stat().st_size > 0)
    sidecar = json.loads(sidecar_file.read_text())
    assert sidecar["prompt"] == "on sand at the right, small"
    assert sidecar["seed"] == 6  # image i uses seed + i
    assert sidecar["settings"]["steps"] == STEPS and sidecar["settings"]["subject"] == "crescent"
    assert sidecar["image"] == "001-on-sand-at-the-right-small.png"

    save_screenshot(page, screenshot_dir, "generate")


def test_bad_input_shows_a_message_and_the_app_keeps_serving(page, subject_png, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    fresh_page(page)  # whatever test ran before on this worker, the image is the only bad input
    upload(page, "#gen-images", broken)
    type_into(page, "#gen-subject textarea", "crescent")
    type_into(page, "#gen-prompts textarea", "on grass at the left, large")
    find(page, "#gen-run").click()
    message = wait_for(page, lambda b: page_message(b, "is not a readable image"))
    assert "broken.png" in message.text and "PNG, JPEG or WebP" in message.text
    source = page.page_source
    assert "Traceback" not in source and 'File "' not in source

    type_into(page, "#gen-subject textarea", "")
    find(page, "#gen-run").click()
    assert wait_for(page, lambda b: page_message(b, "Subject word is empty"))

    # a word the model does not know: the images come, with a warning naming the field (as the CLI warns naming --subject)
    page.refresh()
    wait_for(page, lambda b: b.find_elements("css selector", "#gen-run"))
    upload(page, "#gen-images", subject_png)
    type_into(page, "#gen-subject textarea", "xyzzy")
    type_into(page, "#gen-prompts textarea", "on grass at the left, large")
    find(page, "#gen-run").click()
    wait_for(page, lambda b: "1 image(s)" in find(b, "#gen-status").text)
    status = " ".join(find(page, "#gen-status").text.replace("`", "").split())  # Markdown: the label shows as code, on its own line
    assert "Subject word 'xyzzy': the model does not know the word 'xyzzy'" in status
    assert wait_for(page, lambda b: page_message(b, "does not know the word 'xyzzy'"))  # the warning toast

    # the app still serves: the bundled example subject (toy-world references, the model's world) generates
    assert find(page, "#gen-prompts textarea").get_attribute("placeholder") == "on grass at the left, large"
    example = find(page, "#gen-example input")
    example.click()
    wait_for(page, lambda b: page_message(b, "tiger crescent (held out)")).click()
    find(page, "#gen-use-example").click()
    wait_for(page, lambda b: find(b, "#gen-subject textarea").get_attribute("value") == "crescent")
    type_into(page, "#gen-prompts textarea", "on sand at the right, large")
    find(page, "#gen-run").click()
    wait_for(page, lambda b: "1 image(s)" in find(b, "#gen-status").text)
    page.refresh()  # a fresh page (no error toasts) for the next tests
    wait_for(page, lambda b: b.find_elements("css selector", "#gen-run"))


def test_finetune_shows_live_progress_and_the_model_reaches_generate(page, running_app, subject_png, screenshot_dir):
    open_tab(page, "Fine-tune")
    upload(page, "#ft-images", subject_png)
    type_into(page, "#ft-subject textarea", "crescent")
    type_into(page, "#ft-steps input", "2")
    type_into(page, "#ft-name textarea", "rex")
    # record every text the progress line shows, however briefly
    page.execute_script(
        "window.progressTexts = [];"
        "new MutationObserver(() => window.progressTexts.push(document.querySelector('#ft-progress').innerText))"
        ".observe(document.querySelector('#ft-progress'), {subtree: true, childList: true, characterData: true});"
    )
    find(page, "#ft-run").click()
    wait_for(page, lambda b: "Done:" in find(b, "#ft-progress").text)
    final = find(page, "#ft-progress").text
    match = re.search(r"Step 2/2 · loss ([0-9.]+)", final)
    assert match and math.isfinite(float(match.group(1))), final
    assert "rex" in final
    texts = [t for t in page.execute_script("return window.progressTexts") if t.strip()]
    assert any(re.search(r"Starting: 0/2|Step 1/2", t) for t in texts), texts  # shown live, before the end
    assert (running_app.service.subjects_dir / "rex" / "subject_config.json").exists() or any((running_app.service.subjects_dir / "rex").iterdir())
    save_screenshot(page, screenshot_dir, "finetune")

    open_tab(page, "Generate")
    dropdown = find(page, "#gen-subject-model input")
    dropdown.click()
    wait_for(page, lambda b: page_message(b, "rex")).click()
    type_into(page, "#gen-prompts textarea", "on sky at the top, small")
    find(page, "#gen-run").click()
    wait_for(page, lambda b: "1 image(s) from the subject model rex." in find(b, "#gen-status").text)


def assert_results_shown_large(page, side, *containers):
    """Each result is served at the model's size ``side`` and shown at least twice as wide, with sharp pixels."""
    for container in containers:
        (natural, width, rendering), = shown_sizes(page, f"{container} img")
        assert (natural, rendering) == (side, "pixelated") and width >= 2 * natural, (container, natural, width, rendering)


def test_edit_style_and_attention_tabs(page, running_app, subject_png, screenshot_dir):
    side = running_app.service.default_size
    open_tab(page, "Edit")
    upload(page, "#edit-images", subject_png)
    type_into(page, "#edit-target textarea", "crescent")
    type_into(page, "#edit-source textarea", "star")
    type_into(page, "#edit-prompt textarea", "on grass at the left, large")
    open_settings(page, "#edit-steps")
    type_into(page, "#edit-steps input[type=number]", str(STEPS))
    find(page, "#edit-run").click()
    wait_for(page, lambda b: all(natural_widths(b, f"{c} img") for c in ("#edit-source-image", "#edit-edited", "#edit-mask")))
    assert_results_shown_large(page, side, "#edit-source-image", "#edit-edited", "#edit-mask")
    save_screenshot(page, screenshot_dir, "edit")

    open_tab(page, "Style / structure")
    upload(page, "#style-structure", subject_png)
    upload(page, "#style-images", subject_png)
    type_into(page, "#style-subject textarea", "crescent")
    type_into(page, "#style-target textarea", "star")
    type_into(page, "#style-steps input[type=number]", str(STEPS))
    find(page, "#style-run").click()
    wait_for(page, lambda b: all(natural_widths(b, f"{c} img") for c in ("#style-control", "#style-result")))
    assert_results_shown_large(page, side, "#style-control", "#style-result")
    save_screenshot(page, screenshot_dir, "style")

    open_tab(page, "Attention")
    upload(page, "#attn-images", subject_png)
    type_into(page, "#attn-subject textarea", "crescent")
    type_into(page, "#attn-prompt textarea", "on grass at the left, large")
    type_into(page, "#attn-words textarea", "grass")
    type_into(page, "#attn-steps input[type=number]", str(STEPS))
    find(page, "#attn-run").click()
    wait_for(page, lambda b: all(natural_widths(b, f"{c} img") for c in ("#attn-image", "#attn-grid")))
    assert_results_shown_large(page, side, "#attn-image")
    save_screenshot(page, screenshot_dir, "attention")


# ----------------------------------------------------------------------------------- inpainting and two subjects
def fresh_page(page):
    """The page reloaded: empty fields and no toasts from earlier tests."""
    page.refresh()
    wait_for(page, lambda b: b.find_elements("css selector", "#gen-run"))


def close_toasts(page):
    """Dismiss the messages in the corner, so that a screenshot shows the page under them."""
    from selenium.common.exceptions import StaleElementReferenceException

    for button in page.find_elements("css selector", "[data-testid=toast-close]"):
        try:
            if button.is_displayed():
                button.click()
        except StaleElementReferenceException:
            pass  # it closed itself between the lookup and the click
    wait_for(page, lambda b: not any(shown(button) for button in b.find_elements("css selector", "[data-testid=toast-close]")))


def open_accordion(page, title, container):
    for element in page.find_elements("xpath", f"//*[normalize-space(text())={json.dumps(title)}]"):
        if element.is_displayed():
            element.click()
            break
    wait_for(page, lambda b: find(b, container).is_displayed())


def shown_image(page, css) -> PIL.Image.Image:
    """The image the page shows in ``css``, fetched by the page from its src (the bytes a person's download gets)."""
    import base64
    import io

    source = find(page, css).get_attribute("src")
    data = page.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => done(btoa(Array.from(new Uint8Array(b), c => String.fromCharCode(c)).join(''))));""",
        source,
    )
    return PIL.Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def downloaded(page, container, suffix):
    """Click the ``suffix`` file link in ``container`` and return the downloaded file's path."""
    from selenium.common.exceptions import StaleElementReferenceException

    def click_link(b):
        try:  # the file list may still be re-rendering with the new run's files
            link = next((a for a in b.find_elements("css selector", f"{container} a") if (a.get_attribute("download") or "").endswith(suffix)), None)
            if link is not None:
                name = link.get_attribute("download")
                link.click()
                return name
        except StaleElementReferenceException:
            return None

    path = page.downloads / wait_for(page, click_link)
    wait_for(page, lambda b: path.exists() and path.stat().st_size > 0)
    return path


def paint_stroke(page, css, right):
    """A brush stroke from the middle of the editor's canvas (the photo's centre) ``right`` screen pixels to the right."""
    from selenium.webdriver.common.action_chains import ActionChains

    find(page, f"{css} button[aria-label=Brush]").click()
    canvas = find(page, f"{css} .pixi-target canvas")
    ActionChains(page).move_to_element(canvas).click_and_hold().move_by_offset(right // 2, 0).move_by_offset(right - right // 2, 0).release().perform()


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """A 64 px photo with a distinct colour at every pixel."""
    rows, columns = np.mgrid[0:64, 0:64]
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    PIL.Image.fromarray(np.stack([rows * 4, columns * 4, (rows + columns) * 2], -1).astype(np.uint8)).save(path)
    return path


def fill_inpaint(page, photo_png, subject_png, prompt):
    """A fresh Inpaint tab with the photo in the editor, the subject, the prompt and few steps."""
    fresh_page(page)
    open_tab(page, "Inpaint")
    find(page, "#inpaint-editor input[type=file]").send_keys(str(photo_png))
    wait_for(page, lambda b: "Upload an image" not in find(b, "#inpaint-editor").text)
    upload(page, "#inpaint-images", subject_png)
    type_into(page, "#inpaint-subject textarea", "crescent")
    type_into(page, "#inpaint-prompt textarea", prompt)
    open_settings(page, "#inpaint-steps")
    type_into(page, "#inpaint-steps input[type=number]", str(STEPS))


def paint_across_the_centre(page):
    """A brush stroke over photo pixels (row 32, columns 32 to 44) of the 64 px photo."""
    zoom = float(find(page, "#inpaint-editor .zoom-number").text.rstrip("%")) / 100  # screen pixels per photo pixel
    paint_stroke(page, "#inpaint-editor", round(12 * zoom))


def test_inpaint_a_painted_region_keeps_the_photo_outside(page, running_app, subject_png, photo_png, screenshot_dir):
    fill_inpaint(page, photo_png, subject_png, "on grass")

    # nothing painted yet: a message naming the field, and the app keeps serving
    find(page, "#inpaint-run").click()
    assert wait_for(page, lambda b: page_message(b, "`Region (paint it on the photo)` marks no pixel to repaint"))

    paint_across_the_centre(page)
    find(page, "#inpaint-run").click()
    wait_for(page, lambda b: all(natural_widths(b, f"{c} img") for c in ("#inpaint-photo", "#inpaint-result", "#inpaint-region")))
    photo = np.asarray(PIL.Image.open(photo_png).convert("RGB"), dtype=int)
    result = np.asarray(PIL.Image.open(downloaded(page, "#inpaint-files", ".png")).convert("RGB"), dtype=int)
    sidecar = json.loads(downloaded(page, "#inpaint-files", ".json").read_text())
    assert result.shape == photo.shape and sidecar["settings"]["box"] is None

    # the region is the stroke: the handler got the brush's layer as the mask, at the photo's size
    region = np.asarray(shown_image(page, "#inpaint-region img"))[..., 0] > 127
    assert region.shape == (64, 64)  # served at the photo's size, shown larger by the page's CSS
    rows, columns = np.mgrid[0:64, 0:64]
    near_stroke = (np.abs(rows - 32) <= 8) & (columns >= 32 - 8) & (columns <= 44 + 8)
    assert region[32, 34:43].all() and not region[~near_stroke].any()
    assert region.sum() == sidecar["settings"]["region_pixels"]

    # pixels away from the stroke are the photo's (the download and the picture shown), those under it are repainted
    difference = np.abs(result - photo).max(-1)
    assert difference[~near_stroke].max() <= 2 and difference[~region].max() <= 2
    assert difference[region].mean() > 10
    shown = np.asarray(shown_image(page, "#inpaint-result img"), dtype=int)
    assert shown.shape == (64, 64, 3) and np.abs(shown - result).max() == 0
    assert all(width >= 2 * natural and rendering == "pixelated" for natural, width, rendering in shown_sizes(page, "#inpaint-result img"))
    close_toasts(page)
    save_screenshot(page, screenshot_dir, "inpaint")


def test_inpaint_a_typed_box_wins_and_a_box_outside_the_photo_is_named(page, subject_png, photo_png):
    fill_inpaint(page, photo_png, subject_png, "on sand")
    paint_across_the_centre(page)  # outside the box: the box replaces the stroke
    for name, value in zip(("left", "top", "right", "bottom"), (4, 8, 20, 16)):
        type_into(page, f"#inpaint-box-{name} input", str(value))
    find(page, "#inpaint-run").click()
    sidecar = json.loads(downloaded(page, "#inpaint-files", "on-sand.json").read_text())
    assert sidecar["settings"]["box"] == [4, 8, 20, 16]
    result = np.asarray(PIL.Image.open(downloaded(page, "#inpaint-files", "on-sand.png")).convert("RGB"), dtype=int)
    photo = np.asarray(PIL.Image.open(photo_png).convert("RGB"), dtype=int)
    inside = np.zeros((64, 64), bool)
    inside[8:16, 4:20] = True
    difference = np.abs(result - photo).max(-1)
    assert difference[~inside].max() <= 2 and difference[inside].mean() > 10

    type_into(page, "#inpaint-box-right input", "80")
    find(page, "#inpaint-run").click()
    message = wait_for(page, lambda b: page_message(b, "is not inside the 64x64"))
    assert "`Box` 4 8 80 16" in message.text and "`Photo`" in message.text


def test_two_subjects_with_their_boxes(page, running_app, subject_png, tmp_path, screenshot_dir):
    fresh_page(page)
    from blipdiff_plugins.toyworld.references import render_references

    second_png = tmp_path / "star.png"
    PIL.Image.fromarray(render_references("ocean_star", count=1)[0].image).save(second_png)  # the toy world's held-out ocean star
    side = running_app.service.default_size
    upload(page, "#gen-images", subject_png)
    type_into(page, "#gen-subject textarea", "crescent")
    open_accordion(page, "Two subjects in one image (optional)", "#gen-second-subject")
    upload(page, "#gen-second-images", second_png)
    type_into(page, "#gen-second-subject textarea", "star")
    type_into(page, "#gen-box textarea", f"0,0,{side // 2},{side}")
    type_into(page, "#gen-second-box textarea", f"{side // 2},0,{side},{side}")
    type_into(page, "#gen-prompts textarea", "a crescent at the left and a star at the right")
    open_settings(page, "#gen-steps")
    type_into(page, "#gen-steps input[type=number]", str(STEPS))
    find(page, "#gen-run").click()

    wait_for(page, lambda b: "1 image(s) from the images of two subjects." in find(b, "#gen-status").text)
    assert len(natural_widths(page, "#gen-gallery img")) == 1 and natural_widths(page, "#gen-gallery img")[0] > 0
    assert overflow(page, "#gen-gallery") == {"outside": [], "scrolled": []}
    settings = json.loads(downloaded(page, "#gen-files", ".json").read_text())["settings"]
    assert [subject["word"] for subject in settings["subjects"]] == ["crescent", "star"]
    assert settings["regions"] == {"crescent": [0, 0, side // 2, side], "star": [side // 2, 0, side, side]}  # each box with its own subject
    close_toasts(page)
    save_screenshot(page, screenshot_dir, "two-subjects")

    type_into(page, "#gen-second-box textarea", f"{side // 2},0,{2 * side},{side}")
    find(page, "#gen-run").click()
    message = wait_for(page, lambda b: page_message(b, "reaches outside"))
    assert f"Box of the second subject {side // 2},0,{2 * side},{side} reaches outside the {side}x{side} image" in message.text
