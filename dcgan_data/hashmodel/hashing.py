"""The hash model's public names in one place: the model and its file (`autoencoder`), its
input crops (`crops`), its training (`training`) and the codes it gives (`codes`)."""

from dcgan_data.hashmodel.autoencoder import (
    CHUNK,
    DIM,
    FORMAT,
    HASH_BYTES,
    SIDE,
    VERSION,
    HashAutoencoder,
    level,
    level_gain,
    load_model,
    save_model,
)
from dcgan_data.hashmodel.codes import (
    PROBE_SHIFTS,
    PROBE_ZOOM,
    PROBES,
    Hasher,
    check_codes,
    code_stats,
    hash_crops,
    hash_shards,
    popcount,
)
from dcgan_data.hashmodel.crops import (
    iter_crops,
    sample_crops,
    scan_units,
    to_hash_crops,
    warp,
    warp_crops,
)
from dcgan_data.hashmodel.options import HashConfig
from dcgan_data.hashmodel.training import corrupt, train_hash_model

__all__ = ["CHUNK", "DIM", "FORMAT", "HASH_BYTES", "PROBES", "PROBE_SHIFTS", "PROBE_ZOOM",
           "SIDE", "VERSION", "HashAutoencoder", "HashConfig", "Hasher", "check_codes",
           "code_stats", "corrupt", "hash_crops", "hash_shards", "iter_crops", "level",
           "level_gain", "load_model", "popcount", "sample_crops", "save_model", "scan_units",
           "to_hash_crops", "train_hash_model", "warp", "warp_crops"]
