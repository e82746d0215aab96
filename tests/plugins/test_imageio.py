"""imageio reads `.neco` through Pillow, once `import neco` registered the Pillow plugin.

Neither imageio (v3: a fixed plugin list in `imageio.config`, no entry points) nor Pillow
(`Image.init` imports its own plugins only) discovers plugins of other packages, so nothing can
register neco before it is imported: the README says `import neco` first. This test holds
both halves where imageio is installed (it is not a dependency of neco).
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import neco
from conftest import smooth_image


@pytest.fixture(scope="module")
def neco_file(tmp_path_factory):
    pytest.importorskip("imageio", reason="imageio not installed (not a dependency of neco)")
    path = tmp_path_factory.mktemp("imageio") / "small.neco"
    path.write_bytes(neco.encode(Image.fromarray(smooth_image(16, 12)), quality=75))
    return path


def read_with_imageio(path, first: str) -> subprocess.CompletedProcess:
    code = f"{first}\nimport imageio.v3 as iio\nprint(iio.imread({str(path)!r}).shape)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_imageio_reads_neco_after_import_neco(neco_file):
    result = read_with_imageio(neco_file, "import neco")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((12, 16, 3))
    assert np.asarray(neco.decode(neco_file.read_bytes())).shape == (12, 16, 3)


def test_imageio_alone_does_not_know_neco(neco_file):
    """Documents the limit: without `import neco` there is nothing imageio or Pillow would discover."""
    result = read_with_imageio(neco_file, "")
    assert result.returncode != 0
