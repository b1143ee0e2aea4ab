"""Dummy training: repack a pretrained model.tar.gz so it carries a root hyperparameters.json."""

__version__ = "0.1.0"
