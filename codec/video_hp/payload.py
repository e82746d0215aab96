"""The FRAME payload of a video-hp model (docs/FORMAT.md section 12): the one reader and writer of
its fields. Torch-free, so `neco info` and the session's seeking read frame types without a model.

    varint    frame type: 0 = I (an image-hp payload follows), 1 = P (predicted from the previous frame)
    u8        P only: the skip probability p (0: no block is skipped and no flag is coded; else the
              probability of a skip flag, p / 256)
    ...       an image-hp payload (image_hp/payload.py): rate position and flags, blocks, ANS words
"""

from typing import NamedTuple

from neco.formats.errors import CorruptDataError, UnsupportedError
from neco.formats.varint import decode_varint, encode_varint

from ..image_hp import payload as image_payload

FRAME_I, FRAME_P = 0, 1
FRAME_TYPES = {FRAME_I: "I", FRAME_P: "P"}
SKIP_PROB_ONE = 256      # the skip probability's denominator


class FrameHead(NamedTuple):
    frame_type: int         # FRAME_I or FRAME_P
    skip_prob: int          # P: 0..255 (p / SKIP_PROB_ONE); I: 0
    image: int              # position of the image-hp payload


def read_head(payload: bytes) -> FrameHead:
    """The frame type (and a P frame's skip probability), each checked."""
    frame_type, pos = decode_varint(payload, 0, "frame type")
    if frame_type not in FRAME_TYPES:
        raise UnsupportedError(f"frame type {frame_type} is not known to this decoder "
                               f"(known: {', '.join(f'{k}={v}' for k, v in FRAME_TYPES.items())})")
    if frame_type == FRAME_I:
        return FrameHead(frame_type, 0, pos)
    if pos >= len(payload):
        raise CorruptDataError("P frame payload ends before its skip probability")
    return FrameHead(frame_type, payload[pos], pos + 1)


def is_key(payload: bytes) -> bool:
    """Whether a payload is a key frame (I), from its first field."""
    return read_head(payload).frame_type == FRAME_I


def write(frame_type: int, image: bytes, skip_prob: int = 0) -> bytes:
    """A frame's payload: its type, a P frame's skip probability, then the image-hp payload."""
    if frame_type == FRAME_I:
        return encode_varint(FRAME_I) + image
    if not 0 <= skip_prob < SKIP_PROB_ONE:
        raise ValueError(f"skip probability {skip_prob} out of 0..{SKIP_PROB_ONE - 1}")
    return encode_varint(FRAME_P) + bytes((skip_prob,)) + image


def describe(payload: bytes) -> dict:
    """What `neco info` shows of a FRAME: its type, then the image-hp fields."""
    head = read_head(payload)
    fields = {"frame_type": FRAME_TYPES[head.frame_type]}
    if head.frame_type == FRAME_P:
        fields["skip_probability"] = head.skip_prob / SKIP_PROB_ONE
    return fields | image_payload.describe(payload[head.image:])
