"""``python -m maskbench`` (also ``torchrun ... -m maskbench train``) runs the command line."""

from maskbench.cli import main

if __name__ == "__main__":
    main()
