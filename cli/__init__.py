"""Thin click commands for dcgan-data (installed as the package `dcgan_data_cli`)."""
