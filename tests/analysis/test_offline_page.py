"""report.html renders without a network: no remote asset, and a real headless browser draws it
(when Chromium is installed: `apt-get install -y chromium`)."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest
from PIL import Image

from tests.analysis.reports import check_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_loads_nothing_from_the_network(full_report):
    _, html_path = full_report
    text, refs = check_html(html_path)
    assert not [r for r in refs if re.match(r"(?i)\s*(https?:)?//", r)]
    assert not re.search(r"(?i)url\(\s*['\"]?\s*(https?:)?//", text)
    assert not re.search(r"(?i)@import", text)
    assert not re.search(r"(?i)<(script|link|iframe)\b", text)
    assert not re.search(r"(?i)(src|href)\s*=\s*['\"]?\s*(https?:)?//", text)


def screenshot(html_path: str, png_path: str, size: str = "1400,1000") -> None:
    """The first screen of `html_path` in headless Chromium, with everything that could reach
    the network switched off."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png_path}",
                        f"--window-size={size}", f"file://{os.path.abspath(html_path)}"],
                       check=True, capture_output=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_headless_chromium_draws_the_first_screen(full_report, tmp_path):
    _, html_path = full_report
    png = tmp_path / "first_screen.png"
    screenshot(html_path, str(png))
    with Image.open(png) as im:
        assert im.size == (1400, 1000)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is (almost) blank"
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.95 * 1400 * 1000
