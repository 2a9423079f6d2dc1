"""`python -m dcgan_data` runs the command line (the CLI lives in the dcgan_data_cli package)."""

from dcgan_data_cli.main import main

main()
