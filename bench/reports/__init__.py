"""Report generation; templates live beside the code in ``templates/``."""
