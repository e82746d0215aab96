"""neco.batch.transcode: bad inputs recorded, interruption and resumption, and outputs and index
that the engine and the worker count cannot change (local in-process, a 2-process pool, Ray)."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neco
import neco.batch as batch
from neco.plugins.adapters import av_io, y4m

from conftest import PSNR_FLOOR, photo_crop, psnr, smooth_image

GOOD = 10  # stills and one Y4M clip


def make_sources(folder: Path) -> Path:
    """10 good inputs (PNG / JPEG crops, a folder deep, a 2-frame Y4M clip), a truncated PNG, a text file."""
    (folder / "sub").mkdir(parents=True)
    for i in range(7):
        size = (32 + 8 * (i % 3), 32 + 8 * (i % 2))
        Image.fromarray(photo_crop(*size, index=i)).save(folder / ("sub" if i % 2 else "") / f"p{i}.png")
    Image.fromarray(smooth_image(40, 32)).save(folder / "smooth.jpg", quality=95)
    Image.fromarray(photo_crop(32, 32, index=9)).convert("L").save(folder / "sub" / "grey.png")
    clip = io.BytesIO()
    writer = y4m.Y4MWriter(clip, 32, 32, frame_rate=25)
    for i in range(2):
        writer.write(photo_crop(32, 32, index=10 + i))
    (folder / "clip.y4m").write_bytes(clip.getvalue())
    whole = (folder / "p0.png").read_bytes()
    (folder / "broken.png").write_bytes(whole[:len(whole) // 2])
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, but the journal (its timings differ from run to run)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != batch.JOURNAL}


def journal(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / batch.JOURNAL).read_text().splitlines()]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("batch") / "src")


@pytest.fixture(scope="module")
def reference(sources, tmp_path_factory):
    """The batch converted in this process (workers=1): the outputs every other run must match."""
    destination = tmp_path_factory.mktemp("reference")
    summary = batch.transcode(sources, destination, quality=40, workers=1)
    return destination, summary


def test_good_files_are_converted_and_bad_ones_recorded(sources, reference):
    destination, summary = reference
    assert (summary.files, summary.converted, summary.skipped, summary.failed) == (GOOD + 2, GOOD, 0, 2)
    assert summary.bytes_out == sum(len(data) for name, data in outputs(destination).items() if name.endswith(".neco"))
    index = json.loads((destination / batch.INDEX).read_text())
    assert index["totals"] == {"files": 12, "done": 10, "failed": 2, "pending": 0, "bytes_in": summary.bytes_in,
                               "bytes_out": summary.bytes_out, "mean_bpp": pytest.approx(summary.mean_bpp)}
    records = {r["source"]: r for r in journal(destination)}
    assert [r["source"] for r in index["files"]] == sorted(records)
    assert records["broken.png"]["status"] == "failed" and "truncated" in records["broken.png"]["error"]
    assert records["notes.txt"]["status"] == "failed" and "not an image" in records["notes.txt"]["error"]
    assert all("\n" not in r["error"] for r in records.values() if r["error"])
    assert records["clip.y4m"]["kind"] == "video" and records["clip.y4m"]["frames"] == 2
    for name in ("p0.png", "sub/p1.png", "smooth.jpg", "sub/grey.png"):
        record = records[name]
        data = (destination / record["output"]).read_bytes()
        assert record["status"] == "done" and record["output"] == name.rsplit(".", 1)[0] + ".neco"
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["bytes_out"] == len(data) and record["bpp"] == neco.info(data)["bpp"]
        assert record["run"]["seconds"] > 0 and record["run"]["engine"] == "local"
        original = np.asarray(Image.open(sources / name).convert("RGB"))
        assert psnr(neco.decode_array(data), original) > PSNR_FLOOR
    # The same bytes as `neco encode` writes.
    assert (destination / "p0.neco").read_bytes() == neco.encode(Image.open(sources / "p0.png"), quality=40)
    assert not list(destination.rglob(".*.tmp"))


def interrupted(sources: Path, destination: Path, after: int, workers: int) -> list[dict]:
    """The batch stopped by Ctrl-C (a KeyboardInterrupt from the progress callback) after `after`
    files; checks that the journal names exactly the outputs in place, and returns its records."""
    def stop(done, total, record):
        assert total == GOOD + 2
        if done == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.transcode(sources, destination, quality=40, workers=workers, progress=stop)
    records = journal(destination)
    assert len(records) == after
    assert sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*.neco")) == \
        sorted(r["output"] for r in records if r["status"] == "done")
    assert not list(destination.rglob(".*.tmp"))
    return records


def test_interrupted_then_resumed_redoes_nothing_done(sources, reference, tmp_path, monkeypatch):
    destination = tmp_path / "out"
    first = interrupted(sources, destination, 4, workers=1)
    assert json.loads((destination / batch.INDEX).read_text())["totals"]["pending"] == 8
    # A crash would leave a temporary file, and a done output may be damaged since: both are handled.
    damaged = next(r for r in first if r["status"] == "done")
    (destination / damaged["output"]).write_bytes(b"damaged")
    (destination / f".{Path(damaged['output']).name}.0123abcd.tmp").write_bytes(b"partial")

    converted = []
    real = batch.convert
    monkeypatch.setattr(batch, "convert", lambda job, *args: converted.append(job.source) or real(job, *args))
    summary = batch.transcode(sources, destination, quality=40, workers=1)
    done_before = {r["source"] for r in first if r["status"] == "done"} - {damaged["source"]}
    assert sorted(converted) == sorted({r["source"] for r in journal(reference[0])} - done_before)
    assert summary.skipped == len(done_before) and summary.converted + summary.failed == len(converted)
    assert outputs(destination) == outputs(reference[0])   # the index too, byte for byte

    converted.clear()
    again = batch.transcode(sources, destination, quality=40, workers=1)
    assert sorted(converted) == ["broken.png", "notes.txt"] and again.skipped == GOOD  # failures are retried
    record = next(r for r in journal(destination) if r["status"] == "done")
    assert batch._finished(record, batch.Options(quality=40.0, model=record["options"]["model"]), destination)
    assert not batch._finished(record, batch.Options(quality=60.0, model=record["options"]["model"]), destination)


def test_two_workers_give_the_same_bytes(sources, reference, tmp_path):
    summary = batch.transcode(sources, tmp_path, quality=40, workers=2)
    assert (summary.converted, summary.failed) == (GOOD, 2)
    assert outputs(tmp_path) == outputs(reference[0])
    assert len({r["run"]["worker"] for r in journal(tmp_path)}) == 2


def test_interrupting_a_pool_leaves_a_consistent_journal(sources, reference, tmp_path):
    records = interrupted(sources, tmp_path, 3, workers=2)
    summary = batch.transcode(sources, tmp_path, quality=40, workers=1)
    assert summary.skipped == sum(r["status"] == "done" for r in records)
    assert outputs(tmp_path) == outputs(reference[0])


def test_decode_writes_png_and_y4m(reference, tmp_path):
    coded, _ = reference
    summary = batch.transcode(coded, tmp_path, decode=True, workers=1)
    assert (summary.files, summary.converted, summary.failed) == (GOOD, GOOD, 0)
    still = Image.open(tmp_path / "p0.png")
    assert still.format == "PNG" and np.array_equal(np.asarray(still), neco.decode_array((coded / "p0.neco").read_bytes()))
    assert Image.open(tmp_path / "sub" / "grey.png").mode == "L"
    frames = list(y4m.Y4MReader(open(tmp_path / "clip.y4m", "rb")))
    assert len(frames) == 2 and frames[0].shape == (32, 32, 3)


def test_decode_writes_clips_through_pyav(reference, tmp_path):
    pytest.importorskip("av", reason="PyAV is not installed (neco[video])")
    summary = batch.transcode(reference[0] / "clip.neco", tmp_path, decode=True, video_format="mkv")
    assert summary.converted == 1 and not summary.failures
    assert len(list(av_io.AvReader(str(tmp_path / "clip.mkv")))) == 2


def test_arguments_are_checked(sources, tmp_path):
    with pytest.raises(neco.InvalidArgumentError, match="engine"):
        batch.transcode(sources, tmp_path, engine="spark")
    with pytest.raises(neco.InvalidArgumentError, match="exclusive"):
        batch.transcode(sources, tmp_path, quality=10, bpp=1)
    with pytest.raises(neco.InvalidArgumentError, match="image format"):
        batch.transcode(sources, tmp_path, decode=True, image_format="nope")
    with pytest.raises(FileNotFoundError):
        batch.transcode(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_outputs_that_would_collide_keep_their_suffix(tmp_path):
    (tmp_path / "src").mkdir()
    for suffix in ("png", "bmp"):
        Image.fromarray(smooth_image(16, 16)).save(tmp_path / "src" / f"a.{suffix}")
    jobs = batch._plan(tmp_path / "src", tmp_path / "out", batch.Options())
    assert [(j.source, j.output) for j in jobs] == [("a.bmp", "a.bmp.neco"), ("a.png", "a.png.neco")]
    files = [tmp_path / "src" / "a.png", tmp_path / "src" / "a.bmp"]
    assert [j.source for j in batch._plan(files, tmp_path / "src" / "out", batch.Options())] == ["a.bmp", "a.png"]


@pytest.mark.ray
def test_ray_gives_the_same_bytes(sources, reference, tmp_path):
    try:
        import ray
    except Exception as exc:  # noqa: BLE001 (missing, or a broken install)
        pytest.skip(f"import ray failed ({exc}; pip install 'neco[ray]'): the Ray engine is untested here")
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"a local Ray instance cannot start here: {exc}")
    try:
        summary = batch.transcode(sources, tmp_path, quality=40, engine="ray", workers=2)
    finally:
        ray.shutdown()
    assert (summary.converted, summary.failed) == (GOOD, 2)
    assert outputs(tmp_path) == outputs(reference[0])
    assert {r["run"]["engine"] for r in journal(tmp_path)} == {"ray"}
