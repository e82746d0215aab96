"""Lenient reading of damaged multi-frame files: `neco.open(..., strict=False)`."""

import dataclasses
import io
import warnings

from neco.formats import ChunkType, ContainerReader, ContainerWriter, CorruptDataError, InvalidArgumentError, \
    Kind, PrefixedStream, UnsupportedError

from .session import StreamDecoder, StreamReader


class LenientReader(StreamReader):
    """`neco.open(..., strict=False)`: the frames of a damaged stream that can still be decoded.

    The header must be intact (without it nothing can be decoded). Then each chunk is read on
    its own, by a `ContainerReader` over the header followed by that chunk, so one chunk's
    failure does not stop the next:

    - a chunk that fails its CRC (or a FRAME whose payload does not decode) is skipped: its
      length field is trusted to find the next chunk, and the loss is reported;
    - a second failure in a row means that length was damaged too: the rest is reported lost;
    - a stream that ends early (no END) is reported truncated;
    - after a loss the reference frames are forgotten, so the predicted frames (video profile)
      that follow are reported lost too, and decoding resumes at the next key frame.

    Each loss is a warning as it is found and a line in `lost`. Iteration only (no seeking),
    so pipes work; the stream-level checks of the strict reader (frame count, INDEX) are not
    made. Frames decode through the strict reader's `StreamDecoder`, so the model and its
    weights are checked as in strict mode, before any frame.
    """

    def __init__(self, stream, *, device: str = "cpu", close_stream: bool = False) -> None:
        super().__init__(stream, close_stream)
        reader = ContainerReader(stream)
        self.header = reader.header
        self._decoder = StreamDecoder(self.header, device)
        self._start = reader.offset  # file offset of the first chunk
        fresh = io.BytesIO()
        # the header again as a stream's that declares no frame count (a still image's too): END
        # then closes a one-chunk read
        ContainerWriter(fresh, dataclasses.replace(self.header, kind=Kind.VIDEO, num_frames=0))  # the header only
        self._head = fresh.getvalue()
        self.lost: list[str] = []
        self._started = False

    def __iter__(self):
        if self._started:
            raise InvalidArgumentError("a lenient reader can be iterated only once")
        self._started = True
        return self._frames()

    def _frames(self):
        offset, position, failed, pending = self._start, 0, False, b""
        while True:
            first = pending or self._stream.read(1)
            if not first:
                self._lose(f"stream truncated at offset {offset}, after {position} frame(s) (no END): "
                           f"any later frame is lost")
                return
            reader = ContainerReader(PrefixedStream(self._head + first, self._stream))
            try:
                chunk = next(reader, None)
            except CorruptDataError:  # CRC mismatch, truncation or a bad field in this chunk
                self._decoder.reset()    # a frame may be lost: P frames wait for the next key frame
                length = reader.offset - len(self._head)
                pending = self._stream.read(1)
                if not pending:
                    self._lose(f"stream truncated inside the chunk at offset {offset}, after {position} frame(s): "
                               f"any later frame is lost")
                    return
                if failed:
                    self._lose(f"unreadable from offset {offset} on (a damaged chunk length?): the rest of "
                               f"the stream is lost")
                    return
                if first[0] == ChunkType.FRAME:  # the type byte, unless it is the damaged one
                    self._lose(f"frame {position} lost: its chunk at offset {offset} ({length} bytes) fails its check")
                    position += 1
                else:
                    self._lose(f"chunk at offset {offset} ({length} bytes) skipped: it fails its check")
                offset, failed = offset + length, True
                continue
            if chunk is None:  # END
                return
            start, offset = offset, offset + reader.offset - len(self._head)
            failed, pending = False, b""
            self._note(chunk)
            if chunk.type == ChunkType.FRAME:
                position += 1
                try:
                    pixels = self._decoder.frame(chunk.payload)
                except (CorruptDataError, UnsupportedError) as exc:  # intact chunk, payload the coder refuses
                    self._lose(f"frame {position - 1} lost: its payload at offset {start} does not decode ({exc})")
                    continue
                yield pixels

    def _lose(self, what: str) -> None:
        self.lost.append(what)
        warnings.warn(f"lenient decode: {what}", stacklevel=3)

