"""Tools around a training run that are not fairseq components: reading its logs (``sew-log-summary``)."""
