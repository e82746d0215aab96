"""``neco info`` on videos: the frames found beside the count the header declares (issue 42)."""

import json

import pytest
from click.testing import CliRunner

import neco
from neco.formats import ChunkType, Header, Kind, PixelFormat, write_container
from neco.plugins.cli import cli


def video(num_frames: int) -> bytes:
    """Three frames (opaque payloads of a model neco does not know: info runs no model);
    num_frames=0 is how a stream from a pipe is written (its count not known up front)."""
    header = Header(Kind.VIDEO, 16, 12, PixelFormat.RGB8, 10, num_frames, "image", "other-model", bytes(4))
    return write_container(header, [(ChunkType.FRAME, b"frame")] * 3)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("info") / "streamed.neco"
    path.write_bytes(video(0))
    return str(path)


def test_streamed_clip_shows_the_frames_found_and_an_undeclared_count(streamed):
    result = CliRunner().invoke(cli, ["info", streamed])
    assert result.exit_code == 0, result.output
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
             if not line.startswith(" ")}
    assert lines["frames"] == "3"
    assert lines["declared_frames"] == "not declared (written as a stream)"
    assert "num_frames" not in result.stdout


def test_streamed_clip_in_json(streamed):
    details = json.loads(CliRunner().invoke(cli, ["info", "--json", streamed]).stdout)
    assert details["frames"] == 3 and details["declared_frames"] is None and "num_frames" not in details


def test_declared_count_is_shown_when_the_header_has_one():
    details = neco.info(video(3))
    assert details["frames"] == details["declared_frames"] == 3
