"""Defaults of dedup's decision that the CLI states too; importing no torch, so that
`dcgan-data dedup --help` stays quick."""

SELF_FIT_MIN_ROWS = 300  # fewer rows: the fixed model decides alone (too few to learn from)
MAX_FALSE_SHARE = 0.01  # expected false pairs among those accepted (the paper's rate)
