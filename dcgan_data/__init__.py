"""dcgan-data: the data pipeline of the DCGAN paper, and its trainer."""

__version__ = "0.1.0"
