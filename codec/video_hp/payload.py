"""The FRAME payload of a video-hp model (docs/FORMAT.md section 12): the one reader and writer of
its fields. Torch-free, so `neco info` and the session's seeking read frame types without a model.

    varint    frame type: 0 = I (an image-hp payload follows), 2 = P (predicted from the previous
              frame, block modes); 1 is reserved (a development version's P frame, never released)
    u8        P (2): the skip probability p_skip / 256 of a block's mode
    u8        P (2): the inter probability p_inter / 256 (p_skip + p_inter <= 255: intra has the rest)
    u8        P (2): the inter blocks' table shift (rows below the network's, 0..63)
    ...       an image-hp payload (image_hp/payload.py): rate position and flags, blocks, ANS words
"""

from typing import NamedTuple

from neco.formats.errors import CorruptDataError, UnsupportedError
from neco.formats.varint import decode_varint, encode_varint

from ..image_hp import payload as image_payload

FRAME_I, FRAME_P = 0, 2
FRAME_TYPES = {FRAME_I: "I", FRAME_P: "P"}
PROB_ONE = 256           # the block-mode probabilities' denominator
MAX_INTER_SHIFT = 63     # the table has 64 rows (constants.NUM_SCALES)
# block modes (the symbols of the mode flags)
MODE_INTRA, MODE_SKIP, MODE_INTER = 0, 1, 2


class FrameHead(NamedTuple):
    frame_type: int         # FRAME_I or FRAME_P
    skip_prob: int          # P: 0..255 (p / PROB_ONE); I: 0
    image: int              # position of the image-hp payload
    inter_prob: int = 0     # P (2): 0..255 - skip_prob
    inter_shift: int = 0    # P (2): 0..MAX_INTER_SHIFT

    @property
    def mode_probs(self) -> tuple[int, int, int]:
        """Frequencies out of PROB_ONE of the block modes (intra, skip, inter)."""
        return PROB_ONE - self.skip_prob - self.inter_prob, self.skip_prob, self.inter_prob


def read_head(payload: bytes) -> FrameHead:
    """The frame type (and a P frame's mode probabilities and inter shift), each checked."""
    frame_type, pos = decode_varint(payload, 0, "frame type")
    if frame_type not in FRAME_TYPES:
        raise UnsupportedError(f"frame type {frame_type} is not known to this decoder "
                               f"(known: {', '.join(f'{k}={v}' for k, v in FRAME_TYPES.items())})")
    if frame_type == FRAME_I:
        return FrameHead(frame_type, 0, pos)
    if pos + 3 > len(payload):
        raise CorruptDataError("P frame payload ends before its block-mode fields")
    skip_prob, inter_prob, shift = payload[pos:pos + 3]
    if skip_prob + inter_prob >= PROB_ONE:
        raise CorruptDataError(f"P frame's skip and inter probabilities ({skip_prob} + {inter_prob}) "
                               f"leave intra blocks none of {PROB_ONE}")
    if shift > MAX_INTER_SHIFT:
        raise CorruptDataError(f"P frame's inter table shift {shift} is beyond {MAX_INTER_SHIFT}")
    return FrameHead(frame_type, skip_prob, pos + 3, inter_prob, shift)


def is_key(payload: bytes) -> bool:
    """Whether a payload is a key frame (I), from its first field."""
    return read_head(payload).frame_type == FRAME_I


def write(frame_type: int, image: bytes, skip_prob: int = 0, inter_prob: int = 0, inter_shift: int = 0) -> bytes:
    """A frame's payload: its type, a P frame's mode fields, then the image-hp payload."""
    if frame_type == FRAME_I:
        return encode_varint(FRAME_I) + image
    if not 0 <= skip_prob < PROB_ONE:
        raise ValueError(f"skip probability {skip_prob} out of 0..{PROB_ONE - 1}")
    if not 0 <= inter_prob < PROB_ONE - skip_prob or not 0 <= inter_shift <= MAX_INTER_SHIFT:
        raise ValueError(f"inter probability {inter_prob} or shift {inter_shift} out of range")
    return encode_varint(FRAME_P) + bytes((skip_prob, inter_prob, inter_shift)) + image


def describe(payload: bytes) -> dict:
    """What `neco info` shows of a FRAME: its type, then the image-hp fields."""
    head = read_head(payload)
    fields = {"frame_type": FRAME_TYPES[head.frame_type]}
    if head.frame_type == FRAME_P:
        fields["skip_probability"] = head.skip_prob / PROB_ONE
        fields["inter_probability"] = head.inter_prob / PROB_ONE
        fields["inter_shift"] = head.inter_shift
    return fields | image_payload.describe(payload[head.image:])
