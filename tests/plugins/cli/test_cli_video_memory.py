"""`neco decode clip.neco -f y4m -` streams a video-profile clip with flat memory (issue 38): the
peak RSS of decoding 300 frames is that of 30.

Each decode runs the CLI in a fresh subprocess that reports its own peak RSS (VmHWM, as
tests/codec/image_hp/test_decode_memory.py does, and for the same reason: not ru_maxrss). The
300-frame clip repeats the FRAME chunks of a coded 30-frame I/P clip ten times (a key frame every
30 frames), so only one clip is encoded; the decoder's memory depends on the stream's length, not
on what the frames show.
"""

import subprocess
import sys

import pytest

import neco
from conftest import photo_crop
from neco.formats import ChunkType, read_container, write_container

WIDTH, HEIGHT, FRAMES = 160, 96, 30
FLAT_KB = 16 * 1024   # allowed growth from 30 to 300 frames (VmHWM is in kB)

_CHILD = """
import sys
from neco.plugins.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="neco", standalone_mode=False)
finally:
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    base = photo_crop(WIDTH + FRAMES, HEIGHT + FRAMES // 2, index=2)
    frames = [base[t // 2:t // 2 + HEIGHT, t:t + WIDTH].copy() for t in range(FRAMES)]
    neco.encode_frames(frames, folder / "30.neco", quality=50, frame_rate=25)
    short = read_container((folder / "30.neco").read_bytes())
    assert short.key_frames[:2] == [True, False]   # I/P
    header = short.header.__class__(**{**short.header.__dict__, "num_frames": 10 * FRAMES})
    (folder / "300.neco").write_bytes(write_container(header, [(ChunkType.FRAME, p) for p in short.frames * 10],
                                                      index=True, key_frames=short.key_frames * 10))
    return folder


def _peak_rss_kb(path) -> tuple[int, int]:
    """(peak RSS in kB, bytes of Y4M written) of ``neco -q decode PATH -f y4m -``."""
    out = subprocess.run([sys.executable, "-c", _CHILD, "-q", "decode", str(path), "-f", "y4m", "-"],
                         capture_output=True, timeout=900)
    assert out.returncode == 0, out.stderr.decode()
    return int(out.stderr.split()[-1]), len(out.stdout)


@pytest.mark.slow
def test_decode_to_y4m_memory_is_flat_from_30_to_300_frames(clips):
    short, short_bytes = _peak_rss_kb(clips / "30.neco")
    long, long_bytes = _peak_rss_kb(clips / "300.neco")
    assert long_bytes > 9 * short_bytes                  # all 300 frames went out
    assert long - short < FLAT_KB, (short, long)
