"""neco.formats: the `.neco` container (docs/FORMAT.md) and the NecoError hierarchy.

Plain Python (stdlib only, never torch): a file can be read, checked and described without
any model.
"""

from .container import (
    ANCILLARY_BIT,
    MAGIC,
    MAX_CHUNK_BYTES,
    MAX_DIMENSION,
    MAX_MODEL_ID_BYTES,
    PROFILE_IDS,
    VERSION,
    KEY_FLAGS_VERSION,
    WEIGHTS_DIGEST_BYTES,
    Chunk,
    ChunkType,
    Container,
    ContainerReader,
    ContainerWriter,
    Header,
    Kind,
    PixelFormat,
    PrefixedStream,
    Profile,
    SkippedChunk,
    decode_index,
    decode_index_keys,
    encode_index,
    is_critical,
    read_container,
    write_container,
)
from .errors import CorruptDataError, InvalidArgumentError, ModelError, NecoError, UnsupportedError
from .varint import decode_varint, encode_varint

__all__ = [
    "ANCILLARY_BIT", "MAGIC", "MAX_CHUNK_BYTES", "MAX_DIMENSION", "MAX_MODEL_ID_BYTES", "PROFILE_IDS", "VERSION",
    "KEY_FLAGS_VERSION", "WEIGHTS_DIGEST_BYTES", "Chunk", "ChunkType", "Container", "ContainerReader",
    "ContainerWriter", "Header", "Kind", "PixelFormat", "PrefixedStream", "Profile", "SkippedChunk", "decode_index",
    "decode_index_keys", "encode_index",
    "is_critical", "read_container", "write_container", "CorruptDataError", "InvalidArgumentError",
    "ModelError", "NecoError", "UnsupportedError", "decode_varint", "encode_varint",
]
