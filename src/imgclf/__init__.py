"""imgclf: from a folder of labelled images to a classifier you can trust and ship."""

__version__ = "0.1.0"
