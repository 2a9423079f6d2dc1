"""IngestOptions holds ingest's bounds; the shared readers' own defaults must agree with it."""

import pytest

from dcgan_data.core.errors import InputError
from dcgan_data.core.images import DEFAULT_MAX_PIXELS
from dcgan_data.faces.options import DEFAULT_MAX_BYTES
from dcgan_data.ingest.options import IngestOptions, InspectOptions, PackOptions


def test_ingest_bounds_are_the_readers_defaults():
    # inspect and open_source read with the readers' defaults, ingest with its options
    assert IngestOptions().max_pixels == DEFAULT_MAX_PIXELS
    assert IngestOptions().max_bytes == DEFAULT_MAX_BYTES


@pytest.mark.parametrize("make,field,value", [
    (IngestOptions, "size", 63), (IngestOptions, "rows_per_shard", 0),
    (IngestOptions, "max_bytes", float("nan")), (InspectOptions, "sample", 0),
    (PackOptions, "format", "png"), (PackOptions, "short_side", 4),
])
def test_options_refuse_values_out_of_range(make, field, value):
    with pytest.raises(InputError, match=f"^--{field.replace('_', '-')} must be"):
        make(**{field: value})
