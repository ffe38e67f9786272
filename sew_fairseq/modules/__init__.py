"""Building blocks of SEW / SEW-D, one paper component per file; no fairseq registration here."""
